//! Sealing secrets at rest.

use crate::rng;
use esession_crypto::seal::PassphraseParams;
use esession_crypto::{Error, SealingKey, SecretBytes};

fn cheap() -> PassphraseParams {
    PassphraseParams { memory_kib: 64, iterations: 1, parallelism: 1 }
}

#[test]
fn seal_open_round_trip_and_tampering() {
    let mut r = rng();
    let key = SealingKey::generate(&mut r);
    let blob = key.seal(&mut r, b"retained/alice@example.org", b"secret value").unwrap();
    assert_eq!(key.open(b"retained/alice@example.org", &blob).unwrap().expose_secret(), b"secret value");
    // Two seals of the same value differ (random nonce).
    assert_ne!(blob, key.seal(&mut r, b"retained/alice@example.org", b"secret value").unwrap());
    assert_eq!(key.open(b"retained/bob@example.com", &blob).map(|_| ()), Err(Error::Crypto), "wrong aad");
    for i in 1..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x10;
        assert_eq!(
            key.open(b"retained/alice@example.org", &bad).map(|_| ()),
            Err(Error::Crypto),
            "octet {i}"
        );
    }
    let mut bad = blob.clone();
    bad[0] = 2;
    assert!(matches!(key.open(b"retained/alice@example.org", &bad), Err(Error::Encoding(_))));
    assert!(matches!(key.open(b"", &blob[..20]), Err(Error::Encoding(_))));
    assert!(matches!(key.open(b"", &[]), Err(Error::Encoding(_))));
    let other = SealingKey::generate(&mut r);
    assert_eq!(other.open(b"retained/alice@example.org", &blob).map(|_| ()), Err(Error::Crypto));
}

#[test]
fn passphrase_keys_are_deterministic_per_salt() {
    let mut r = rng();
    let a = SealingKey::from_passphrase(b"correct horse", b"saltsalt", cheap()).unwrap();
    let b = SealingKey::from_passphrase(b"correct horse", b"saltsalt", cheap()).unwrap();
    let c = SealingKey::from_passphrase(b"correct horse", b"othersalt", cheap()).unwrap();
    let blob = a.seal(&mut r, b"", b"x").unwrap();
    assert_eq!(b.open(b"", &blob).unwrap().expose_secret(), b"x");
    assert!(c.open(b"", &blob).is_err());
    assert!(SealingKey::from_passphrase(b"p", b"short", cheap()).is_err(), "salt below 8 octets");
    assert!(SealingKey::from_bytes(SecretBytes::new(vec![0; 31])).is_err());
    assert!(format!("{a:?}").contains("redacted"));
}
