//! Edges the mutation run (`cargo xtask mutants`) found unproven: the block budget counted in
//! both directions to the exact block, the raw MAC against an independent HMAC, the names of
//! dropped children, the bound on their list, the peer's replaced key after its re-key, and
//! what `Debug` shows.

use crate::rules::{c_of, p, recv, rekey, send};
use crate::{TestRng, chat, pair_seeded, pair_with_keys};
use esession_crypto::HashAlg;
use esession_stanza::{DEFAULT_MAX_BLOCKS, EncryptOptions, MAX_REPORTED, NS, SealOptions};
use hmac::{KeyInit, Mac};
use minidom::Element;

/// The counter advance (blocks) of sending `text` in a fresh pair made from `seed`.
fn blocks_of(text: &str, seed: u64) -> u64 {
    let (mut a, _) = pair_seeded(&p(), seed);
    let before = a.send_counter().unwrap();
    let _ = send(&mut a, text);
    (a.send_counter().unwrap() - before) as u64
}

/// X200-11.4-01: the budget counts every block sent and every block received since the key
/// exchange, and a re-key is due exactly when the next stanza would reach it.
#[test]
fn block_budget_counts_both_directions_to_the_block() {
    let sent = blocks_of("budget", 7);
    assert!(sent >= 2);
    let mut prm = p();
    // Room for what was sent plus exactly two more blocks (the next one and one more).
    prm.max_blocks = sent + 3;
    let (mut a, mut b) = pair_seeded(&prm, 7);
    assert!(a.is_sending(), "a new session sends");
    assert!(!a.needs_rekey(32), "nothing counted yet");
    let w = send(&mut a, "budget");
    // Sender: `sent` blocks counted; a 16-octet stanza (1 block + 1) fits, a 32-octet one does not.
    assert!(!a.needs_rekey(16));
    assert!(a.needs_rekey(32));
    // Receiver: the same blocks, counted on receipt.
    assert!(!b.needs_rekey(32));
    assert!(recv(&mut b, &w).is_some());
    assert!(!b.needs_rekey(16));
    assert!(b.needs_rekey(32));
}

/// The default budget is the documented one: 2^32 - 2^20 blocks, under the 2^32 of §11.4.
#[test]
fn default_block_budget_is_two_to_the_32_minus_two_to_the_20() {
    assert_eq!(DEFAULT_MAX_BLOCKS, (1u64 << 32) - (1u64 << 20));
}

/// hazmat::mac is HMAC(KM, m_content | counter octets), computed here with the hmac crate.
#[test]
fn raw_mac_is_an_independent_hmac() {
    let (km, content, counter) = (b"mac key".as_slice(), b"<data>x</data>".as_slice(), [0u8, 1, 2]);
    let ours = esession_stanza::hazmat::mac(&HashAlg::Sha256, km, content, &counter).unwrap();
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(km).unwrap();
    m.update(content);
    m.update(&counter);
    assert_eq!(ours, m.finalize().into_bytes().to_vec());
}

/// The raw open (hazmat) gives back exactly what the raw seal sealed.
#[test]
fn raw_seal_and_open_round_trip() {
    let (mut a, mut b) = pair_seeded(&p(), 11);
    let c = a.seal(Some(b"<body xmlns='jabber:client'>raw</body>"), SealOptions::default()).unwrap();
    let opened = b.open(&c).unwrap();
    assert_eq!(opened.m.as_deref(), Some(b"<body xmlns='jabber:client'>raw</body>".as_slice()));
    assert_eq!(b.recv_counter(), a.send_counter().unwrap());
}

/// Dropped children are named `name` in the stanza's namespace and `{namespace}name` in
/// another, each part cut to 64 octets; at most MAX_REPORTED are named.
#[test]
fn dropped_children_are_named_and_their_list_bounded() {
    let (mut a, mut b) = pair_seeded(&p(), 12);
    let mut w = send(&mut a, "hello");
    w.append_child(Element::builder("body", "jabber:client").append("clear").build());
    w.append_child(Element::bare("x", "urn:example:one"));
    let long = "n".repeat(100);
    w.append_child(Element::bare(long.as_str(), "urn:example:two"));
    let (_, opened) = b.decrypt(&w).unwrap();
    assert_eq!(
        opened.unprotected,
        vec![
            "body".to_owned(),
            "{urn:example:one}x".to_owned(),
            format!("{{urn:example:two}}{}", "n".repeat(64))
        ]
    );
    // A name cut at 64 octets never splits a character: "é" (2 octets) at octets 63-64 goes.
    let mut w = send(&mut a, "cut");
    let wide = format!("{}\u{e9}", "a".repeat(63));
    w.append_child(Element::bare(wide.as_str(), "urn:example:three"));
    let (_, opened) = b.decrypt(&w).unwrap();
    assert_eq!(opened.unprotected, vec![format!("{{urn:example:three}}{}", "a".repeat(63))]);
    // More than MAX_REPORTED: the list stops at MAX_REPORTED.
    let mut w = send(&mut a, "again");
    for i in 0..=MAX_REPORTED {
        w.append_child(Element::bare(format!("e{i}").as_str(), "urn:example:many"));
    }
    let (_, opened) = b.decrypt(&w).unwrap();
    assert_eq!(opened.unprotected.len(), MAX_REPORTED);
}

/// X200-10-02 (the acceptor's side): once Bob has accepted Alice's re-key, the key Alice MACed
/// that stanza with (her old KM_A) may be published by Bob; it verifies nothing Alice sends
/// from then on.
#[test]
fn the_acceptor_publishes_the_peers_replaced_key() {
    let (mut a, mut b, raw) = pair_with_keys(&p(), 13);
    let w = rekey(&mut a, Some("new keys"), 14);
    assert!(recv(&mut b, &w).is_some());
    let out = b
        .encrypt(
            &chat("with old keys"),
            EncryptOptions { rekey: false, publish_old: true },
            &mut TestRng::new(15),
        )
        .unwrap();
    let olds: Vec<Vec<u8>> = c_of(&out)
        .children()
        .filter(|c| c.is("old", NS))
        .map(|o| esession_crypto::mpi::b64_decode(&o.text()).unwrap())
        .collect();
    assert!(olds.iter().any(|k| k.as_slice() == raw.km.expose_secret()), "Alice's replaced KM_A");
}

/// `Debug` names the type and its public facts, never a key or content.
#[test]
fn debug_shows_facts_not_secrets() {
    let (mut a, mut b) = pair_seeded(&p(), 16);
    let session = format!("{a:?}");
    assert!(
        session.starts_with("Session") && session.contains("cipher") && session.contains("recv_sets"),
        "{session}"
    );
    let w = send(&mut a, "very secret words");
    let (_, opened) = b.decrypt(&w).unwrap();
    let shown = format!("{opened:?}");
    assert!(shown.starts_with("Opened") && !shown.contains("secret words"), "{shown}");
    let keys = esession_stanza::DirectionKeys {
        cipher_key: esession_crypto::SecretBytes::new(vec![0xAB; 16]),
        mac_key: esession_crypto::SecretBytes::new(vec![0xCD; 32]),
        counter: 5,
    };
    let shown = format!("{keys:?}");
    assert!(
        shown.starts_with("DirectionKeys")
            && shown.contains('5')
            && !shown.contains("171")
            && !shown.to_lowercase().contains("abab"),
        "{shown}"
    );
}

/// X200-5-04: an error stanza's `<error/>` may carry a `<c/>` of its own (the application's
/// condition, encrypted): on receipt it is decrypted in place, the `<error/>` keeps its clear
/// condition, and no `<c/>` is left in what is delivered.
#[test]
fn a_c_inside_error_is_decrypted_in_place() {
    let (mut a, mut b) = pair_seeded(&p(), 17);
    let outer = a.seal(Some(b"<query xmlns='jabber:iq:version'/>"), SealOptions::default()).unwrap();
    let inner = a.seal(Some(b"<app-condition xmlns='urn:example:app'/>"), SealOptions::default()).unwrap();
    let mut error = esession_forms::xml::parse(
        "<error xmlns='jabber:client' type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    )
    .unwrap();
    error.append_child(inner.to_element());
    let mut stanza = esession_forms::xml::parse("<iq xmlns='jabber:client' type='error' id='e1'/>").unwrap();
    stanza.append_child(outer.to_element());
    stanza.append_child(error);
    let (clear, _) = b.decrypt(&stanza).unwrap();
    assert!(clear.get_child("query", "jabber:iq:version").is_some());
    let error = clear.get_child("error", "jabber:client").unwrap();
    assert!(error.get_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas").is_some());
    assert!(error.get_child("app-condition", "urn:example:app").is_some(), "decrypted in place");
    assert!(error.get_child("c", NS).is_none() && clear.get_child("c", NS).is_none());
}
