//! W3C Trace Context (`traceparent`, <https://www.w3.org/TR/trace-context/>):
//! what lets one submission's log lines be joined across processes.
//!
//! The intake continues the caller's trace when an HTTP request carries a valid
//! `traceparent`, and starts a new one otherwise; it sends its own position in
//! the trace with the message ([`crate::wire::SubmissionHeadersV2::traceparent`]);
//! the worker continues from there. Log lines carry the trace id (32 hex
//! digits), which names no person and no project.
//!
//! Only `traceparent` is implemented (`tracestate` is vendor data nobody here
//! reads). Parsing follows the specification's rules for version `00` and for
//! future versions (the first four fields, anything after a `-` ignored);
//! version `ff`, all-zero ids, upper-case hex and wrong lengths are refused, and
//! a refused header simply starts a new trace.

use rand::Rng;
use std::fmt;

/// One position in a trace: the trace, the span that is the parent of whatever
/// comes next, and the flags (bit 0: sampled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// The `sampled` flag.
pub const SAMPLED: u8 = 0x01;

fn random_nonzero<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    while bytes.iter().all(|b| *b == 0) {
        rand::rng().fill_bytes(&mut bytes);
    }
    bytes
}

fn hex_into(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

/// The length of a version-00 `traceparent`: `00-` 32 `-` 16 `-` 2.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// A new trace with a random trace id and span id, sampled.
    pub fn new_root() -> TraceParent {
        TraceParent {
            trace_id: random_nonzero(),
            span_id: random_nonzero(),
            flags: SAMPLED,
        }
    }

    /// Parses a `traceparent` value; `None` if it is not a valid one.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let value = value.trim_matches([' ', '\t']);
        let mut parts = value.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let mut v = [0u8; 1];
        hex_into(version, &mut v)?;
        match v[0] {
            0xff => return None,
            // Version 00 has exactly four fields.
            0x00 if parts.next().is_some() => return None,
            _ => {}
        }
        let mut parsed = TraceParent {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        hex_into(trace, &mut parsed.trace_id)?;
        hex_into(span, &mut parsed.span_id)?;
        let mut f = [0u8; 1];
        hex_into(flags, &mut f)?;
        parsed.flags = f[0];
        if parsed.trace_id.iter().all(|b| *b == 0) || parsed.span_id.iter().all(|b| *b == 0) {
            return None;
        }
        Some(parsed)
    }

    /// The next position in the same trace: a new span whose parent this is.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            span_id: random_nonzero(),
            ..*self
        }
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        crate::hex::encode(&self.trace_id)
    }

    /// The span id, 16 lower-case hex digits.
    pub fn span_id(&self) -> String {
        crate::hex::encode(&self.span_id)
    }

    /// The version-00 header value (`00-<trace id>-<span id>-<flags>`), without
    /// allocating: what `Display` writes, for callers that write it often.
    pub fn encode(&self) -> Encoded {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[..2].copy_from_slice(b"00");
        crate::hex::encode_to(&self.trace_id, &mut out[3..35]);
        crate::hex::encode_to(&self.span_id, &mut out[36..52]);
        crate::hex::encode_to(&[self.flags], &mut out[53..55]);
        Encoded(out)
    }

    /// Whether the caller asked for this trace to be recorded.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// The header value: `00-<trace id>-<span id>-<flags>` (always version 00).
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode().as_str())
    }
}

/// A `traceparent` value written into a fixed buffer ([`TraceParent::encode`]).
#[derive(Debug, Clone, Copy)]
pub struct Encoded([u8; TRACEPARENT_LEN]);

impl Encoded {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_else(|_| unreachable!("hex digits are ASCII"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_round_trips() {
        let parsed = TraceParent::parse(EXAMPLE).expect("valid");
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.span_id(), "00f067aa0ba902b7");
        assert!(parsed.sampled());
        assert_eq!(parsed.to_string(), EXAMPLE);
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let parent = TraceParent::parse(EXAMPLE).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(TraceParent::parse(&child.to_string()), Some(child));
    }

    #[test]
    fn new_roots_are_valid_and_distinct() {
        let (a, b) = (TraceParent::new_root(), TraceParent::new_root());
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(TraceParent::parse(&a.to_string()), Some(a));
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_future_version_is_read_by_its_first_four_fields() {
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        let parsed = TraceParent::parse(future).expect("readable");
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
