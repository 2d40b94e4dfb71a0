//! Lower-case hex, the one way the workspace writes bytes as text (trace ids,
//! idempotency keys, digests, API keys): a table, no formatter per byte.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes the hex of `bytes` into `out`, which is twice as long (no
/// allocation: the intake writes a `traceparent` twice per request).
pub fn encode_to(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// Appends the hex of `bytes` to `text`.
pub fn push(text: &mut String, bytes: &[u8]) {
    text.reserve(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut text = String::new();
    push(&mut text, bytes);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_two_lower_case_digits_as_the_formatter_writes_them() {
        let bytes: Vec<u8> = (0..=255).collect();
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(encode(&bytes), formatted);
        let mut out = vec![0u8; 512];
        encode_to(&bytes, &mut out);
        assert_eq!(out, formatted.as_bytes());
        let mut text = "k:".to_owned();
        push(&mut text, &[0x0f, 0xa0]);
        assert_eq!(text, "k:0fa0");
    }
}
