//! XEP-0116 §8.6: the mandatory compression algorithm `none`.

use crate::*;
use esession_crypto::mpi;
use esession_stanza::{EncryptOptions, NS};

/// X116-8.6-01: `none` is supported in every build, and a session that negotiated it sends the
/// stanza's content uncompressed: the `<data/>` decrypted with Alice's raw sending keys is the
/// serialized content itself (the XML of the body, readable as is), and Bob reads it.
#[test]
fn compress_none_is_supported_and_sends_the_content_as_is() {
    assert!(esession_stanza::compress::supported(&Compress::None));
    let p = params(CryptAlg::Aes128Ctr, HashAlg::Sha256);
    assert_eq!(p.compress, Compress::None);
    let (mut alice, mut bob, raw) = pair_with_keys(&p, 7);
    let text = "a body long enough to span several cipher blocks, sent without compression";
    let wire = alice.encrypt(&chat(text), EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    let data = wire.get_child("c", NS).and_then(|c| c.get_child("data", NS)).unwrap().text();
    let mut plain = mpi::b64_decode(&data).unwrap();
    let _ = raw.cipher.decrypt(raw.counter, &mut plain);
    let plain = String::from_utf8(plain).expect("uncompressed XML");
    assert!(plain.contains(&format!(">{text}</body>")), "{plain}");
    assert_eq!(body(&bob.decrypt(&wire).unwrap().0).as_deref(), Some(text));
}
