use super::*;
use secrecy::SecretString;

const KEY: &str = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";

fn keyed() -> Settings {
    let mut s = Settings::default();
    s.crypto.data_key = Some(SecretString::from(KEY));
    s.crypto.transit_key = Some(SecretString::from(KEY));
    s
}

#[test]
fn without_keys_and_without_dev_the_missing_variable_is_named() {
    let err = Settings::default().secrets().unwrap_err().to_string();
    assert!(err.starts_with("KYC__CRYPTO__DATA_KEY is not set"), "{err}");
    let mut s = keyed();
    s.crypto.transit_key = None;
    let err = s.secrets().unwrap_err().to_string();
    assert!(
        err.starts_with("KYC__CRYPTO__TRANSIT_KEY is not set"),
        "{err}"
    );
    let mut s = keyed();
    s.crypto.data_key = None;
    let err = s.secrets().unwrap_err().to_string();
    assert!(err.starts_with("KYC__CRYPTO__DATA_KEY is not set"), "{err}");
}

#[test]
fn dev_fills_in_missing_keys_and_configured_keys_win() {
    let mut s = Settings {
        dev: true,
        ..Settings::default()
    };
    let secrets = s.secrets().unwrap();
    assert_eq!(secrets.data_key.0, "dev");
    assert_eq!(secrets.transit.current().id(), "dev");
    s.crypto.transit_key = Some(SecretString::from(KEY));
    s.crypto.transit_key_id = "t7".to_owned();
    assert_eq!(s.secrets().unwrap().transit.current().id(), "t7");
}

#[test]
fn bad_transit_keys_are_refused_without_quoting_them() {
    let mut s = keyed();
    s.crypto.transit_key = Some(SecretString::from("c2VjcmV0"));
    let err = s.secrets().unwrap_err().to_string();
    assert!(
        err.contains("32 bytes") && !err.contains("c2VjcmV0"),
        "{err}"
    );
    let mut s = keyed();
    s.crypto.transit_keyring = Some(SecretString::from(format!("old:{KEY},t1:{KEY}")));
    assert!(s.secrets().is_err(), "the current id listed again");
    s.crypto.transit_keyring = Some(SecretString::from(format!("old:{KEY}")));
    assert!(s.secrets().is_ok());
}
