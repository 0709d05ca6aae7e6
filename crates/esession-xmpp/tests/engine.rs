//! The sans-IO engine without a server: engines relayed in memory by `esession_xmpp::relay`
//! (which stamps `from`, stores messages for an offline account and keeps PEP items).

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use esession_negotiate::Mode;
use esession_offline::{Audience, pep};
use esession_stanza::EncryptOptions;
use esession_xmpp::relay::Relay;
use esession_xmpp::{Ended, Error, Event, Failure};
use minidom::Element;

#[test]
fn online_session_chat_refusal_and_termination() {
    for mode in [Mode::Four, Mode::Three] {
        let (mut r, a, b) = pair();
        r.start(a, BOB, mode).unwrap();
        r.drive();
        let (sa, sb) = (sas_of(r.events(a)).unwrap(), sas_of(r.events(b)).unwrap());
        assert_eq!(sa, sb);
        assert_eq!(sa.is_some(), mode == Mode::Four);
        assert!(r.engine(a).has_session(&bare(BOB)) && r.engine(b).has_session(&bare(ALICE)));
        // Chat both ways, with a re-key.
        r.chat(a, BOB, "hello").unwrap();
        r.drive();
        assert_eq!(bodies(&r.take_events(b)), ["hello"]);
        let w = r
            .engine(a)
            .chat(&bare(BOB), "rekeyed", EncryptOptions { rekey: true, publish_old: false })
            .unwrap();
        r.inject(a, w);
        r.chat(a, BOB, "after").unwrap();
        r.drive();
        assert_eq!(bodies(&r.take_events(b)), ["rekeyed", "after"]);
        // The wire form hides the body, and an event's Debug shows no content.
        let w = r.engine(a).chat(&bare(BOB), "secret words", EncryptOptions::default()).unwrap();
        assert!(!String::from(&w).contains("secret words"));
        r.inject(a, w);
        r.drive();
        let shown = format!("{:?}", r.take_events(b));
        assert!(shown.contains("Message") && !shown.contains("secret"), "{shown}");
        // No session with Carol: refused, nothing produced.
        let mut to_carol = Element::builder("message", "jabber:client").build();
        set(&mut to_carol, "to", "carol@example.net/x");
        assert!(matches!(
            r.engine(a).protect(&to_carol, EncryptOptions::default()),
            Err(Error::NotProtected(_))
        ));
        // Termination with acknowledgement.
        let t = r.engine(a).terminate(&bare(BOB)).unwrap();
        r.inject(a, t);
        r.drive();
        assert!(r.events(a).iter().any(|e| matches!(e, Event::Terminated { why: Ended::Acknowledged, .. })));
        assert!(
            r.events(b)
                .iter()
                .any(|e| matches!(e, Event::Terminated { why: Ended::ByPeer { verified: true }, .. }))
        );
        assert!(!r.engine(a).has_session(&bare(BOB)) && !r.engine(b).has_session(&bare(ALICE)));
    }
}

#[test]
fn a_tampered_negotiation_fails_without_a_session() {
    let mut r = Relay::new(now());
    let a = r.add(ALICE, engine(None, &[])).unwrap();
    let b = r.add(BOB, engine(None, &[])).unwrap();
    // Flip one character of the first value of Bob's response form.
    r.set_filter(Box::new(move |from, s| {
        if from != b {
            return Some(s);
        }
        let text = String::from(&s);
        let i = text.find("<value>").unwrap() + 8;
        let mut bytes = text.into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        Some(String::from_utf8(bytes).unwrap().parse().unwrap())
    }));
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.events(a).iter().any(|e| matches!(e, Event::Failed { .. })), "{:?}", r.events(a));
    assert!(!r.events(a).iter().any(|e| matches!(e, Event::Negotiated { .. })));
    assert!(!r.engine(a).has_session(&bare(BOB)));
}

#[test]
fn offline_session_through_the_relay() {
    let (mut r, a, b) = pair();
    let alice_key = rsa("rsa.pem");
    let now = r.now();
    let plan = r.engine(a).plan(vec![alice_key], chrono::Duration::hours(1), None).unwrap();
    let (step, mut sets) = r.engine(a).go_offline(now, &plan, &[Audience::Subscribers], false).unwrap();
    r.output(a, step);
    r.drive();
    r.disconnect(a);
    r.drive();
    let secrets = sets.pop().unwrap().secrets;
    // Bob fetches Alice's options from her PEP node and checks them.
    r.inject(b, pep::items_request(Audience::Subscribers, "alice@example.org", "f1"));
    r.drive();
    let x = r
        .delivered
        .iter()
        .rev()
        .find_map(|(_, to, s)| (*to == b).then(|| pep::options_in(s).cloned()).flatten())
        .unwrap();
    let ev = r.engine(b).offline_options(now, &bare(ALICE), &x);
    assert!(matches!(ev, Event::OfflineOptions { refused: None, .. }), "{ev:?}");
    let step = r
        .engine(b)
        .offline_start(now, &bare(ALICE), esession_xmpp::engine::body_message("while you were away"), false)
        .unwrap();
    let start = step.send[0].clone();
    r.output(b, step);
    let later = r.engine(b).offline_chat(&bare(ALICE), "and more").unwrap();
    r.inject(b, later);
    r.drive();
    assert!(r.engine(b).has_offline_session(&bare(ALICE)));
    // Alice returns: the withdraw, then her presence; the stored starts are accepted; Bob sees
    // her online and ends his offline session.
    r.advance(chrono::Duration::minutes(30));
    let now = r.now();
    let step = r.engine(a).come_back(now, Some(secrets), None, true).unwrap();
    assert_eq!(step.send[0].name(), "iq", "the withdraw comes first (XEP-0187 §3.4)");
    assert_eq!(step.send.last().map(Element::name), Some("presence"), "presence comes last");
    r.reconnect(a, step);
    r.drive();
    let ea = r.take_events(a);
    assert_eq!(bodies(&ea), ["while you were away", "and more"], "{ea:?}");
    assert!(ea.iter().any(|e| matches!(e, Event::Negotiated { offline: true, .. })));
    assert!(
        ea.iter().any(|e| matches!(e, Event::Terminated { offline: true, .. })),
        "Bob's terminate reached Alice"
    );
    assert!(!r.engine(b).has_offline_session(&bare(ALICE)));
    // The same start again is a replay: dropped silently.
    r.inject(b, start);
    let sent_before = r.delivered.len();
    r.drive();
    let ea = r.take_events(a);
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::Failed { failure: Failure::Offline(esession_offline::Check::Replay), .. }
        )),
        "{ea:?}"
    );
    assert!(r.delivered[sent_before..].iter().all(|(from, _, _)| *from != a), "Alice answers nothing");
    // X187-4-01 X187-4-02: Alice never sends inside Bob's offline session; to answer she
    // negotiates a new online session.
    assert!(!r.engine(a).has_session(&bare(BOB)), "an accepted offline session is receive-only");
    assert!(matches!(
        r.engine(a).chat(&bare(BOB), "reply", EncryptOptions::default()),
        Err(Error::NotProtected(_))
    ));
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.chat(a, BOB, "reply").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["reply"]);
}

#[test]
fn terminate_all_before_going_offline() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(a).has_session(&bare(BOB)));
    let step = r.engine(a).terminate_all();
    assert_eq!(step.send.len(), 1, "one terminate per open session");
    assert!(!r.engine(a).has_session(&bare(BOB)));
    r.output(a, step);
    r.drive();
    assert!(r.events(b).iter().any(|e| matches!(e, Event::Terminated { .. })), "{:?}", r.events(b));
    assert!(!r.engine(b).has_session(&bare(ALICE)));
}

#[test]
fn unavailable_presence_ends_the_session_and_says_so() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.take_events(b);
    r.disconnect(a);
    r.drive();
    let eb = r.take_events(b);
    assert!(eb.iter().any(|e| matches!(e, Event::Terminated { why: Ended::PeerUnavailable, .. })), "{eb:?}");
    assert!(!r.engine(b).has_session(&bare(ALICE)));
}

#[test]
fn jids_are_normalized_everywhere() {
    // Trust given as Bob@Example.COM applies to bob@example.com, and a session with
    // BOB@example.com/laptop is the session with bob@example.com.
    let (mut r, a, b) = pair();
    r.start(a, "BOB@Example.COM/laptop", Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(a).has_session(&bare("bob@EXAMPLE.com")));
    assert_eq!(bare("Bob@Example.COM").as_str(), "bob@example.com");
    r.chat(a, "Bob@example.com", "normalized").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["normalized"]);
}

#[test]
fn negotiations_take_their_key_pairs_from_the_pool() {
    // With a KeyPool attached, starting a negotiation offering several groups and answering one
    // take the pairs generated in the background; both sides still agree.
    use esession_crypto::{CryptoProvider, ModpGroup};
    use esession_xmpp::KeyPool;
    let groups = [ModpGroup::G15, ModpGroup::G14];
    let small = |k, peer: &str, pk| {
        let mut cfg = esession_negotiate::Config::with_identity(k);
        cfg.provider = CryptoProvider { modp: groups.to_vec(), ..CryptoProvider::default() };
        engine_with(cfg, &[(peer, pk)])
    };
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let (ap, bp) = (ak.public_key(), bk.public_key());
    let mut r = Relay::new(now());
    let a = r.add(ALICE, small(ak, "bob@example.com", bp)).unwrap();
    let b = r.add(BOB, small(bk, "alice@example.org", ap)).unwrap();
    r.engine(a).set_key_pool(KeyPool::spawn(&groups, 2).unwrap());
    r.engine(b).set_key_pool(KeyPool::spawn(&groups, 2).unwrap());
    for i in [a, b] {
        assert!(r.engine(i).key_pool().unwrap().wait_full(std::time::Duration::from_secs(60)));
    }
    r.start(a, BOB, Mode::Four).unwrap();
    for g in groups {
        let s = r.engine(a).key_pool().unwrap().stats(g);
        assert_eq!((s.served, s.missed), (1, 0), "one pooled pair of modp {g} went into the request");
    }
    r.drive();
    assert_eq!(sas_of(r.events(a)).unwrap(), sas_of(r.events(b)).unwrap());
    // Bob chose the strongest group and took one pooled pair of it, none of the other.
    let served: Vec<u64> = groups.iter().map(|g| r.engine(b).key_pool().unwrap().stats(*g).served).collect();
    assert_eq!(served, [1, 0]);
    r.chat(a, BOB, "pooled").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["pooled"]);
}
