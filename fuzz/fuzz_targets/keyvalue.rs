//! XML-DSig `<KeyValue/>` and decrypted identities (`pubKey | <SignatureValue/>`) on arbitrary
//! input: no panic; a parsed key re-serializes to a key that parses to the same key.
#![no_main]

use esession_crypto::Profile;
use esession_forms::keyvalue::{parse_identity, parse_key_value, pubkey_element};
use esession_forms::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for p in [Profile::Xep, Profile::Gajim] {
        let _ = parse_identity(p, data);
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(e) = xml::parse(text) else { return };
    if let Ok(key) = parse_key_value(&e) {
        for p in [Profile::Xep, Profile::Gajim] {
            assert_eq!(parse_key_value(&pubkey_element(p, &key)).as_ref(), Ok(&key));
        }
    }
});
