//! Every decoder of esession-crypto on arbitrary input: Base64, §6.1 counters, MODP group
//! numbers, peer DH values (range check), public-key components and sealed blobs. None may panic;
//! whatever decodes must round-trip.
#![no_main]

use esession_crypto::{ModpGroup, PublicKey, SealingKey, SecretBytes, mpi};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = mpi::b64_decode(text) {
            assert_eq!(mpi::b64_encode(&bytes), text);
        }
        if let Ok(g) = text.parse::<ModpGroup>() {
            assert_eq!(g.to_string(), text);
        }
    }
    if let Ok(v) = mpi::decode_u128(data) {
        assert_eq!(mpi::decode_u128(&mpi::encode_u128(v)), Ok(v));
    }
    if let Ok(params) = ModpGroup::G1.params() {
        let _ = params.check_public(data);
    }
    let (a, b) = data.split_at(data.len() / 2);
    let _ = PublicKey::rsa(a, b);
    if let Ok(key) = SealingKey::from_bytes(SecretBytes::new(vec![7; 32])) {
        assert!(key.open(b"aad", data).is_err() || data.len() > 28);
    }
});
