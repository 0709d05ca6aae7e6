//! Termination (§5), content in the last negotiation stanza, object encryption.

use crate::*;
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup};

/// Small, fast choices (group 1 is weak: accepted because the tests ask for it).
fn small(mut c: Config) -> Config {
    c.support.crypto = CryptoProvider::all();
    c.provider = CryptoProvider {
        modp: vec![ModpGroup::G1],
        crypt_algs: vec![CryptAlg::Aes128Ctr],
        hash_algs: vec![HashAlg::Sha256],
        ..c.provider
    };
    c
}

fn three_message_cfgs() -> (Arc<Config>, Arc<Config>, Side, Side) {
    let (ra, rb, _, _) = keys();
    let (pa, pb) = (ra.public_key(), rb.public_key());
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    a.trust.trust(&bare(BOB), pb);
    b.trust.trust(&bare(ALICE), pa);
    (Arc::new(small(Config::with_identity(ra))), Arc::new(small(Config::with_identity(rb))), a, b)
}

fn body_of(e: &Element) -> Option<String> {
    e.get_child("body", "jabber:client").map(Element::text)
}

#[test]
fn termination_with_encrypted_acknowledgement() {
    for alice_ends in [true, false] {
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        let cfg = Arc::new(small(Config::default()));
        negotiate(Mode::Four, cfg.clone(), cfg, &mut a, &mut b, no_tamper());
        exchange(&mut a, &mut b);
        let (mut ea, mut eb) = (a.established.take().unwrap(), b.established.take().unwrap());
        let (ender, other) = if alice_ends { (&mut ea, &mut eb) } else { (&mut eb, &mut ea) };
        let mut r = TestRng::new(3);
        let term = ender.terminate(true, &mut r).unwrap();
        assert!(!String::from(&term).contains("terminate"), "the terminate form is encrypted");
        assert_eq!(ender.phase(), Phase::Terminating);
        // Nothing more may be sent by the terminating side.
        assert!(ender.encrypt(&chat("late"), esession_stanza::EncryptOptions::default(), &mut r).is_err());
        let ack = match other.receive(&term, true, &mut r).unwrap() {
            Received::Terminated { ack: Some(ack), verified: true } => ack,
            x => panic!("expected a terminate, got {x:?}"),
        };
        assert_eq!(other.phase(), Phase::Closed);
        assert!(other.encrypt(&chat("late"), esession_stanza::EncryptOptions::default(), &mut r).is_err());
        assert!(matches!(
            ender.receive(&ack, false, &mut r).unwrap(),
            Received::Terminated { ack: None, verified: true }
        ));
        assert_eq!(ender.phase(), Phase::Closed);
    }
}

#[test]
fn clear_terminate_is_accepted_but_not_verified() {
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let cfg = Arc::new(small(Config::default()));
    negotiate(Mode::Four, cfg.clone(), cfg, &mut a, &mut b, no_tamper());
    let mut eb = b.established.take().unwrap();
    let clear = esession_forms::xml::parse(
        "<message xmlns='jabber:client'><thread>thread-1</thread><feature xmlns='http://jabber.org/protocol/feature-neg'>\
         <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:ssn</value></field>\
         <field var='terminate'><value>1</value></field></x></feature></message>",
    )
    .unwrap();
    assert!(matches!(
        eb.receive(&clear, false, &mut TestRng::new(1)).unwrap(),
        Received::Terminated { verified: false, .. }
    ));
    assert_eq!(eb.phase(), Phase::Closed);
}

#[test]
fn content_in_the_last_negotiation_stanza() {
    // 3-message: Alice's first message rides with her identity.
    let (ca, cb, mut a, mut b) = three_message_cfgs();
    negotiate_with(
        Mode::Three,
        ca,
        cb,
        &mut a,
        &mut b,
        no_tamper(),
        Some((chat("with my identity"), false)),
        None,
    );
    assert_eq!(b.received.len(), 1, "{:?}", b.rejected);
    assert_eq!(body_of(&b.received[0]).as_deref(), Some("with my identity"));
    exchange(&mut a, &mut b);
    // 4-message: Bob's first message rides with his identity.
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let cfg = Arc::new(small(Config::default()));
    negotiate_with(
        Mode::Four,
        cfg.clone(),
        cfg,
        &mut a,
        &mut b,
        no_tamper(),
        None,
        Some(chat("with Bob's identity")),
    );
    assert_eq!(body_of(&a.received[0]).as_deref(), Some("with Bob's identity"));
    exchange(&mut a, &mut b);
}

#[test]
fn tampered_piggyback_is_not_delivered() {
    let (ca, cb, mut a, mut b) = three_message_cfgs();
    negotiate_with(
        Mode::Three,
        ca,
        cb,
        &mut a,
        &mut b,
        Box::new(|i, _, s: Element| {
            if i != 2 {
                return Some(s);
            }
            // Flip a character of <data/> in the <c/> that came with the accept.
            let text = String::from(&s);
            let start = text.find("<data>").unwrap() + 6;
            let mut bytes = text.into_bytes();
            bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
            Some(esession_forms::xml::parse(&String::from_utf8(bytes).unwrap()).unwrap())
        }),
        Some((chat("secret"), false)),
        None,
    );
    assert!(b.received.is_empty(), "nothing that failed its MAC is delivered");
    assert!(matches!(b.rejected, Some(Error::Stanza(_))));
}

#[test]
fn object_encryption_ends_the_session_with_the_stanza() {
    let (ca, cb, mut a, mut b) = three_message_cfgs();
    negotiate_with(Mode::Three, ca, cb, &mut a, &mut b, no_tamper(), Some((chat("one object"), true)), None);
    assert_eq!(body_of(&b.received[0]).as_deref(), Some("one object"));
    assert_eq!(a.established.as_ref().unwrap().phase(), Phase::Closed);
    assert_eq!(b.established.as_ref().unwrap().phase(), Phase::Closed);
}

#[test]
fn disco_feature() {
    assert_eq!(DISCO_FEATURE, "http://www.xmpp.org/extensions/xep-0116.html#ns");
}

/// The number of `<value/>`s of the field `var` anywhere in `e`.
fn values_of(e: &Element, var: &str) -> Option<usize> {
    if e.name() == "field" && e.attr("var") == Some(var) {
        return Some(e.children().filter(|c| c.name() == "value").count());
    }
    e.children().find_map(|c| values_of(c, var))
}

#[test]
fn accept_carries_random_rshash_decoys() {
    // X116-4.6.4-04: Alice appends random decoys to rshashes (no retained secret here, so the
    // field holds decoys only); two runs never repeat a decoy.
    let mut seen: Vec<Option<usize>> = Vec::new();
    let mut firsts: Vec<String> = Vec::new();
    for (seed, decoys) in [(1u64, 2usize), (3, 5)] {
        let (mut a, mut b) = (Side::new(seed), Side::new(seed + 1));
        let mut cfg = small(Config::default());
        cfg.decoys = decoys;
        let cfg = Arc::new(cfg);
        let tamper: Tamper<'_> = Box::new(|i, from_alice, s: Element| {
            if i == 2 && from_alice {
                seen.push(values_of(&s, "rshashes"));
                firsts.push(String::from(&s));
            }
            Some(s)
        });
        negotiate(Mode::Four, cfg.clone(), cfg, &mut a, &mut b, tamper);
        assert!(a.established.is_some() && b.established.is_some(), "{:?}", b.rejected);
    }
    assert_eq!(seen, [Some(2), Some(5)]);
    assert_ne!(firsts[0], firsts[1]);
}

#[test]
fn a_disclosure_other_than_never_is_an_alert() {
    // X116-7.6-01: a peer (another implementation) offers `disclosure` enabled and Bob accepts
    // it: he is told at once. (Our own requests offer `never` only.)
    let (mut a, mut b) = (Side::new(5), Side::new(6));
    let cfg = Arc::new(small(Config::default()));
    let mut bob_cfg = small(Config::default());
    bob_cfg.support.disclosure = vec![esession_forms::names::Disclosure::Enabled];
    let tamper: Tamper<'_> = Box::new(|i, from_alice, mut s: Element| {
        if i == 0 && from_alice {
            assert!(offer_enabled(&mut s), "the request has a disclosure field");
        }
        Some(s)
    });
    negotiate(Mode::Four, cfg, Arc::new(bob_cfg), &mut a, &mut b, tamper);
    assert!(
        b.alerts.contains(&Alert::Disclosure(esession_forms::names::Disclosure::Enabled)),
        "alerts {:?}, rejected {:?}",
        b.alerts,
        b.rejected
    );
}

/// Makes the `disclosure` field offer `enabled` (first) as well as `never`.
fn offer_enabled(e: &mut Element) -> bool {
    if e.name() == "field" && e.attr("var") == Some("disclosure") {
        let ns = e.ns();
        let option = |v: &str| {
            Element::builder("option", ns.as_str())
                .append(Element::builder("value", ns.as_str()).append(v))
                .build()
        };
        let kept: Vec<Element> = e.children().filter(|c| c.name() != "option").cloned().collect();
        let mut f = Element::builder("field", ns.as_str()).build();
        for (k, v) in e.attrs() {
            f.set_attr(k.0.clone(), k.1.clone(), v.to_owned());
        }
        for c in kept {
            f.append_child(c);
        }
        f.append_child(option("enabled"));
        f.append_child(option("never"));
        *e = f;
        return true;
    }
    e.children_mut().any(offer_enabled)
}

#[test]
fn pooled_key_pairs_are_the_ones_sent_and_used_once() {
    // Issue 9: a negotiation started from a DhPool uses the pooled pair (its hash is Alice's He,
    // Bob's pooled d is his dhkeys) and leaves the pool without it.
    use esession_crypto::{DhKeyPair, DhPool, hash::sha256, mpi::b64_encode};
    let cfg = Arc::new(small(Config::default()));
    let mut rng = TestRng::new(40);
    let (mut pa, mut pb) =
        (DhPool::new(&[ModpGroup::G1], 1).unwrap(), DhPool::new(&[ModpGroup::G1], 1).unwrap());
    let ea = DhKeyPair::generate(ModpGroup::G1, &mut rng).unwrap();
    let db = DhKeyPair::generate(ModpGroup::G1, &mut rng).unwrap();
    let (he, d) = (b64_encode(&sha256(ea.public())), b64_encode(db.public()));
    assert!(pa.put(ea).is_ok() && pb.put(db).is_ok());
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-p");
    let mut bob = Responder::new(cfg, j(ALICE), "thread-p");
    let (mut a, mut b) = (Side::new(41), Side::new(42));
    alice.start(Mode::Four, &mut PooledEntropy { rng: &mut a.rng, pool: &mut pa }).unwrap();
    assert_eq!(pa.available(ModpGroup::G1), 0, "Alice's pair left the pool");
    let mut sent = Vec::new();
    for _ in 0..3 {
        while let Some(o) = alice.poll_output() {
            if let Output::Send(s) = o {
                sent.push(String::from(&s));
                let mut st = Stores { trust: &mut b.trust, retained: &mut b.retained };
                bob.handle(at(0), &s, &mut PooledEntropy { rng: &mut b.rng, pool: &mut pb }, &mut st)
                    .unwrap();
            } else if let Output::Established(e) = o {
                a.established = Some(e);
            }
        }
        while let Some(o) = bob.poll_output() {
            if let Output::Send(s) = o {
                sent.push(String::from(&s));
                let mut st = Stores { trust: &mut a.trust, retained: &mut a.retained };
                alice
                    .handle(at(0), &s, &mut PooledEntropy { rng: &mut a.rng, pool: &mut pa }, &mut st)
                    .unwrap();
            } else if let Output::Established(e) = o {
                b.established = Some(e);
            }
        }
    }
    assert!(a.established.is_some() && b.established.is_some());
    assert!(sent[0].contains(&he), "the request commits to the pooled e");
    assert!(sent[1].contains(&d), "the response carries the pooled d");
    assert_eq!(pb.available(ModpGroup::G1), 0, "Bob's pair left the pool");
    // Empty pools fall back to fresh pairs: a second negotiation still works.
    let mut alice2 = Initiator::new(Arc::new(small(Config::default())), j(BOB), "thread-q");
    alice2.start(Mode::Four, &mut PooledEntropy { rng: &mut a.rng, pool: &mut pa }).unwrap();
    assert!(matches!(alice2.poll_output(), Some(Output::Send(_))));
}
