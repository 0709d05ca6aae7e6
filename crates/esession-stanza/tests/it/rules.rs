//! Every rule of XEP-0200 with its negative cases.

use crate::{TestRng, body, chat, pair, pair_seeded, params};
use esession_crypto::{CryptAlg, HashAlg};
use esession_stanza::{EncryptOptions, Error, NS, SealOptions, Session, TerminationCause};
use minidom::Element;

pub(crate) fn p() -> esession_stanza::Params {
    params(CryptAlg::Aes128Ctr, HashAlg::Sha256)
}

pub(crate) fn c_of(e: &Element) -> &Element {
    e.get_child("c", NS).unwrap()
}

/// Rebuilds `wire` with one <c/> child's text changed.
fn with_c_child(wire: &Element, name: &str, f: impl Fn(&str) -> String) -> Element {
    let mut out = Element::bare(wire.name(), wire.ns());
    for ((ns, n), v) in wire.attrs().iter() {
        out.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
    }
    for child in wire.children() {
        if child.is("c", NS) {
            let mut c = Element::bare("c", NS);
            for gc in child.children() {
                if gc.name() == name {
                    c.append_child(Element::builder(name, NS).append(f(&gc.text())).build());
                } else {
                    c.append_child(gc.clone());
                }
            }
            out.append_child(c);
        } else {
            out.append_child(child.clone());
        }
    }
    out
}

fn flip_b64(text: &str, bit: usize) -> String {
    let mut raw = esession_crypto::mpi::b64_decode(text).unwrap();
    raw[bit / 8] ^= 1 << (bit % 8);
    esession_crypto::mpi::b64_encode(&raw)
}

pub(crate) fn send(s: &mut Session, text: &str) -> Element {
    s.encrypt(&chat(text), EncryptOptions::default(), &mut TestRng::new(99)).unwrap()
}

pub(crate) fn recv(s: &mut Session, wire: &Element) -> Option<String> {
    body(&s.decrypt(wire).unwrap().0)
}

#[test]
fn round_trip_keeps_thread_amp_and_order() {
    let (mut a, mut b) = pair(&p());
    let mut m = chat("Hello, Bob!");
    m.append_child(
        esession_forms::xml::parse("<amp xmlns='http://jabber.org/protocol/amp' per-hop='true'><rule action='error' condition='match-resource' value='exact'/></amp>").unwrap(),
    );
    let wire = a.encrypt(&m, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    let names: Vec<&str> = wire.children().map(Element::name).collect();
    assert_eq!(names, ["thread", "c", "amp"], "thread and amp stay clear, <c/> replaces the content");
    assert!(!String::from(&wire).contains("Hello"));
    assert!(c_of(&wire).get_child("mac", NS).is_some(), "the MAC inside <c/>");
    assert_eq!(c_of(&wire).children().last().map(Element::name), Some("mac"));
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert_eq!(body(&clear).as_deref(), Some("Hello, Bob!"));
    assert!(clear.get_child("active", "http://jabber.org/protocol/chatstates").is_some());
    assert!(!opened.rekeyed);
    let names: Vec<&str> = clear.children().map(Element::name).collect();
    assert_eq!(names, ["thread", "body", "active", "amp"]);
    // X200-N14-01: the thread is opaque: it arrives exactly as sent.
    let odd = " Thread\t ID é/1 ";
    let mut m = chat("x");
    m.remove_child("thread", "jabber:client");
    let mut t = esession_forms::xml::parse("<thread xmlns='jabber:client' parent='p 1'/>").unwrap();
    t.append_text(odd);
    m.append_child(t);
    let (clear, _) =
        b.decrypt(&a.encrypt(&m, EncryptOptions::default(), &mut TestRng::new(1)).unwrap()).unwrap();
    let thread = clear.get_child("thread", "jabber:client").unwrap();
    assert_eq!((thread.text().as_str(), thread.attr("parent")), (odd, Some("p 1")));
    assert_eq!(a.send_counter(), Some(b.recv_counter()), "both counters moved the same way");
}

#[test]
fn every_flipped_bit_of_data_and_mac_is_detected() {
    let (mut a, _) = pair_seeded(&p(), 7);
    let wire = send(&mut a, "Flip me");
    let data_len =
        esession_crypto::mpi::b64_decode(&c_of(&wire).get_child("data", NS).unwrap().text()).unwrap().len();
    for (name, len) in [("data", data_len), ("mac", 32)] {
        for bit in 0..len * 8 {
            let (_, mut b) = pair_seeded(&p(), 7);
            let bad = with_c_child(&wire, name, |t| flip_b64(t, bit));
            assert_eq!(
                b.decrypt(&bad).map(|_| ()),
                Err(Error::Terminated(TerminationCause::Mac)),
                "{name} bit {bit}"
            );
            assert!(b.is_closed(), "a MAC failure terminates the session");
            assert_eq!(b.decrypt(&wire).map(|_| ()), Err(Error::SessionClosed), "nothing after termination");
        }
    }
    // The untouched stanza verifies with a fresh receiver.
    let (_, mut b) = pair_seeded(&p(), 7);
    assert_eq!(recv(&mut b, &wire).as_deref(), Some("Flip me"));
}

#[test]
fn replay_drop_and_reorder_are_detected() {
    let (mut a, _) = pair_seeded(&p(), 3);
    let w1 = send(&mut a, "one");
    let w2 = send(&mut a, "two");
    let w3 = send(&mut a, "three");
    // Replay.
    let (_, mut b) = pair_seeded(&p(), 3);
    assert_eq!(recv(&mut b, &w1).as_deref(), Some("one"));
    assert_eq!(b.decrypt(&w1).map(|_| ()), Err(Error::Terminated(TerminationCause::Mac)));
    // Drop.
    let (_, mut b) = pair_seeded(&p(), 3);
    assert_eq!(recv(&mut b, &w1).as_deref(), Some("one"));
    assert!(b.decrypt(&w3).is_err(), "w2 was dropped");
    // Reorder.
    let (_, mut b) = pair_seeded(&p(), 3);
    assert!(b.decrypt(&w2).is_err(), "w2 before w1");
    let (_, mut b) = pair_seeded(&p(), 3);
    for (w, t) in [(&w1, "one"), (&w2, "two"), (&w3, "three")] {
        assert_eq!(recv(&mut b, w).as_deref(), Some(t));
    }
}

#[test]
fn none_cipher_empty_content_sizes_and_text() {
    // Cipher none: <data/> carries Base64 of the plaintext, the counter moves by 1, MACs hold.
    let (mut a, mut b) = pair(&params(CryptAlg::None, HashAlg::Sha256));
    let c0 = a.send_counter().unwrap();
    let wire = send(&mut a, "visible");
    assert_eq!(a.send_counter(), Some(c0 + 1));
    let data = esession_crypto::mpi::b64_decode(&c_of(&wire).get_child("data", NS).unwrap().text()).unwrap();
    assert!(String::from_utf8(data).unwrap().contains("visible"));
    assert_eq!(recv(&mut b, &wire).as_deref(), Some("visible"));
    // Empty content: no <data/>, counter + 1, still MACed.
    let (mut a, mut b) = pair(&p());
    let c0 = a.send_counter().unwrap();
    let empty =
        esession_forms::xml::parse("<message xmlns='jabber:client'><thread>t</thread></message>").unwrap();
    let wire = a.encrypt(&empty, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    assert!(c_of(&wire).get_child("data", NS).is_none());
    assert_eq!(a.send_counter(), Some(c0 + 1));
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert_eq!(opened.m, None);
    assert_eq!(clear.children().count(), 1);
    // 1 octet, 64 KiB and non-ASCII bodies, every cipher.
    for alg in esession_crypto::CryptAlg::SUPPORTED {
        let (mut a, mut b) = pair(&params(alg.clone(), HashAlg::Sha256));
        let big = "é".repeat(32 * 1024);
        for text in ["x", "Grüße, 世界 🌍 <&>\"'", big.as_str()] {
            let c0 = a.send_counter().unwrap();
            let wire = send(&mut a, text);
            assert_eq!(recv(&mut b, &wire).as_deref(), Some(text), "{alg}");
            if alg != CryptAlg::None {
                assert!(a.send_counter().unwrap() - c0 >= 1);
            }
        }
    }
}

#[test]
fn stanza_types_limited_to_the_negotiated_ones() {
    let mut prm = p();
    prm.stanzas = vec![esession_forms::names::StanzaType::Message];
    let (mut a, _) = pair(&prm);
    let presence =
        esession_forms::xml::parse("<presence xmlns='jabber:client'><show>dnd</show></presence>").unwrap();
    assert_eq!(
        a.encrypt(&presence, EncryptOptions::default(), &mut TestRng::new(1)),
        Err(Error::NotNegotiated("presence".into()))
    );
    let other = esession_forms::xml::parse("<stream-ish xmlns='jabber:client'/>").unwrap();
    assert!(a.encrypt(&other, EncryptOptions::default(), &mut TestRng::new(1)).is_err());
    // A stanza that arrives without <c/> is reported, the session goes on.
    let (_, mut b) = pair(&p());
    assert_eq!(b.decrypt(&chat("clear")).map(|_| ()), Err(Error::NotEncrypted));
    assert!(!b.is_closed());
}

/// X116-4.8.2-03: only the negotiated stanza kinds are exchanged encrypted. With only
/// `message` negotiated, an encrypted presence or iq (the sender negotiated more, or a relay
/// moved a `<c/>` into another wrapper, which the MAC does not cover) is refused unread.
#[test]
fn encrypted_stanza_of_a_kind_not_negotiated_is_refused() {
    let all = p();
    let mut only_message = p();
    only_message.stanzas = vec![esession_forms::names::StanzaType::Message];
    for kind in ["presence", "iq"] {
        // Alice negotiated all three kinds, Bob's session only messages (same keys).
        let (mut a, _) = crate::pair_seeded(&all, 8);
        let (_, mut b) = crate::pair_seeded(&only_message, 8);
        let t = if kind == "iq" { "get" } else { "away" };
        let s = esession_forms::xml::parse(&format!(
            "<{kind} xmlns='jabber:client' type='{t}'><status>x</status></{kind}>"
        ))
        .unwrap();
        let wire = a.encrypt(&s, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
        let before = b.recv_counter();
        assert_eq!(b.decrypt(&wire).map(|_| ()), Err(Error::NotNegotiated(kind.into())), "{kind}");
        assert_eq!(b.recv_counter(), before, "refused unread");
        assert!(!b.is_closed());
        // The same <c/> in a message wrapper is accepted: only the wrapper was wrong.
        let mut moved = Element::bare("message", "jabber:client");
        moved.append_child(c_of(&wire).clone());
        assert!(b.decrypt(&moved).is_ok(), "{kind}");
    }
    // A message still decrypts in the message-only session.
    let (mut a, mut b) = pair(&only_message);
    assert_eq!(recv(&mut b, &send(&mut a, "hello")).as_deref(), Some("hello"));
}

/// X200-5-03: a stanza carries one `<c/>`, an immediate child. `encrypt` refuses a stanza that
/// already has one, and everything it sends has exactly one direct `<c/>` and none deeper.
#[test]
fn encrypt_emits_exactly_one_direct_c() {
    let (mut a, _) = pair(&p());
    let mut with_c = chat("x");
    with_c.append_child(Element::builder("c", NS).append(Element::builder("mac", NS).append("AA==")).build());
    assert!(matches!(
        a.encrypt(&with_c, EncryptOptions::default(), &mut TestRng::new(1)),
        Err(Error::Malformed(_))
    ));
    let err_stanza = esession_forms::xml::parse(
        "<iq xmlns='jabber:client' type='error' id='e1'><query xmlns='jabber:iq:version'/>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .unwrap();
    let presence = esession_forms::xml::parse(
        "<presence xmlns='jabber:client'><show>dnd</show><c xmlns='http://jabber.org/protocol/caps' node='n' ver='v'/></presence>",
    )
    .unwrap();
    let empty =
        esession_forms::xml::parse("<message xmlns='jabber:client'><thread>t</thread></message>").unwrap();
    for (i, stanza) in [chat("hello"), err_stanza, presence, empty].iter().enumerate() {
        for rekey in [false, true] {
            let opts = EncryptOptions { rekey, publish_old: true };
            let wire = a.encrypt(stanza, opts, &mut TestRng::new(i as u64)).unwrap();
            let direct = wire.children().filter(|c| c.is("c", NS)).count();
            assert_eq!(direct, 1, "stanza {i}");
            let deeper = wire
                .children()
                .filter(|c| !c.is("c", NS))
                .flat_map(Element::children)
                .filter(|c| c.is("c", NS))
                .count();
            assert_eq!(deeper, 0, "stanza {i}");
        }
    }
}

/// X200-11.4-01: at most 2^32 blocks per key exchange. The default budget is below it, and a
/// session asked for more keeps to 2^32 (a budget of 2^64 - 1 would never force a re-key).
#[test]
fn block_budget_never_exceeds_two_to_the_32() {
    const { assert!(esession_stanza::DEFAULT_MAX_BLOCKS <= 1 << 32) };
    assert_eq!(esession_stanza::MAX_BLOCKS_LIMIT, 1 << 32);
    let mut prm = p();
    prm.max_blocks = u64::MAX;
    let (a, _) = pair(&prm);
    assert_eq!(a.params().max_blocks, 1 << 32);
    // 2^32 blocks in the next stanza (2^36 octets) need a re-key first; 2^32 - 2 do not.
    assert!(a.needs_rekey(1 << 36));
    assert!(!a.needs_rekey(((1 << 32) - 2) * 16));
    let (d, _) = pair(&p());
    assert_eq!(d.params().max_blocks, esession_stanza::DEFAULT_MAX_BLOCKS, "a smaller budget is kept");
}

#[test]
fn iq_and_presence_and_error_stanzas() {
    let (mut a, mut b) = pair(&p());
    let iq = esession_forms::xml::parse(
        "<iq xmlns='jabber:client' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>",
    )
    .unwrap();
    let wire = a.encrypt(&iq, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    assert_eq!(wire.attr("id"), Some("v1"));
    let (clear, _) = b.decrypt(&wire).unwrap();
    assert!(clear.get_child("query", "jabber:iq:version").is_some());
    // XEP-0200 Example 5/6: the <error/> and its condition stay clear.
    let err = esession_forms::xml::parse(
        "<iq xmlns='jabber:client' type='error' id='publish1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/></pubsub>\
         <error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .unwrap();
    let wire = a.encrypt(&err, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    assert!(wire.get_child("error", "jabber:client").is_some());
    assert!(wire.get_child("pubsub", "http://jabber.org/protocol/pubsub").is_none());
    let (clear, _) = b.decrypt(&wire).unwrap();
    assert!(clear.get_child("pubsub", "http://jabber.org/protocol/pubsub").is_some());
}

#[test]
fn malformed_content_terminates() {
    // A sender that encrypts something that is not XML: the receiver verifies the MAC, decrypts,
    // finds no well-formed content and terminates; nothing is delivered.
    let (mut a, mut b) = pair(&p());
    let sealed = a.seal(Some(b"<body>unclosed"), SealOptions::default()).unwrap();
    let mut stanza = esession_forms::xml::parse("<message xmlns='jabber:client'/>").unwrap();
    stanza.append_child(sealed.to_element());
    let r = b.decrypt(&stanza);
    assert_eq!(r.map(|_| ()), Err(Error::Terminated(TerminationCause::Xml)));
    assert!(b.is_closed());
    assert_eq!(Error::Terminated(TerminationCause::Xml).condition(), Some("not-acceptable"));
}

pub(crate) fn rekey(s: &mut Session, text: Option<&str>, seed: u64) -> Element {
    let mut stanza = chat(text.unwrap_or(""));
    if text.is_none() {
        stanza = esession_forms::xml::parse("<message xmlns='jabber:client'><thread>t</thread></message>")
            .unwrap();
    }
    s.encrypt(&stanza, EncryptOptions { rekey: true, publish_old: false }, &mut TestRng::new(seed)).unwrap()
}

#[test]
fn rekey_by_each_side_and_new_counting() {
    let (mut a, mut b) = pair(&p());
    // Alice re-keys with data; Bob accepts.
    let w = rekey(&mut a, Some("rekey 1"), 11);
    assert!(c_of(&w).get_child("key", NS).is_some());
    assert_eq!(a.stored_sets(), 2, "Alice keeps two sets of (KC_B, KM_B, x)");
    let (clear, opened) = b.decrypt(&w).unwrap();
    assert!(opened.rekeyed);
    assert_eq!(body(&clear).as_deref(), Some("rekey 1"));
    // Bob's next stanza says <new>1</new> and uses his new keys; Alice drops her old set.
    let w = send(&mut b, "after");
    assert_eq!(c_of(&w).get_child("new", NS).map(Element::text).as_deref(), Some("1"));
    assert_eq!(recv(&mut a, &w).as_deref(), Some("after"));
    assert_eq!(a.stored_sets(), 1);
    assert!(a.publishable_old_keys() >= 1, "Alice may now publish her old MAC key");
    // Alice's next stanza uses her new keys.
    let w = send(&mut a, "new keys");
    assert_eq!(recv(&mut b, &w).as_deref(), Some("new keys"));
    // Bob re-keys with an empty stanza (counter + 1).
    let c0 = b.send_counter().unwrap();
    let w = rekey(&mut b, None, 12);
    assert_eq!(b.send_counter(), Some(c0 + 1));
    assert!(c_of(&w).get_child("data", NS).is_none());
    assert!(a.decrypt(&w).unwrap().1.rekeyed);
    let w = send(&mut a, "ack");
    assert_eq!(c_of(&w).get_child("new", NS).map(Element::text).as_deref(), Some("1"));
    assert_eq!(recv(&mut b, &w).as_deref(), Some("ack"));
    // Old keys are published in <old/> and ignored on receipt.
    let w = a
        .encrypt(&chat("old"), EncryptOptions { rekey: false, publish_old: true }, &mut TestRng::new(2))
        .unwrap();
    assert!(c_of(&w).get_child("old", NS).is_some());
    assert_eq!(a.publishable_old_keys(), 0);
    let (_, opened) = b.decrypt(&w).unwrap();
    assert!(opened.old_published >= 1);
}

#[test]
fn rekeys_crossing_in_flight() {
    // Both re-key at once: each stanza was encrypted with the sender's old keys.
    let (mut a, mut b) = pair(&p());
    let wa = rekey(&mut a, Some("from alice"), 21);
    let wb = rekey(&mut b, Some("from bob"), 22);
    assert_eq!(a.stored_sets(), 2);
    assert_eq!(b.stored_sets(), 2);
    assert_eq!(recv(&mut b, &wa).as_deref(), Some("from alice"));
    assert_eq!(recv(&mut a, &wb).as_deref(), Some("from bob"));
    // Traffic continues in both directions, several stanzas each way, also crossing.
    for i in 0..3 {
        let x = send(&mut a, &format!("a{i}"));
        let y = send(&mut b, &format!("b{i}"));
        assert_eq!(recv(&mut b, &x), Some(format!("a{i}")));
        assert_eq!(recv(&mut a, &y), Some(format!("b{i}")));
    }
    // Stanzas crossing a single re-key: Bob sends with old keys while Alice's key is in flight.
    let (mut a, mut b) = pair(&p());
    let wa = rekey(&mut a, Some("key"), 31);
    let wb1 = send(&mut b, "old keys 1");
    let wb2 = send(&mut b, "old keys 2");
    assert_eq!(recv(&mut a, &wb1).as_deref(), Some("old keys 1"), "Alice still holds the old set");
    assert_eq!(recv(&mut a, &wb2).as_deref(), Some("old keys 2"));
    assert_eq!(a.stored_sets(), 2);
    assert_eq!(recv(&mut b, &wa).as_deref(), Some("key"));
    let wb3 = send(&mut b, "new keys");
    assert_eq!(recv(&mut a, &wb3).as_deref(), Some("new keys"));
    assert_eq!(a.stored_sets(), 1);
}

#[test]
fn rekey_limits() {
    let mut prm = p();
    prm.rekey_freq = 3;
    let (mut a, mut b) = pair(&prm);
    let r = a.encrypt(&chat("x"), EncryptOptions { rekey: true, publish_old: false }, &mut TestRng::new(1));
    assert_eq!(r, Err(Error::RekeyTooSoon { remaining: 2 }));
    let w = send(&mut a, "1");
    recv(&mut b, &w);
    let w = send(&mut b, "2");
    recv(&mut a, &w);
    assert_eq!(a.rekey_wait(), 0, "the third stanza may carry the key");
    let w = rekey(&mut a, Some("3"), 5);
    assert!(b.decrypt(&w).unwrap().1.rekeyed);
    // A forced re-key when the block budget runs out.
    let mut prm = p();
    prm.max_blocks = 10;
    let (mut a, mut b) = pair(&prm);
    let w = send(&mut a, "short");
    recv(&mut b, &w);
    let long = "y".repeat(200);
    let w = send(&mut a, &long);
    assert!(c_of(&w).get_child("key", NS).is_some(), "the block budget forced a re-key");
    assert!(b.decrypt(&w).unwrap().1.rekeyed);
    // If rekey_freq forbids it, the session refuses to go on.
    let mut prm = p();
    prm.max_blocks = 10;
    prm.rekey_freq = 100;
    let (mut a, _) = pair(&prm);
    assert_eq!(
        a.encrypt(&chat(&long), EncryptOptions::default(), &mut TestRng::new(1)),
        Err(Error::KeyExhausted)
    );
}

#[test]
fn rekey_value_out_of_range_terminates() {
    // A tampered <key/> fails the MAC, which covers it.
    let (mut a, mut b) = pair(&p());
    let w = rekey(&mut a, Some("k"), 41);
    let tampered = with_c_child(&w, "key", |_| esession_crypto::mpi::b64_encode(&[1]));
    assert_eq!(b.decrypt(&tampered).map(|_| ()), Err(Error::Terminated(TerminationCause::Mac)));
    // A misbehaving peer MACs an out-of-range key correctly: the range check (A18) catches it.
    let p_bytes = esession_crypto::ModpGroup::G1.params().unwrap().p_bytes();
    let mut p_minus_1 = p_bytes.clone();
    *p_minus_1.last_mut().unwrap() -= 1;
    let mut longer = vec![1u8];
    longer.extend_from_slice(&p_bytes);
    for bad_key in [vec![0u8], vec![1], vec![], p_minus_1, p_bytes.clone(), longer] {
        let (_, mut b, raw) = crate::pair_with_keys(&p(), 60);
        let (sealed, _) = esession_stanza::hazmat::seal_raw(
            esession_crypto::Profile::Xep,
            &HashAlg::Sha256,
            &raw.cipher,
            raw.km.expose_secret(),
            raw.counter,
            Some(b"<body>x</body>"),
            Some(bad_key),
            None,
            vec![],
        )
        .unwrap();
        let mut stanza = esession_forms::xml::parse("<message xmlns='jabber:client'/>").unwrap();
        stanza.append_child(sealed.to_element());
        assert_eq!(b.decrypt(&stanza).map(|_| ()), Err(Error::Terminated(TerminationCause::RekeyRange)));
        assert!(b.is_closed());
    }
    // A <new/> that selects no stored set.
    let (_, mut b, raw) = crate::pair_with_keys(&p(), 61);
    let (sealed, _) = esession_stanza::hazmat::seal_raw(
        esession_crypto::Profile::Xep,
        &HashAlg::Sha256,
        &raw.cipher,
        raw.km.expose_secret(),
        raw.counter,
        None,
        None,
        Some(3),
        vec![],
    )
    .unwrap();
    let mut stanza = esession_forms::xml::parse("<message xmlns='jabber:client'/>").unwrap();
    stanza.append_child(sealed.to_element());
    assert_eq!(b.decrypt(&stanza).map(|_| ()), Err(Error::Terminated(TerminationCause::New)));
}

/// Issue 16.2: children added in clear beside a valid `<c/>` are not covered by its MAC. They
/// are never part of the decrypted stanza (a `<body/>` beside `<c/>` is not the message's body)
/// and are named in `Opened::unprotected`; what XEP-0200 §5 leaves in clear stays.
#[test]
fn clear_children_beside_c_are_dropped_and_named() {
    let (mut a, mut b) = pair(&p());
    let mut wire = send(&mut a, "the real text");
    wire.append_child(Element::builder("body", "jabber:client").append("injected").build());
    wire.append_child(Element::bare("x", "urn:evil"));
    wire.append_child(
        esession_forms::xml::parse("<amp xmlns='http://jabber.org/protocol/amp'><rule action='drop' condition='deliver' value='stored'/></amp>").unwrap(),
    );
    let (clear, opened) = b.decrypt(&wire).unwrap();
    let bodies: Vec<String> = clear.children().filter(|c| c.name() == "body").map(Element::text).collect();
    assert_eq!(bodies, ["the real text"], "only the decrypted body");
    assert!(!String::from(&clear).contains("injected"));
    assert!(clear.get_child("x", "urn:evil").is_none());
    assert!(clear.get_child("thread", "jabber:client").is_some(), "thread stays");
    assert!(clear.get_child("amp", "http://jabber.org/protocol/amp").is_some(), "amp stays");
    assert_eq!(opened.unprotected, ["body", "{urn:evil}x"]);
    // The session is not harmed: the next stanza decrypts.
    assert_eq!(recv(&mut b, &send(&mut a, "next")).as_deref(), Some("next"));
    // A clear child so deep that copying or dropping it recursively would overflow the stack.
    let mut deep = Element::bare("x", "urn:deep");
    for _ in 0..200_000 {
        let mut p = Element::bare("x", "urn:deep");
        p.append_child(deep);
        deep = p;
    }
    let mut wire = send(&mut a, "after");
    wire.append_child(deep);
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert_eq!(body(&clear).as_deref(), Some("after"));
    assert_eq!(opened.unprotected, ["{urn:deep}x"]);
    esession_forms::xml::dispose(wire);
    // An oversized <error/> is not kept either.
    let mut wire = send(&mut a, "third");
    let mut big_error = Element::bare("error", "jabber:client");
    for _ in 0..2000 {
        big_error.append_child(Element::bare("x", "urn:x"));
    }
    wire.append_child(big_error);
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert!(clear.get_child("error", "jabber:client").is_none());
    assert_eq!(opened.unprotected, ["error"]);
}

/// Issue 16.8: what a decryption returns shows no content in `Debug`.
#[test]
fn opened_debug_shows_no_content() {
    let (mut a, mut b) = pair(&p());
    let (_, opened) = b.decrypt(&send(&mut a, "secret words")).unwrap();
    let shown = format!("{opened:?}");
    assert!(!shown.contains("secret") && !shown.contains("115, 101"), "{shown}");
}

/// Issue 22: what XEP-0200 §5 leaves in clear is kept only where it makes sense, and the
/// application is told which kept children are clear (`Opened::clear`): an `<error/>` only in a
/// stanza of type `error`, an `<amp/>` only in a message, one of each and one `<thread/>`.
#[test]
fn clear_children_kept_are_checked_and_named() {
    const AMP: &str = "http://jabber.org/protocol/amp";
    let injected_error = || {
        esession_forms::xml::parse(
            "<error xmlns='jabber:client' type='cancel'><text>INJECTED</text><body>INJECTED</body></error>",
        )
        .unwrap()
    };
    let injected_amp = || {
        esession_forms::xml::parse(&format!(
            "<amp xmlns='{AMP}'><rule action='alert' condition='expire-at' value='INJECTED'/></amp>"
        ))
        .unwrap()
    };
    let (mut a, mut b) = pair(&p());
    // An iq result with a valid <c/>: an <error/> or <amp/> beside it is dropped and named.
    let iq = esession_forms::xml::parse(
        "<iq xmlns='jabber:client' type='result' id='r1'><query xmlns='jabber:iq:version'><name>n</name></query></iq>",
    )
    .unwrap();
    let mut wire = a.encrypt(&iq, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    wire.append_child(injected_error());
    wire.append_child(injected_amp());
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert!(!String::from(&clear).contains("INJECTED"), "{}", String::from(&clear));
    assert!(clear.get_child("query", "jabber:iq:version").is_some());
    assert_eq!(opened.unprotected, ["error", &format!("{{{AMP}}}amp")]);
    assert!(opened.clear.is_empty());
    // A message: its <amp/> is kept, and named as clear; a second <amp/> or <thread/> is not.
    let mut m = chat("real");
    m.append_child(injected_amp());
    let mut wire = a.encrypt(&m, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    wire.append_child(injected_amp());
    wire.append_child(Element::builder("thread", "jabber:client").append("other").build());
    wire.append_child(injected_error());
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert_eq!(clear.children().filter(|c| c.is("amp", AMP)).count(), 1);
    assert_eq!(
        clear.children().filter(|c| c.name() == "thread").map(Element::text).collect::<Vec<_>>(),
        ["ffd7076498744578d10edabfe7f4a866"]
    );
    assert_eq!(opened.clear, [format!("{{{AMP}}}amp")]);
    assert_eq!(opened.unprotected, [&format!("{{{AMP}}}amp"), "thread", "error"]);
    assert!(clear.get_child("error", "jabber:client").is_none(), "a chat message carries no <error/>");
    // A plain message: only <thread/> in clear, which is not named.
    let (_, opened) = b.decrypt(&send(&mut a, "plain")).unwrap();
    assert!(opened.clear.is_empty() && opened.unprotected.is_empty());
    // A stanza of type error keeps its <error/>, reported as clear: its text is not protected.
    let err = esession_forms::xml::parse(
        "<iq xmlns='jabber:client' type='error' id='e1'><query xmlns='jabber:iq:version'/>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .unwrap();
    let wire = a.encrypt(&err, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert!(clear.get_child("error", "jabber:client").is_some());
    assert_eq!(opened.clear, ["error"]);
    assert!(opened.unprotected.is_empty());
    // A presence: no <amp/> either.
    let pres =
        esession_forms::xml::parse("<presence xmlns='jabber:client'><show>dnd</show></presence>").unwrap();
    let mut wire = a.encrypt(&pres, EncryptOptions::default(), &mut TestRng::new(1)).unwrap();
    wire.append_child(injected_amp());
    let (clear, opened) = b.decrypt(&wire).unwrap();
    assert!(clear.get_child("amp", AMP).is_none());
    assert_eq!(opened.unprotected, [format!("{{{AMP}}}amp")]);
}
