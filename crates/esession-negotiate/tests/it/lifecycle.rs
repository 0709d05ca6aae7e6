//! Termination (§5), content in the last negotiation stanza, object encryption.

use crate::*;
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup};
use esession_negotiate::wire;

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

/// A 4-message session between Alice and Bob, with one chat stanza each way: (Alice's, Bob's,
/// the stanza Bob received from Alice).
fn established_pair() -> (Box<Established>, Box<Established>, Element) {
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let cfg = Arc::new(small(Config::default()));
    negotiate(Mode::Four, cfg.clone(), cfg, &mut a, &mut b, no_tamper());
    exchange(&mut a, &mut b);
    let (mut ea, mut eb) = (a.established.take().unwrap(), b.established.take().unwrap());
    let mut r = TestRng::new(8);
    let old =
        ea.encrypt(&chat("before the end"), esession_stanza::EncryptOptions::default(), &mut r).unwrap();
    assert!(matches!(eb.receive(&old, false, &mut r).unwrap(), Received::Stanza { .. }));
    (ea, eb, old)
}

/// No key of the session is left: no send state, no stored receive set, no publishable MAC key.
fn keys_destroyed(e: &Established) -> bool {
    e.session().send_counter().is_none()
        && e.session().stored_sets() == 0
        && e.session().publishable_old_keys() == 0
        && e.phase() == Phase::Closed
}

/// X116-5-03 X155-7-01: the terminate form travels encrypted; X116-5-06: the peer verifies it
/// and acknowledges encrypted; X116-5-08: then destroys every key (an old stanza replayed finds
/// the session closed); X116-5-09: the terminator verifies the acknowledgement; X116-5-10:
/// nothing is sent after a terminate or an acknowledgement. X155-7-02 X155-7-05: terminate and
/// acknowledgement carry the session's thread. X155-13-01: neither message, nor what they
/// carry encrypted, has a `<body/>`.
#[test]
fn termination_with_encrypted_acknowledgement() {
    for alice_ends in [true, false] {
        let (mut ea, mut eb, old) = established_pair();
        let thread = ea.thread().to_owned();
        let (ender, other) = if alice_ends { (&mut ea, &mut eb) } else { (&mut eb, &mut ea) };
        let mut r = TestRng::new(3);
        let term = ender.terminate(true, &mut r).unwrap();
        assert!(!String::from(&term).contains("terminate"), "the terminate form is encrypted");
        assert_eq!(wire::thread(&term).as_deref(), Some(thread.as_str()), "X155-7-02");
        assert!(term.children().all(|c| c.name() != "body"), "X155-13-01");
        assert_eq!(ender.phase(), Phase::Terminating);
        // X116-5-05: right after the terminate only the receive keys are left (to verify the
        // acknowledgement): no send keys or counter, no old MAC key waiting to be published.
        assert_eq!(ender.session().send_counter(), None, "X116-5-05: send keys destroyed");
        assert!(!ender.session().is_sending());
        assert_eq!(ender.session().publishable_old_keys(), 0, "X116-5-05: old MAC keys destroyed");
        assert_eq!(ender.session().stored_sets(), 1, "the receive keys wait for the acknowledgement");
        // Nothing more may be sent by the terminating side, nor a second terminate.
        assert!(ender.encrypt(&chat("late"), esession_stanza::EncryptOptions::default(), &mut r).is_err());
        assert!(matches!(ender.terminate(false, &mut r), Err(Error::ApiMisuse(_))));
        let ack = match other.receive(&term, true, &mut r).unwrap() {
            Received::Terminated { ack: Some(ack), verified: true } => ack,
            x => panic!("expected a terminate, got {x:?}"),
        };
        assert_eq!(wire::thread(&ack), wire::thread(&term), "X155-7-05");
        assert!(ack.children().all(|c| c.name() != "body"), "X155-13-01");
        assert!(keys_destroyed(other), "X116-5-08");
        assert!(other.encrypt(&chat("late"), esession_stanza::EncryptOptions::default(), &mut r).is_err());
        if !alice_ends {
            // The stanza Bob received from Alice before the end, replayed to him.
            assert!(matches!(
                other.receive(&old, false, &mut r),
                Err(Error::Stanza(esession_stanza::Error::SessionClosed))
            ));
        }
        assert!(matches!(
            ender.receive(&ack, false, &mut r).unwrap(),
            Received::Terminated { ack: None, verified: true }
        ));
        assert!(keys_destroyed(ender), "X116-5-05 once the acknowledgement verified");
        if alice_ends {
            assert!(matches!(
                other.receive(&old, false, &mut r),
                Err(Error::Stanza(esession_stanza::Error::SessionClosed))
            ));
        }
    }
}

/// X155-13-01 X155-7-01: what the terminate and the acknowledgement carry encrypted is the
/// XEP-0155 form (FORM_TYPE and `terminate` 1; `submit`, then `result`) with the thread and no
/// `<body/>`.
#[test]
fn terminate_and_acknowledgement_contents() {
    let check = |clear: &Element, form_type: &str| {
        assert!(clear.children().all(|c| c.name() != "body"), "{}", String::from(clear));
        assert_eq!(wire::thread(clear).as_deref(), Some("thread-1"));
        assert_eq!(form_x(clear).attr("type"), Some(form_type));
        assert_eq!(values(clear, "FORM_TYPE"), Some(vec!["urn:xmpp:ssn".to_owned()]));
        assert_eq!(values(clear, "terminate"), Some(vec!["1".to_owned()]));
    };
    // The terminate, read through the stanza layer without the termination rules.
    let (mut ea, mut eb, _) = established_pair();
    let term = ea.terminate(false, &mut TestRng::new(3)).unwrap();
    let (clear, _) = eb.session_mut().decrypt(&term).unwrap();
    check(&clear, "submit");
    // The acknowledgement.
    let (mut ea, mut eb, _) = established_pair();
    let term = ea.terminate(false, &mut TestRng::new(3)).unwrap();
    let Received::Terminated { ack: Some(ack), .. } = eb.receive(&term, false, &mut TestRng::new(4)).unwrap()
    else {
        panic!("no acknowledgement")
    };
    let (clear, _) = ea.session_mut().decrypt(&ack).unwrap();
    check(&clear, "result");
}

/// X116-5-06 X116-5-09: a terminate or an acknowledgement whose MAC was changed in transit is
/// refused: no acknowledgement is sent, no verified termination is reported (the session ends,
/// as XEP-0200 asks of any failure).
#[test]
fn a_terminate_or_acknowledgement_with_a_broken_mac_is_refused() {
    fn flip_mac(s: &Element) -> Element {
        rewrite(s, &mut |c: &Element| {
            (c.name() == "mac" && c.ns() == esession_stanza::NS).then(|| {
                let mut raw = esession_crypto::mpi::b64_decode(&c.text()).unwrap();
                raw[0] ^= 1;
                vec![
                    Element::builder("mac", esession_stanza::NS)
                        .append(esession_crypto::mpi::b64_encode(&raw))
                        .build(),
                ]
            })
        })
    }
    let mut r = TestRng::new(3);
    // The terminate.
    let (mut ea, mut eb, _) = established_pair();
    let term = ea.terminate(false, &mut r).unwrap();
    let got = eb.receive(&flip_mac(&term), false, &mut r);
    assert!(matches!(got, Err(Error::Stanza(esession_stanza::Error::Terminated(_)))), "{got:?}");
    // The acknowledgement.
    let (mut ea, mut eb, _) = established_pair();
    let term = ea.terminate(false, &mut r).unwrap();
    let Received::Terminated { ack: Some(ack), verified: true } = eb.receive(&term, false, &mut r).unwrap()
    else {
        panic!("no acknowledgement")
    };
    let got = ea.receive(&flip_mac(&ack), false, &mut r);
    assert!(matches!(got, Err(Error::Stanza(esession_stanza::Error::Terminated(_)))), "{got:?}");
    assert!(keys_destroyed(&ea));
}

/// X116-5-10: terminates that cross: each side receives the other's terminate after sending
/// its own, verifies it and sends no acknowledgement (it already sent its last stanza); a
/// second `terminate()` is refused.
#[test]
fn crossing_terminates() {
    let (mut ea, mut eb, _) = established_pair();
    let mut r = TestRng::new(3);
    let ta = ea.terminate(false, &mut r).unwrap();
    let tb = eb.terminate(false, &mut r).unwrap();
    assert!(matches!(ea.terminate(false, &mut r), Err(Error::ApiMisuse(_))));
    for (e, t) in [(&mut ea, &tb), (&mut eb, &ta)] {
        assert!(matches!(
            e.receive(t, false, &mut r).unwrap(),
            Received::Terminated { ack: None, verified: true }
        ));
        assert!(keys_destroyed(e));
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
