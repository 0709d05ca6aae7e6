//! Decrypted content parsed by `content::parse` (the fast path with minidom's parser behind it)
//! and by `content::parse_general` (minidom's parser alone): both must accept and reject the
//! same inputs and build equal elements that serialize identically. What they accept goes back
//! through esession's own serializer (`content::serialize`, what a sender puts in m) and must
//! parse to the same elements: namespaced attributes (`xml:lang`, declared prefixes) included,
//! never two attributes of one name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minidom::Element;

fn xml(e: &Element) -> Vec<u8> {
    let mut v = Vec::new();
    e.write_to(&mut v).expect("an element from the parser serializes");
    v
}

fuzz_target!(|data: &[u8]| {
    let ns = "jabber:client";
    match (esession_stanza::content::parse(ns, data), esession_stanza::content::parse_general(ns, data)) {
        (Ok(fast), Ok(general)) => {
            assert_eq!(fast, general);
            // The sender's serializer round-trips what the receiver accepts (or refuses it
            // clearly at encrypt time; it never writes something that reads differently).
            if let Ok(m) = esession_stanza::content::serialize(ns, &fast) {
                let again = esession_stanza::content::parse_general(ns, &m).expect("our own m parses");
                assert_eq!(again, fast, "serialize then parse changed the content");
            }
            // minidom's writer panics on some prefix declarations that its parser accepts
            // (`<x xmlns:p='u'><y xmlns:p='u'/></x>`, fuzz/regressions/content/crash-fe85207a...;
            // an upstream bug, docs/security.md). The fast path never takes prefixed
            // declarations, so its serialization is still compared on everything it takes.
            if !data.windows(6).any(|w| w == b"xmlns:") {
                let a: Vec<_> = fast.iter().map(xml).collect();
                let b: Vec<_> = general.iter().map(xml).collect();
                assert_eq!(a, b);
            }
        }
        (Err(_), Err(_)) => {}
        (fast, general) => panic!("parse {:?} but parse_general {:?}", fast.is_ok(), general.is_ok()),
    }
});
