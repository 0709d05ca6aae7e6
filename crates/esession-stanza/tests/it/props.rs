//! Property tests: encrypt/decrypt round trips for every cipher and hash, arbitrary content and
//! stanza types, with zlib too.

use crate::{TestRng, pair_seeded, params};
use esession_crypto::{CryptAlg, HashAlg};
use esession_forms::names::Compress;
use esession_stanza::EncryptOptions;
use minidom::Element;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn round_trips(alg in proptest::sample::select(CryptAlg::SUPPORTED.to_vec()),
                   whirlpool in any::<bool>(), zlib in any::<bool>(),
                   kind in proptest::sample::select(vec!["message", "presence", "iq"]),
                   texts in proptest::collection::vec("[ -~é世]{0,40}", 1..4)) {
        let hash = if whirlpool { HashAlg::Whirlpool } else { HashAlg::Sha256 };
        let mut prm = params(alg, hash);
        if zlib { prm.compress = Compress::Zlib; }
        let (mut a, mut b) = pair_seeded(&prm, 5);
        for t in &texts {
            let mut s = Element::bare(kind, "jabber:client");
            s.append_child(Element::builder("status", "jabber:client").append(t.as_str()).build());
            s.append_child(Element::builder("x", "urn:example").append(t.as_str()).build());
            let wire = a.encrypt(&s, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
            let (clear, _) = b.decrypt(&wire).unwrap();
            prop_assert_eq!(clear.get_child("status", "jabber:client").map(Element::text), Some(t.clone()));
            prop_assert_eq!(clear.get_child("x", "urn:example").map(Element::text), Some(t.clone()));
            // And back the other way.
            let wire = b.encrypt(&s, EncryptOptions::default(), &mut TestRng::new(2)).unwrap();
            let (clear, _) = a.decrypt(&wire).unwrap();
            prop_assert_eq!(clear.get_child("status", "jabber:client").map(Element::text), Some(t.clone()));
        }
    }
}
