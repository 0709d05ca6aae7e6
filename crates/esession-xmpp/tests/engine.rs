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
    let now = r.now();
    let secrets = away(&mut r, a, chrono::Duration::hours(1)).secrets;
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
    let later = r.engine(b).offline_chat(now, &bare(ALICE), "and more").unwrap();
    r.inject(b, later);
    r.drive();
    assert!(r.engine(b).has_offline_session(&bare(ALICE)));
    // Alice returns: the withdraw, then her presence; the stored starts are accepted; Bob sees
    // her online and ends his offline session.
    r.advance(chrono::Duration::minutes(30));
    let now = r.now();
    let step = r.engine(a).come_back(now, Some(secrets), None, true).unwrap();
    // X187-3.4-01: the withdraw (Example 8, an empty item on the subscribers' node) first.
    assert!(is_withdraw(&step.send[0]), "the withdraw comes first (XEP-0187 §3.4): {:?}", step.send[0]);
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

// ---------------------------------------------------------------------------------------------
// XEP-0187 in the engine, through the relay

use esession_offline::away::Published;
use esession_offline::{EVERYONE_NODE, SUBSCRIBERS_NODE};
use esession_xmpp::Step;
use std::cell::RefCell;
use std::rc::Rc;

/// The value of field `var` of the form in `stanza`'s negotiation wrapper, base64-decoded.
fn form_value(stanza: &Element, var: &str) -> Vec<u8> {
    let w = esession_forms::esession::Wrapper::find(stanza).unwrap();
    let (_, x) = esession_forms::esession::Wrapper::unwrap(w).unwrap();
    let f = esession_forms::dataform::DataForm::parse(x).unwrap();
    esession_crypto::mpi::b64_decode(&f.field(var).unwrap().values[0]).unwrap()
}

/// The node of the n-th items request `i` sent to the server.
fn items_nodes(r: &Relay, i: usize) -> Vec<String> {
    r.to_server
        .iter()
        .filter(|(from, s)| *from == i && s.attr("type") == Some("get"))
        .filter_map(|(_, s)| {
            s.get_child("pubsub", pep::PUBSUB_NS)
                .and_then(|p| p.get_child("items", pep::PUBSUB_NS))
                .and_then(|it| it.attr("node"))
                .map(str::to_owned)
        })
        .collect()
}

/// Whether `s` is XEP-0187 Example 8: an empty item published to the subscribers' node.
fn is_withdraw(s: &Element) -> bool {
    let publish = s
        .get_child("pubsub", pep::PUBSUB_NS)
        .and_then(|p| p.get_child("publish", pep::PUBSUB_NS))
        .filter(|p| p.attr("node") == Some(SUBSCRIBERS_NODE));
    s.name() == "iq"
        && s.attr("type") == Some("set")
        && publish.is_some_and(|p| {
            let items: Vec<_> = p.children().filter(|c| c.name() == "item").collect();
            items.len() == 1 && items[0].children().count() == 0
        })
}

fn presence() -> Step {
    let mut step = Step::default();
    step.send.push(Element::bare("presence", "jabber:client"));
    step
}

/// Alice back online with Bob's offline session still open on her side: Bob's terminate (sent
/// when he saw her presence) is held back. Returns the session's thread and that terminate.
fn alice_holds_an_offline_session() -> (Relay, usize, usize, String, Element) {
    let (mut r, a, b) = pair();
    let set = away(&mut r, a, chrono::Duration::hours(24));
    for s in r
        .offline_start(b, "alice@example.org", esession_xmpp::engine::body_message("while away"), &[])
        .unwrap()
    {
        r.inject(b, s);
    }
    r.drive();
    r.advance(chrono::Duration::minutes(30));
    let held = Rc::new(RefCell::new(Vec::new()));
    let keep = held.clone();
    r.set_filter(Box::new(move |from, s| {
        if from == b && s.name() == "message" {
            keep.borrow_mut().push(s);
            return None;
        }
        Some(s)
    }));
    r.come_back(a, Some(set.secrets)).unwrap();
    r.set_filter(Box::new(|_, s| Some(s)));
    let ea = r.take_events(a);
    assert_eq!(bodies(&ea), ["while away"]);
    let thread = ea
        .iter()
        .find_map(|e| match e {
            Event::Negotiated { thread, offline: true, .. } => Some(thread.clone()),
            _ => None,
        })
        .unwrap();
    let terminate = held.borrow_mut().pop();
    let terminate = terminate.unwrap_or_else(|| panic!("Bob terminated his offline session"));
    assert_eq!(terminate.get_child("thread", "jabber:client").map(Element::text), Some(thread.clone()));
    (r, a, b, thread, terminate)
}

#[test]
fn an_accepted_offline_session_is_never_one_to_send_in() {
    // X187-4-01: Alice holds Bob's offline session (receive only): no sending path finds it.
    let (mut r, a, _b, thread, _) = alice_holds_an_offline_session();
    let bob = bare(BOB);
    assert!(!r.engine(a).has_session(&bob));
    assert!(r.engine(a).session(&bob).is_none() && r.engine(a).session_peer(&bob).is_none());
    assert!(matches!(
        r.engine(a).chat(&bob, "reply", EncryptOptions::default()),
        Err(Error::NotProtected(_))
    ));
    let mut m = esession_xmpp::engine::body_message("reply");
    set(&mut m, "to", BOB);
    assert!(matches!(r.engine(a).protect(&m, EncryptOptions::default()), Err(Error::NotProtected(_))));
    assert!(matches!(r.engine(a).terminate(&bob), Err(Error::NotProtected(_))));
    // Going offline sends nothing in it either (X187-5-02: no terminate back).
    let step = r.engine(a).terminate_all();
    assert!(step.send.is_empty(), "{:?}", step.send);
    assert!(step.events.iter().any(|e| matches!(
        e,
        Event::Terminated { offline: true, thread: t, .. } if *t == thread
    )));
}

#[test]
fn alice_ends_the_offline_session_before_negotiating_online() {
    // X187-4-02: to send to Bob, Alice terminates his offline session first, then negotiates;
    // a stanza of the old session afterwards belongs to no session.
    let (mut r, a, b, thread, bob_terminate) = alice_holds_an_offline_session();
    r.start(a, BOB, Mode::Four).unwrap();
    let ea = r.take_events(a);
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::Terminated { offline: true, thread: t, why: Ended::Replaced, .. } if *t == thread
        )),
        "{ea:?}"
    );
    r.drive();
    assert!(r.engine(a).has_session(&bare(BOB)) && r.engine(b).has_session(&bare(ALICE)));
    r.inject(b, bob_terminate);
    r.drive();
    let ea = r.take_events(a);
    assert!(
        !ea.iter().any(|e| matches!(e, Event::Failed { .. } | Event::Terminated { .. })),
        "the old thread is gone, and its terminate tells of no lost message: {ea:?}"
    );
    assert!(r.engine(a).has_session(&bare(BOB)), "the online session is untouched");
    r.chat(a, BOB, "online now").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["online now"]);
}

#[test]
fn no_offline_session_while_an_online_one_is_established() {
    // X187-3-02: Bob holds Alice's options, but an online session with her is established.
    let (mut r, a, b) = pair();
    publish(&mut r, a, &[Audience::Subscribers], chrono::Duration::hours(24));
    assert!(matches!(
        r.fetch_options(b, "alice@example.org").unwrap(),
        Some(Event::OfflineOptions { refused: None, .. })
    ));
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(b).has_session(&bare(ALICE)));
    let now = r.now();
    let got = r.engine(b).offline_start(now, &bare(ALICE), esession_xmpp::engine::body_message("x"), false);
    assert!(matches!(got, Err(Error::Offline(esession_offline::Error::Config(_)))), "{got:?}");
    assert!(!r.engine(b).has_offline_session(&bare(ALICE)));
}

#[test]
fn a_new_absence_destroys_the_sets_of_the_last() {
    // X187-6.1-01: Alice returns (her subscribers' set stays in memory five minutes for stored
    // starts), goes offline again at once and returns: a start made from the first absence's
    // options is not ours any more.
    let (mut r, a, b) = pair();
    let first = away(&mut r, a, chrono::Duration::hours(24));
    r.fetch_options(b, "alice@example.org").unwrap();
    let now = r.now();
    let old_start = r
        .engine(b)
        .offline_start(now, &bare(ALICE), esession_xmpp::engine::body_message("old"), true)
        .unwrap()
        .send
        .remove(0);
    r.advance(chrono::Duration::hours(1));
    r.come_back(a, Some(first.secrets)).unwrap();
    r.advance(chrono::Duration::minutes(1));
    let second = publish(&mut r, a, &[Audience::Subscribers], chrono::Duration::hours(24)).remove(0);
    r.advance(chrono::Duration::minutes(1));
    let now = r.now();
    let step = r.engine(a).come_back(now, Some(second.secrets), None, false).unwrap();
    r.output(a, step);
    r.drive();
    r.take_events(a);
    r.inject(b, old_start);
    r.drive();
    let ea = r.take_events(a);
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::Failed { failure: Failure::Offline(esession_offline::Check::UnknownNonce), .. }
        )),
        "{ea:?}"
    );
    assert!(!ea.iter().any(|e| matches!(e, Event::Negotiated { .. })));
}

#[test]
fn the_options_node_is_created_before_anything_is_published() {
    // X187-3.1-10: the relay, like a server without auto-creation, refuses a publish to a node
    // that was never created (item-not-found): the options reach Bob only because the engine
    // creates (and configures) each node first.
    let (mut r, a, b) = pair();
    publish(&mut r, a, &[Audience::Subscribers, Audience::Everyone], chrono::Duration::hours(24));
    let sent: Vec<&Element> = r.to_server.iter().filter(|(from, _)| *from == a).map(|(_, s)| s).collect();
    assert_eq!(sent.len(), 4, "create and publish per node");
    for (pair, node) in sent.chunks(2).zip([SUBSCRIBERS_NODE, EVERYONE_NODE]) {
        let create = pair[0].get_child("pubsub", pep::PUBSUB_NS).unwrap();
        assert_eq!(create.get_child("create", pep::PUBSUB_NS).and_then(|c| c.attr("node")), Some(node));
        assert!(create.get_child("configure", pep::PUBSUB_NS).is_some());
        let publish = pair[1].get_child("pubsub", pep::PUBSUB_NS).unwrap();
        assert_eq!(publish.get_child("publish", pep::PUBSUB_NS).and_then(|c| c.attr("node")), Some(node));
    }
    let answers: Vec<_> = r
        .events(a)
        .iter()
        .filter_map(|e| match e {
            Event::IqResult { stanza } => stanza.attr("type").map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(answers, ["result"; 4], "every IQ succeeded");
    assert!(matches!(
        r.fetch_options(b, "alice@example.org").unwrap(),
        Some(Event::OfflineOptions { refused: None, .. })
    ));
}

#[test]
fn a_subscriber_answers_the_subscribers_options_and_a_stranger_the_everyone_set() {
    // X187-3.2-02: Bob receives Alice's presence (he subscribes): his first items request is for
    // the subscribers' node, and his start answers that set's N_A. X187-3.2-03: Carol never saw
    // her presence: she asks the everyone node first and answers that set.
    let (mut r, a, b) = pair();
    let sets = publish(&mut r, a, &[Audience::Subscribers, Audience::Everyone], chrono::Duration::hours(24));
    r.disconnect(a);
    r.drive();
    let alice_pub = rsa("rsa.pem").public_key();
    let c =
        r.add("carol@example.net/x", engine(Some(bob_key()), &[("alice@example.org", alice_pub)])).unwrap();
    assert!(r.engine(b).subscribed_to(&bare(ALICE)) && !r.engine(c).subscribed_to(&bare(ALICE)));
    let now = r.now();
    for (who, node, na) in
        [(b, SUBSCRIBERS_NODE, &sets[0].secrets.na), (c, EVERYONE_NODE, &sets[1].secrets.na)]
    {
        let ev = r.fetch_options(who, "alice@example.org").unwrap();
        assert!(matches!(ev, Some(Event::OfflineOptions { refused: None, .. })), "{ev:?}");
        assert_eq!(items_nodes(&r, who).first().map(String::as_str), Some(node));
        let step = r
            .engine(who)
            .offline_start(now, &bare(ALICE), esession_xmpp::engine::body_message("hi"), true)
            .unwrap();
        assert_eq!(&form_value(&step.send[0], "nonce"), na, "the start answers the set asked first");
    }
}

#[test]
fn offline_stanzas_stop_when_the_options_expire() {
    // X187-3.2-05: options valid 24 h; a session started at +1 h may send at +2 h but not at
    // +25 h (refused, the session ends).
    let (mut r, a, b) = pair();
    away(&mut r, a, chrono::Duration::hours(24));
    r.advance(chrono::Duration::hours(1));
    r.fetch_options(b, "alice@example.org").unwrap();
    let t1 = r.now();
    r.engine(b).offline_start(t1, &bare(ALICE), esession_xmpp::engine::body_message("a"), false).unwrap();
    assert!(r.engine(b).offline_chat(t1 + chrono::Duration::hours(1), &bare(ALICE), "b").is_ok());
    let late = r.engine(b).offline_chat(t1 + chrono::Duration::hours(24), &bare(ALICE), "c");
    assert!(
        matches!(
            late,
            Err(Error::Offline(esession_offline::Error::Refused(esession_offline::Check::OptionsExpired)))
        ),
        "{late:?}"
    );
    assert!(!r.engine(b).has_offline_session(&bare(ALICE)));
}

#[test]
fn the_return_withdraws_first_and_destroys_the_stored_subscribers_secrets() {
    // X187-3.4-01: step 1, the first stanza of the return is the withdraw (Example 8); step 2,
    // the account's stored copy of the subscribers' secrets is gone once the return ran, the
    // everyone set's stays.
    use esession_xmpp::{Account, account::Sealing};
    let dir = std::env::temp_dir().join(format!("esession-xmpp-return-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut e = engine(Some(rsa("rsa.pem")), &[]);
    let plan = e.plan(vec![rsa("rsa.pem")], chrono::Duration::hours(24), None).unwrap();
    let (_, sets) = e.go_offline(now(), &plan, &[Audience::Subscribers, Audience::Everyone], false).unwrap();
    let everyone_na = sets[1].secrets.na.clone();
    {
        let account = Account::open(&dir, Sealing::KeyFile).unwrap();
        account.keep_offline("subscribers", &sets[0].secrets).unwrap();
        account.keep_offline("everyone", &sets[1].secrets).unwrap();
    }
    let step = {
        let account = Account::open(&dir, Sealing::KeyFile).unwrap();
        esession_xmpp::client::come_back_from(&account, &mut e, now() + chrono::Duration::hours(1)).unwrap()
    };
    assert!(is_withdraw(&step.send[0]), "{:?}", step.send[0]);
    assert_eq!(step.send.last().map(Element::name), Some("presence"));
    let account = Account::open(&dir, Sealing::KeyFile).unwrap();
    assert!(account.offline("subscribers").unwrap().is_none(), "destroyed");
    assert_eq!(account.offline("everyone").unwrap().map(|s| s.na), Some(everyone_na), "kept");
    drop(account);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// XEP-0155 and XEP-0116 in the engine

#[test]
fn unavailable_presence_terminates_the_session_explicitly() {
    // X155-8.4-03: Bob assumes Alice's resource cannot continue and terminates explicitly: his
    // encrypted terminate goes to her full JID on the session's thread.
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let thread = r.engine(b).session(&bare(ALICE)).unwrap().thread().to_owned();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let keep = sent.clone();
    r.set_filter(Box::new(move |from, s| {
        if from == b {
            keep.borrow_mut().push(s.clone());
        }
        Some(s)
    }));
    r.disconnect(a);
    r.drive();
    let out = sent.borrow().clone();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].attr("to"), Some(ALICE));
    assert_eq!(out[0].get_child("thread", "jabber:client").map(Element::text), Some(thread.clone()));
    assert!(out[0].get_child("c", esession_stanza::NS).is_some(), "encrypted");
    let eb = r.take_events(b);
    assert!(eb.iter().any(|e| matches!(e, Event::Terminated { why: Ended::PeerUnavailable, .. })), "{eb:?}");
    assert!(!r.engine(b).has_session(&bare(ALICE)));
    // Alice's client kept the session after all (the assumption was wrong): back online, it
    // reads the terminate, verified.
    r.reconnect(a, presence());
    r.drive();
    assert!(
        r.events(a).iter().any(
            |e| matches!(e, Event::Terminated { why: Ended::ByPeer { verified: true }, thread: t, .. } if *t == thread)
        ),
        "{:?}",
        r.events(a)
    );
    // X155-8.4-04: the next session is a new negotiation on a new thread.
    r.take_events(b);
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let new = r.engine(b).session(&bare(ALICE)).unwrap().thread().to_owned();
    assert!(!new.is_empty() && new != thread);
    assert!(r.events(b).iter().any(|e| matches!(e, Event::Negotiated { thread: t, .. } if *t == new)));
}

#[test]
fn every_negotiation_gets_a_thread_of_its_own() {
    // X155-4.1-03: two requests to the same peer and one to another carry non-empty, distinct
    // threads.
    let (mut r, a, _b) = pair();
    let mut threads = Vec::new();
    for peer in [BOB, BOB, "carol@example.net/x"] {
        let step = r.engine(a).start(now(), &jid(peer), Mode::Four).unwrap();
        threads
            .push(step.send[0].get_child("thread", "jabber:client").map(Element::text).unwrap_or_default());
    }
    assert!(threads.iter().all(|t| !t.is_empty()), "{threads:?}");
    let mut unique = threads.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{threads:?}");
}

#[test]
fn a_terminate_is_acknowledged_on_its_own_thread_only() {
    // X155-7-05: a terminate on the session's thread is acknowledged on that thread; the same
    // stanza with a foreign thread belongs to no session and gets no acknowledgement.
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let thread = r.engine(a).session(&bare(BOB)).unwrap().thread().to_owned();
    let t = r.engine(a).terminate(&bare(BOB)).unwrap();
    let mut foreign = t.clone();
    foreign.remove_child("thread", "jabber:client");
    foreign.append_child(Element::builder("thread", "jabber:client").append("foreign-thread").build());
    set(&mut foreign, "from", ALICE);
    let step = r.engine(b).handle(now(), &foreign);
    assert!(step.send.is_empty(), "no acknowledgement: {:?}", step.send);
    assert!(step.events.is_empty(), "an end of no session here is no lost message: {:?}", step.events);
    assert!(r.engine(b).has_session(&bare(ALICE)), "the session is untouched");
    let mut t = t;
    set(&mut t, "from", ALICE);
    let step = r.engine(b).handle(now(), &t);
    assert_eq!(step.send.len(), 1, "{:?}", step.events);
    assert_eq!(step.send[0].get_child("thread", "jabber:client").map(Element::text), Some(thread));
    assert_eq!(step.send[0].attr("to"), Some(ALICE));
}

#[test]
fn service_discovery_is_answered_in_clear_outside_the_session() {
    // X116-3-03: during a session, a clear disco#info request is answered in clear; the session
    // is untouched (same counters) and the next stanza decrypts. X116-3-04: the answer
    // announces the XEP-0116 feature.
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let counters = |r: &mut Relay| {
        let s = r.engine(b).session(&bare(ALICE)).unwrap().session();
        (s.send_counter(), s.recv_counter())
    };
    let before = counters(&mut r);
    let mut iq = Element::builder("iq", "jabber:client")
        .append(Element::bare("query", esession_xmpp::engine::DISCO_INFO))
        .build();
    set(&mut iq, "type", "get");
    set(&mut iq, "id", "disco-1");
    set(&mut iq, "to", BOB);
    r.inject(a, iq);
    r.drive();
    let reply = r
        .delivered
        .iter()
        .find(|(from, to, s)| *from == b && *to == a && s.attr("id") == Some("disco-1"))
        .map(|(_, _, s)| s.clone())
        .unwrap();
    assert_eq!(reply.attr("type"), Some("result"));
    assert!(reply.get_child("c", esession_stanza::NS).is_none(), "in clear");
    let features: Vec<&str> = reply
        .get_child("query", esession_xmpp::engine::DISCO_INFO)
        .unwrap()
        .children()
        .filter(|f| f.name() == "feature")
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(features.contains(&esession_forms::esession::ESESSION_NS), "{features:?}");
    assert!(r.engine(b).has_session(&bare(ALICE)));
    assert_eq!(counters(&mut r), before, "nothing went through the session");
    r.chat(a, BOB, "after disco").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["after disco"]);
}

#[test]
fn going_offline_terminates_every_session_before_publishing() {
    // X116-5-02: the first stanza of going offline is the encrypted terminate, then the PEP
    // IQs; Bob verifies the terminate.
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let now = r.now();
    let plan = r.engine(a).plan(vec![rsa("rsa.pem")], chrono::Duration::hours(1), None).unwrap();
    let (step, _) = r.engine(a).go_offline(now, &plan, &[Audience::Subscribers], false).unwrap();
    assert!(step.send[0].get_child("c", esession_stanza::NS).is_some(), "{:?}", step.send[0]);
    assert_eq!(step.send[0].attr("to"), Some(BOB));
    assert!(step.send[1..].iter().all(|s| s.name() == "iq") && step.send.len() == 3);
    r.output(a, step);
    r.drive();
    assert!(
        r.events(b)
            .iter()
            .any(|e| matches!(e, Event::Terminated { why: Ended::ByPeer { verified: true }, .. })),
        "{:?}",
        r.events(b)
    );
}

#[test]
fn petnames_come_before_the_jid() {
    // X116-7.4-05: Bob named Alice's key "Alice": his events carry it and show it first.
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let (ap, bp) = (ak.public_key(), bk.public_key());
    let mut trust = esession_negotiate::MemoryTrust::default();
    trust.trust(&bare("alice@example.org"), ap.clone());
    trust.set_petname(&ap, "Alice");
    let stores = esession_xmpp::EngineStores {
        trust: Box::new(trust),
        retained: Box::new(esession_negotiate::MemoryRetained::default()),
        replay: Box::new(esession_offline::replay::MemoryReplay::default()),
    };
    let mut r = Relay::new(now());
    let a = r.add(ALICE, engine(Some(ak), &[("bob@example.com", bp)])).unwrap();
    let b = r.add(BOB, esession_xmpp::Engine::new(config(Some(bk)), stores)).unwrap();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.chat(a, BOB, "it is me").unwrap();
    r.drive();
    let eb = r.take_events(b);
    let shown: Vec<String> = eb
        .iter()
        .filter(|e| matches!(e, Event::Negotiated { .. } | Event::Message { .. }))
        .filter_map(Event::who)
        .collect();
    assert_eq!(shown, ["\"Alice\" (alice@example.org/pda)"; 2], "{eb:?}");
    assert!(eb.iter().any(|e| matches!(e, Event::Message { petname: Some(p), .. } if p == "Alice")));
    // Alice gave Bob's key no petname: his JID alone.
    let ea = r.take_events(a);
    assert!(ea.iter().any(|e| matches!(e, Event::Negotiated { petname: None, .. })));
    assert_eq!(ea.iter().find_map(Event::who).as_deref(), Some(BOB));
}

#[test]
fn a_stored_request_is_not_answered() {
    // X155-4.2-01: a request the server stored while Bob was offline (a delay stamp) is not
    // answered (that would tell he had been offline); the same request live is.
    let (mut r, a, b) = pair();
    let req = r.engine(a).start(now(), &jid(BOB), Mode::Four).unwrap().send.remove(0);
    let mut stored = req.clone();
    let mut delay = Element::bare("delay", "urn:xmpp:delay");
    set(&mut delay, "stamp", "2030-03-17T17:46:40Z");
    stored.append_child(delay);
    set(&mut stored, "from", ALICE);
    let step = r.engine(b).handle(now(), &stored);
    assert!(step.send.is_empty(), "{:?}", step.send);
    assert!(step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Stored, .. })));
    assert!(!r.engine(b).negotiating(&bare(ALICE)));
    let mut live = req;
    set(&mut live, "from", ALICE);
    assert_eq!(r.engine(b).handle(now(), &live).send.len(), 1, "answered");
}

/// X116-5-05: a terminate that is never acknowledged does not keep the session's last keys
/// forever: after the negotiation timeout the engine closes it and says so.
#[test]
fn an_unacknowledged_terminate_is_closed_after_the_timeout() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(b).has_session(&bare(ALICE)));
    // Alice's terminate is lost: Bob never acknowledges.
    let _lost = r.engine(a).terminate(&bare(BOB)).unwrap();
    let t0 = r.now();
    let timeout = esession_xmpp::Limits::default().pending_timeout;
    let step = r.engine(a).tick(t0);
    assert!(step.events.is_empty(), "the acknowledgement may still come");
    let step = r.engine(a).tick(t0 + timeout - chrono::Duration::seconds(1));
    assert!(step.events.is_empty(), "not before the timeout");
    let step = r.engine(a).tick(t0 + timeout + chrono::Duration::seconds(1));
    assert!(
        step.events.iter().any(|e| matches!(e, Event::Terminated { why: Ended::NoAcknowledgement, .. })),
        "{:?}",
        step.events
    );
    assert!(r.engine(a).session(&bare(BOB)).is_none(), "the session and its keys are gone");
    assert!(r.engine(a).tick(t0 + timeout * 2).events.is_empty(), "said once");
}

/// The first `resp_pubkey` option of a request.
fn first_resp_pubkey(request: &Element) -> Option<String> {
    fn walk(e: &Element) -> Option<String> {
        if e.name() == "field" && e.attr("var") == Some("resp_pubkey") {
            return e
                .children()
                .find(|c| c.name() == "option")
                .map(|o| o.children().map(Element::text).collect());
        }
        e.children().find_map(walk)
    }
    walk(request)
}

/// X116-N22-01: Alice asks a contact whose key she holds for the fingerprint (`hash`) first,
/// and the session still establishes on it; a contact she holds no key of is asked for the key.
#[test]
fn a_known_contact_is_asked_for_the_fingerprint_first() {
    for known in [true, false] {
        let (ak, bk) = (rsa("rsa.pem"), bob_key());
        let (ap, bp) = (ak.public_key(), bk.public_key());
        let mut r = Relay::new(now());
        let trusts: Vec<(&str, esession_crypto::PublicKey)> =
            if known { vec![("bob@example.com", bp)] } else { vec![] };
        let a = r.add(ALICE, engine(Some(ak), &trusts)).unwrap();
        let b = r.add(BOB, engine(Some(bk), &[("alice@example.org", ap)])).unwrap();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(None));
        let keep = seen.clone();
        r.set_filter(Box::new(move |from, s| {
            if from == a && keep.borrow().is_none() {
                *keep.borrow_mut() = first_resp_pubkey(&s);
            }
            Some(s)
        }));
        r.start(a, BOB, Mode::Four).unwrap();
        r.drive();
        let first = seen.borrow().clone();
        assert_eq!(first.as_deref(), Some(if known { "hash" } else { "key" }), "known: {known}");
        if known {
            assert!(r.engine(a).has_session(&bare(BOB)), "the fingerprint identifies Bob");
            assert!(r.engine(b).has_session(&bare(ALICE)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Offline messages from a key that is not trusted: held for the user's decision (issue 19)

/// Alice (who trusts no key) and Bob (who trusts hers), relayed; Alice published her options
/// and went away, and Bob made an offline start with "first", then "second" and "third" in the
/// same offline session. With `stored`, the three went to the server, which hands them over at
/// Alice's return; else they are returned (stamped from Bob) for the test to hand over.
fn untrusted_offline(stored: bool) -> (Relay, usize, Published, Vec<Element>) {
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let ap = ak.public_key();
    let mut r = Relay::new(now());
    let a = r.add(ALICE, engine(Some(ak), &[])).unwrap();
    let b = r.add(BOB, engine(Some(bk), &[("alice@example.org", ap)])).unwrap();
    let published = away(&mut r, a, chrono::Duration::hours(24));
    let mut stanzas = r
        .offline_start(
            b,
            "alice@example.org",
            esession_xmpp::engine::body_message("first"),
            &["second", "third"],
        )
        .unwrap();
    if stored {
        for s in stanzas.drain(..) {
            r.inject(b, s);
        }
        r.drive();
    }
    for s in &mut stanzas {
        set(s, "from", BOB);
    }
    r.advance(chrono::Duration::minutes(30));
    (r, a, published, stanzas)
}

fn held(events: &[Event]) -> Vec<(esession_xmpp::engine::MessageId, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Untrusted { id, fingerprint, .. } => Some((*id, fingerprint.clone())),
            _ => None,
        })
        .collect()
}

fn ids(events: &[Event]) -> Vec<esession_xmpp::engine::MessageId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { id: Some(id), offline: true, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn an_untrusted_senders_offline_messages_are_held_until_the_key_is_trusted() {
    let (mut r, a, set, _) = untrusted_offline(true);
    r.come_back(a, Some(set.secrets)).unwrap();
    let ea = r.take_events(a);
    // Held: nothing of the content told, no session told; each message said, in order, with
    // the fingerprint of the key that signed the start.
    assert!(bodies(&ea).is_empty(), "nothing delivered before the key is trusted: {ea:?}");
    assert!(!ea.iter().any(|e| matches!(e, Event::Negotiated { .. })), "{ea:?}");
    let fp = esession_xmpp::fingerprint(&bob_key().public_key()).unwrap();
    let h = held(&ea);
    assert_eq!(h.len(), 3, "the start and both later stanzas of its session: {ea:?}");
    assert!(h.iter().all(|(_, f)| *f == fp));
    assert_eq!(r.engine(a).held_untrusted().unwrap().len(), 3);
    let again: Vec<_> = held(&r.engine(a).unacknowledged().unwrap());
    assert_eq!(again, h, "what a restart hands over: still held");
    // The user compares and trusts the key: the three are delivered, in order, same ids.
    let step = r.engine(a).trust_held(&bare(BOB), &bob_key().public_key()).unwrap();
    assert_eq!(bodies(&step.events), ["first", "second", "third"]);
    assert_eq!(ids(&step.events), h.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    assert!(r.engine(a).held_untrusted().unwrap().is_empty());
    assert!(r.engine(a).trust().trusts(&bare(BOB), &bob_key().public_key()));
    // Delivered once: acknowledged, they are gone.
    for id in ids(&step.events) {
        r.engine(a).ack(&id).unwrap();
    }
    assert!(r.engine(a).unacknowledged().unwrap().is_empty());
}

#[test]
fn a_refused_key_drops_its_held_messages_and_their_session() {
    let (mut r, a, set, mut later) = untrusted_offline(false);
    alice_returns(&mut r, a, set);
    let now = r.now();
    let step = r.engine(a).handle(now, &later.remove(0));
    assert_eq!(held(&step.events).len(), 1, "{:?}", step.events);
    assert_eq!(r.engine(a).load().1, 1, "the held session is open");
    let dropped = r.engine(a).refuse_held(&bare(BOB), &bob_key().public_key()).unwrap();
    assert_eq!(dropped, 1);
    assert!(r.engine(a).unacknowledged().unwrap().is_empty());
    assert!(!r.engine(a).trust().trusts(&bare(BOB), &bob_key().public_key()));
    assert_eq!(r.engine(a).load().1, 0, "the held session is gone");
    // Its later stanzas belong to no session any more: dropped, nothing held or told.
    let step = r.engine(a).handle(now, &later.remove(0));
    assert!(held(&step.events).is_empty() && bodies(&step.events).is_empty(), "{:?}", step.events);
    assert!(r.engine(a).unacknowledged().unwrap().is_empty());
}

#[test]
fn later_stanzas_of_a_held_session_are_held_while_it_is_open() {
    let (mut r, a, set, mut later) = untrusted_offline(false);
    alice_returns(&mut r, a, set);
    let now = r.now();
    // The start, then "second" while the session is held: held too, not delivered.
    for _ in 0..2 {
        let step = r.engine(a).handle(now, &later.remove(0));
        assert!(bodies(&step.events).is_empty(), "{:?}", step.events);
        assert_eq!(held(&step.events).len(), 1, "{:?}", step.events);
    }
    // Trusted: both held ones, in order; "third", after it, is delivered as it comes.
    let step = r.engine(a).trust_held(&bare(BOB), &bob_key().public_key()).unwrap();
    assert_eq!(bodies(&step.events), ["first", "second"]);
    let step = r.engine(a).handle(now, &later.remove(0));
    assert_eq!(bodies(&step.events), ["third"]);
    assert!(held(&step.events).is_empty());
}

#[test]
fn only_a_start_whose_sole_fault_is_its_key_is_held() {
    let (mut r, a, set, mut later) = untrusted_offline(false);
    alice_returns(&mut r, a, set);
    let now = r.now();
    // The start's encrypted content altered: its MAC fails, so it is refused (silently) and
    // nothing is held, although its key is not trusted either.
    let mut start = later.remove(0);
    let c = start.get_child_mut("c", esession_stanza::NS).unwrap();
    let d = c.get_child_mut("data", esession_stanza::NS).unwrap();
    let text = d.text();
    let first = if text.starts_with('A') { "B" } else { "A" };
    let flipped = format!("{first}{}", &text[1..]);
    *d = Element::builder("data", esession_stanza::NS).append(flipped).build();
    let step = r.engine(a).handle(now, &start);
    assert!(held(&step.events).is_empty(), "{:?}", step.events);
    assert!(
        step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Offline(_), .. })),
        "{:?}",
        step.events
    );
    assert!(r.engine(a).unacknowledged().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// A resource that does not accept negotiations (a one-shot command, issue 19)

/// The features `b` announces to `a` (disco#info through the relay).
fn features(r: &mut Relay, a: usize, b: usize, id: &str) -> Vec<String> {
    let mut iq = Element::builder("iq", "jabber:client")
        .append(Element::bare("query", esession_xmpp::engine::DISCO_INFO))
        .build();
    set(&mut iq, "type", "get");
    set(&mut iq, "id", id);
    set(&mut iq, "to", BOB);
    r.inject(a, iq);
    r.drive();
    let reply = r
        .delivered
        .iter()
        .find(|(from, to, s)| *from == b && *to == a && s.attr("id") == Some(id))
        .map(|(_, _, s)| s.clone())
        .unwrap();
    reply
        .get_child("query", esession_xmpp::engine::DISCO_INFO)
        .unwrap()
        .children()
        .filter(|f| f.name() == "feature")
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect()
}

#[test]
fn a_resource_that_does_not_accept_declines_requests_and_announces_no_negotiation() {
    let (mut r, a, b) = pair();
    assert!(r.engine(b).accepting());
    r.engine(b).set_accepting(false);
    // XEP-0116 §3: the feature is announced by a client that negotiates; this one does not.
    let f = features(&mut r, a, b, "disco-1");
    for ns in [
        esession_forms::esession::ESESSION_NS,
        esession_forms::esession::FEATURE_NEG_NS,
        esession_forms::esession::INIT_NS,
    ] {
        assert!(!f.iter().any(|v| v == ns), "{ns} announced: {f:?}");
    }
    assert!(f.iter().any(|v| v == esession_xmpp::engine::DISCO_INFO), "{f:?}");
    // X155-4.3-04 X155-4.3-05 X155-4.3-06: the request is declined with FORM_TYPE and
    // `accept` false only, on its thread; Alice's engine reads it as a refusal.
    let sent = r.delivered.len();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let decline = r.delivered[sent..]
        .iter()
        .find(|(from, to, _)| *from == b && *to == a)
        .map(|(_, _, s)| s.clone())
        .unwrap_or_else(|| panic!("Bob answered nothing"));
    let request_thread = r.delivered[sent..]
        .iter()
        .find(|(from, _, _)| *from == a)
        .and_then(|(_, _, s)| s.get_child("thread", "jabber:client").map(Element::text))
        .unwrap();
    assert_eq!(decline.get_child("thread", "jabber:client").map(Element::text), Some(request_thread));
    assert_ne!(decline.attr("type"), Some("error"));
    let w = esession_forms::esession::Wrapper::find(&decline).unwrap();
    let (_, x) = esession_forms::esession::Wrapper::unwrap(w).unwrap();
    let form = esession_forms::dataform::DataForm::parse(x).unwrap();
    let vars: Vec<&str> = form.fields.iter().filter_map(|f| f.var.as_deref()).collect();
    assert_eq!(vars, ["FORM_TYPE", "accept"]);
    assert!(matches!(form.field("accept").unwrap().values[0].as_str(), "0" | "false"));
    let ea = r.take_events(a);
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::Failed { failure: Failure::Negotiation(esession_negotiate::Error::Rejected { .. }), .. }
        )),
        "{ea:?}"
    );
    let eb = r.take_events(b);
    assert!(eb.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Declined, .. })), "{eb:?}");
    assert!(!ea.iter().chain(&eb).any(|e| matches!(e, Event::Negotiated { .. })));
    assert!(!r.engine(a).negotiating(&bare(BOB)) && !r.engine(b).negotiating(&bare(ALICE)));
    assert!(!r.engine(a).has_session(&bare(BOB)) && !r.engine(b).has_session(&bare(ALICE)));
    // A 3-message request is declined the same way.
    r.start(a, BOB, Mode::Three).unwrap();
    r.drive();
    let ea = r.take_events(a);
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::Failed { failure: Failure::Negotiation(esession_negotiate::Error::Rejected { .. }), .. }
        )),
        "{ea:?}"
    );
    assert!(!r.engine(a).has_session(&bare(BOB)) && !r.engine(a).negotiating(&bare(BOB)));
    r.take_events(b);
    // It still negotiates as Alice: Bob starts, Alice accepts.
    r.start(b, ALICE, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(b).has_session(&bare(ALICE)));
    // Accepting again: the feature and the negotiation are back.
    r.engine(b).set_accepting(true);
    assert!(features(&mut r, a, b, "disco-2").iter().any(|v| v == esession_forms::esession::ESESSION_NS));
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(a).has_session(&bare(BOB)));
}

#[test]
fn a_connection_reset_ends_online_sessions_and_negotiations_and_forgets_presence() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(a).has_session(&bare(BOB)));
    let carol = jid("carol@example.net/x");
    let now = r.now();
    r.engine(a).start(now, &carol, Mode::Four).unwrap();
    assert!(r.engine(a).negotiating(&carol.to_bare()));
    let mut p = Element::bare("presence", "jabber:client");
    set(&mut p, "from", BOB);
    set(&mut p, "to", ALICE);
    r.engine(a).handle(now, &p);
    assert!(r.engine(a).is_available(&bare(BOB)));
    r.take_events(a);
    r.take_events(b);

    let step = r.engine(a).connection_reset(now);
    // Nothing is sent to the peers (they dropped the session when the server said we were
    // gone): only our presence, announced again.
    assert_eq!(step.send.len(), 1, "{:?}", step.send);
    assert!(step.send[0].is("presence", "jabber:client") && step.send[0].attr("type").is_none());
    let ev = step.events;
    let terminated = |e: &Event| {
        matches!(e, Event::Terminated { peer, why: Ended::ConnectionLost, offline: false, .. }
            if peer.to_bare() == bare(BOB))
    };
    assert!(ev.iter().any(terminated), "{ev:?}");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Failed { peer, failure: Failure::ConnectionLost } if *peer == carol)),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Presence { peer, available: false } if peer.to_bare() == bare(BOB))),
        "{ev:?}"
    );
    assert!(!r.engine(a).has_session(&bare(BOB)));
    assert!(!r.engine(a).negotiating(&carol.to_bare()));
    assert!(!r.engine(a).is_available(&bare(BOB)));
    // A second reset finds nothing left to end.
    assert!(r.engine(a).connection_reset(now).events.is_empty());
}

#[test]
fn a_connection_reset_keeps_the_offline_sessions() {
    // Offline sessions are bound to bare JIDs: Bob's (receive only at Alice) survives a reset:
    // going offline afterwards still finds it to end.
    let (mut r, a, _b, thread, _) = alice_holds_an_offline_session();
    let now = r.now();
    let step = r.engine(a).connection_reset(now);
    assert!(!step.events.iter().any(|e| matches!(e, Event::Terminated { .. })), "{:?}", step.events);
    let step = r.engine(a).terminate_all();
    assert!(
        step.events
            .iter()
            .any(|e| matches!(e, Event::Terminated { thread: t, offline: true, .. } if *t == thread)),
        "{:?}",
        step.events
    );
}

#[test]
fn messages_held_for_a_decision_are_bounded() {
    let (mut r, a, set, mut later) = untrusted_offline(false);
    r.engine(a).set_limits(esession_xmpp::Limits::default().with_held(2));
    alice_returns(&mut r, a, set);
    let now = r.now();
    for _ in 0..2 {
        let step = r.engine(a).handle(now, &later.remove(0));
        assert_eq!(held(&step.events).len(), 1, "{:?}", step.events);
    }
    // The third: dropped, silently for Bob, said to the application.
    let step = r.engine(a).handle(now, &later.remove(0));
    assert!(held(&step.events).is_empty(), "{:?}", step.events);
    assert!(step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::HeldFull, .. })));
    assert!(step.send.is_empty());
    assert_eq!(r.engine(a).held_untrusted().unwrap().len(), 2);
    // Decided: what was held is delivered, and the bound counts held messages only.
    let step = r.engine(a).trust_held(&bare(BOB), &bob_key().public_key()).unwrap();
    assert_eq!(bodies(&step.events), ["first", "second"]);
    assert!(r.engine(a).held_untrusted().unwrap().is_empty());
}

/// The engine reads the roster (the client only fetches it): it watches the contacts whose
/// presence we receive, tells an unknown presence from an absent one, and says whether one of
/// them has sent none yet, again after a stream reset.
#[test]
fn the_engine_reads_the_roster_and_says_whose_presence_is_awaited() {
    let (mut r, a, _b) = pair();
    let now = r.now();
    let carol = bare("carol@example.net");
    let dave = bare("dave@example.net");
    let roster: Element = "<iq xmlns='jabber:client' type='result' id='r1'><query xmlns='jabber:iq:roster'>\
        <item jid='bob@example.com' subscription='both'/><item jid='carol@example.net' subscription='to'/>\
        <item jid='dave@example.net' subscription='from'/></query></iq>"
        .parse()
        .unwrap();
    // An error answer watches nobody.
    let refused: Element = "<iq xmlns='jabber:client' type='error' id='r1'><query xmlns='jabber:iq:roster'>\
        <item jid='dave@example.net' subscription='both'/></query></iq>"
        .parse()
        .unwrap();
    r.engine(a).roster_result(&refused, &[]);
    assert!(r.engine(a).watched().is_empty());
    r.engine(a).roster_result(&roster, &[]);
    assert_eq!(r.engine(a).watched(), vec![bare(BOB), carol.clone()]);
    assert!(r.engine(a).watches(&carol) && !r.engine(a).watches(&dave));
    assert!(r.engine(a).awaiting_presence());
    assert_eq!(r.engine(a).presence_known(&bare(BOB)), Some(false), "watched, no presence yet");
    assert_eq!(r.engine(a).presence_known(&dave), None, "not a contact whose presence we receive");

    let presence = |from: &str, kind: Option<&str>| {
        let mut p = Element::bare("presence", "jabber:client");
        set(&mut p, "from", from);
        set(&mut p, "to", ALICE);
        if let Some(k) = kind {
            set(&mut p, "type", k);
        }
        p
    };
    r.engine(a).handle(now, &presence(BOB, None));
    assert!(r.engine(a).awaiting_presence(), "Carol has sent nothing yet");
    r.engine(a).handle(now, &presence("carol@example.net/phone", Some("unavailable")));
    assert!(!r.engine(a).awaiting_presence());
    assert_eq!(r.engine(a).presence_known(&bare(BOB)), Some(true));
    assert_eq!(r.engine(a).presence_known(&carol), Some(false));

    // A reset: the server sends presence again, and it is awaited again.
    r.engine(a).connection_reset(now);
    assert!(r.engine(a).awaiting_presence());
    assert_eq!(r.engine(a).presence_known(&bare(BOB)), Some(false));

    // A presence that came before the roster (an event not read yet) counts.
    let (mut r, a, _b) = pair();
    r.engine(a).roster_result(&roster, &[bare(BOB), carol]);
    assert!(!r.engine(a).awaiting_presence());
}

/// Which way a message goes is the engine's rule (`Engine::route_message`): the client only
/// carries it out.
#[test]
fn the_engine_says_which_way_a_message_goes() {
    use esession_xmpp::Route;
    let (mut r, a, _b) = pair();
    let now = r.now();
    // Not available, no session: an offline start from its options.
    assert_eq!(r.engine(a).route_message(&jid(BOB)), Route::OfflineStart);
    // A service (no node): 3-message at once.
    assert_eq!(r.engine(a).route_message(&jid("bot.example.net")), Route::Negotiate(Mode::Three));
    // Available (its bare JID or a full one): a 4-message negotiation.
    let mut p = Element::bare("presence", "jabber:client");
    set(&mut p, "from", BOB);
    set(&mut p, "to", ALICE);
    r.engine(a).handle(now, &p);
    assert_eq!(r.engine(a).route_message(&jid("bob@example.com")), Route::Negotiate(Mode::Four));
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert_eq!(r.engine(a).route_message(&jid(BOB)), Route::Session);

    // An offline session already started (Bob's, to Alice who is away).
    let (mut r, a, b) = pair();
    away(&mut r, a, chrono::Duration::hours(24));
    r.fetch_options(b, "alice@example.org").unwrap();
    assert_eq!(r.engine(b).route_message(&jid(ALICE)), Route::OfflineStart);
    let now = r.now();
    let step = r
        .engine(b)
        .offline_start(now, &bare(ALICE), esession_xmpp::engine::body_message("first"), false)
        .unwrap();
    r.output(b, step);
    assert_eq!(r.engine(b).route_message(&jid(ALICE)), Route::OfflineSession);
}

/// Whom to ask before negotiating, and what counts as announcing XEP-0116, are the engine's.
#[test]
fn the_engine_says_whom_to_negotiate_with() {
    use esession_xmpp::engine::announces_esessions;
    let (mut r, a, _b) = pair();
    let now = r.now();
    assert!(r.engine(a).negotiation_targets(&jid("bob@example.com")).is_empty(), "no resource available");
    assert_eq!(r.engine(a).negotiation_targets(&jid(BOB)), vec![jid(BOB)], "a full JID as given");
    assert_eq!(r.engine(a).negotiation_targets(&jid("bot.example.net")), vec![jid("bot.example.net")]);
    for from in ["bob@example.com/old", "bob@example.com/new"] {
        let mut p = Element::bare("presence", "jabber:client");
        set(&mut p, "from", from);
        set(&mut p, "to", ALICE);
        r.engine(a).handle(now, &p);
    }
    assert_eq!(
        r.engine(a).negotiation_targets(&jid("bob@example.com")),
        vec![jid("bob@example.com/new"), jid("bob@example.com/old")],
        "newest first"
    );
    let answer = |kind: &str, var: &str| -> Element {
        format!(
            "<iq xmlns='jabber:client' type='{kind}'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <feature var='{var}'/></query></iq>"
        )
        .parse()
        .unwrap()
    };
    assert!(announces_esessions(&answer("result", "http://www.xmpp.org/extensions/xep-0116.html#ns")));
    assert!(!announces_esessions(&answer("result", "urn:xmpp:ping")));
    assert!(!announces_esessions(&answer("error", "http://www.xmpp.org/extensions/xep-0116.html#ns")));
}

/// A roster answer from anyone but our own account is not read; a new roster replaces the
/// last (a contact removed is no longer watched).
#[test]
fn only_our_servers_roster_is_read_and_each_replaces_the_last() {
    let (mut r, a, _b) = pair();
    let roster = |from: Option<&str>, jids: &[&str]| -> Element {
        let items: String = jids.iter().map(|j| format!("<item jid='{j}' subscription='both'/>")).collect();
        let from = from.map(|f| format!(" from='{f}'")).unwrap_or_default();
        format!("<iq xmlns='jabber:client' type='result'{from}><query xmlns='jabber:iq:roster'>{items}</query></iq>")
            .parse()
            .unwrap()
    };
    r.engine(a).set_account(&jid(ALICE));
    r.engine(a).roster_result(&roster(Some("mallory@evil.example"), &["mallory@evil.example"]), &[]);
    assert!(r.engine(a).watched().is_empty(), "a roster from a stranger");
    r.engine(a)
        .roster_result(&roster(Some("alice@example.org"), &["bob@example.com", "carol@example.net"]), &[]);
    assert_eq!(r.engine(a).watched().len(), 2, "from our bare JID");
    r.engine(a).roster_result(&roster(None, &["carol@example.net"]), &[]);
    assert_eq!(r.engine(a).watched(), vec![bare("carol@example.net")]);
}

/// A disco error for a resource that is not there is not "no support".
#[test]
fn a_resource_that_is_gone_is_told_apart_from_one_without_support() {
    use esession_xmpp::engine::{announces_esessions, resource_gone};
    let error = |cond: &str| -> Element {
        format!(
            "<iq xmlns='jabber:client' type='error'><error type='cancel'>\
             <{cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        )
        .parse()
        .unwrap()
    };
    for gone in
        ["service-unavailable", "recipient-unavailable", "item-not-found", "remote-server-not-found", "gone"]
    {
        assert!(resource_gone(&error(gone)), "{gone}");
        assert!(!announces_esessions(&error(gone)));
    }
    assert!(!resource_gone(&error("forbidden")));
    let result: Element =
        "<iq xmlns='jabber:client' type='result'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
            .parse()
            .unwrap();
    assert!(!resource_gone(&result) && !announces_esessions(&result), "there, without support");
}

#[test]
fn the_acknowledgement_of_a_terminate_sent_as_we_left_is_no_lost_message() {
    // Alice leaves (terminate_all): Bob acknowledges her terminate after her session is gone
    // (the server stores it and hands it over at her next start). That is the end of a session
    // that ended already, not a message that could not be read; a chat message in a session
    // that is gone still is.
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.take_events(a);
    let stale_chat = {
        let mut m = r.engine(b).chat(&bare(ALICE), "late", EncryptOptions::default()).unwrap();
        set(&mut m, "from", BOB);
        m
    };
    let step = r.engine(a).terminate_all();
    assert_eq!(step.send.len(), 1, "{:?}", step.send);
    let mut t = step.send[0].clone();
    set(&mut t, "from", ALICE);
    let bob = r.engine(b).handle(now(), &t);
    assert_eq!(bob.send.len(), 1, "Bob acknowledges: {:?}", bob.events);
    let mut ack = bob.send[0].clone();
    set(&mut ack, "from", BOB);
    let step = r.engine(a).handle(now(), &ack);
    assert!(step.events.is_empty(), "no lost message: {:?}", step.events);
    assert!(step.send.is_empty(), "{:?}", step.send);
    let step = r.engine(a).handle(now(), &stale_chat);
    assert!(
        step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::NoSession, .. })),
        "a chat message of a gone session is lost: {:?}",
        step.events
    );
}

// ----------------------------------------------------------------------------------------------
// Crossing requests (issue 19): both contacts start at the same moment.

/// Two parties at `jids` (RSA keys, each trusting the other's for the other's bare JID), each told its own
/// account when `accounts`; both start a negotiation with the other (party `i` in `modes[i]`)
/// before either sees the other's request (`first` starts first, so its request is delivered
/// first). The relay, the parties, and each party's request thread.
fn crossing(
    jids: [&str; 2],
    accounts: bool,
    first: usize,
    modes: [Mode; 2],
) -> (Relay, [usize; 2], [String; 2]) {
    let (k0, k1) = (rsa("rsa.pem"), bob_key());
    let (p0, p1) = (k0.public_key(), k1.public_key());
    let (b0, b1) = (bare(jids[0]).to_string(), bare(jids[1]).to_string());
    let (c0, c1) = (config(Some(k0)), config(Some(k1)));
    let (t0, t1) = (vec![(b1.as_str(), p1)], vec![(b0.as_str(), p0)]);
    let mut r = Relay::new(now());
    let p = [r.add(jids[0], engine_with(c0, &t0)).unwrap(), r.add(jids[1], engine_with(c1, &t1)).unwrap()];
    if accounts {
        for (i, j) in p.iter().zip(jids) {
            r.engine(*i).set_account(&jid(j));
        }
    }
    let mut threads = [String::new(), String::new()];
    for i in [first, 1 - first] {
        r.start(p[i], jids[1 - i], modes[i]).unwrap();
        let (_, req) = r.in_flight().back().unwrap();
        threads[i] = req.get_child("thread", "jabber:client").unwrap().text();
    }
    assert_eq!(r.in_flight().len(), 2, "both requests in flight before either is delivered");
    (r, p, threads)
}

/// Drives a crossing (party `i` asking in `modes[i]`; both accepting requests or neither) to
/// its end and checks that it ended with one session, on the thread of party `winner`'s request
/// (`None`: the party whose thread sorts lower), told once on each side with the same SAS (a
/// SAS when the winning request is 4-message), nothing failed and no error sent; then a
/// message passes each way.
fn one_session_from_crossing(
    jids: [&str; 2],
    accounts: bool,
    first: usize,
    modes: [Mode; 2],
    accepting: bool,
    winner: Option<usize>,
) {
    let (mut r, p, threads) = crossing(jids, accounts, first, modes);
    for party in p {
        r.engine(party).set_accepting(accepting);
    }
    let winner = winner.unwrap_or(usize::from(threads[1] < threads[0]));
    r.drive();
    let ctx = format!("{jids:?} accounts {accounts} first {first} {modes:?} accepting {accepting}");
    let mut seen = Vec::new();
    for (i, &party) in p.iter().enumerate() {
        let events = r.take_events(party);
        let negotiated: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Negotiated { thread, sas, .. } => {
                    Some((thread.clone(), sas.as_ref().map(ToString::to_string)))
                }
                _ => None,
            })
            .collect();
        assert_eq!(negotiated.len(), 1, "{ctx}: exactly one session told to party {i}: {events:?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Failed { .. })), "{ctx}: party {i}: {events:?}");
        assert_eq!(r.engine(party).load(), (0, 1), "{ctx}: party {i} holds one session, no negotiation");
        seen.push(negotiated.into_iter().next().unwrap());
    }
    assert_eq!(seen[0], seen[1], "{ctx}: the same thread and SAS on both sides");
    assert_eq!(seen[0].0, threads[winner], "{ctx}: the session of party {winner}'s request");
    assert_eq!(seen[0].1.is_some(), modes[winner] == Mode::Four, "{ctx}");
    assert!(
        !r.delivered.iter().any(|(_, _, s)| s.attr("type") == Some("error")),
        "{ctx}: no error stanza: {:?}",
        r.delivered
    );
    for i in 0..2 {
        r.chat(p[i], jids[1 - i], &format!("from {i}")).unwrap();
        r.drive();
        assert_eq!(bodies(&r.take_events(p[1 - i])), [format!("from {i}")], "{ctx}");
    }
}

#[test]
fn crossing_requests_end_in_one_session_the_lower_jids() {
    // alice@example.org < bob@example.com: Alice's request wins, whoever started first.
    for mode in [Mode::Four, Mode::Three] {
        for first in [0, 1] {
            one_session_from_crossing([ALICE, BOB], true, first, [mode; 2], true, Some(0));
        }
    }
}

#[test]
fn crossing_requests_the_lower_jid_wins_either_way_round() {
    // The roles swapped: the party added first (and starting first) now has the higher JID.
    for mode in [Mode::Four, Mode::Three] {
        for first in [0, 1] {
            one_session_from_crossing(["zoe@example.org/pda", BOB], true, first, [mode; 2], true, Some(1));
        }
    }
}

#[test]
fn crossing_requests_of_one_accounts_resources_compare_full_jids() {
    for mode in [Mode::Four, Mode::Three] {
        for first in [0, 1] {
            one_session_from_crossing(
                ["carol@example.net/b", "carol@example.net/a"],
                true,
                first,
                [mode; 2],
                true,
                Some(1),
            );
            one_session_from_crossing(
                ["carol@example.net/a", "carol@example.net/b"],
                true,
                first,
                [mode; 2],
                true,
                Some(0),
            );
        }
    }
}

#[test]
fn crossing_requests_without_an_account_compare_the_threads() {
    for mode in [Mode::Four, Mode::Three] {
        for first in [0, 1] {
            // The threads are random: either party may win, each run.
            one_session_from_crossing([ALICE, BOB], false, first, [mode; 2], true, None);
        }
    }
}

#[test]
fn what_comes_on_a_request_dropped_for_a_crossing_one_is_ignored_quietly() {
    // Bob (the higher JID) drops his request for Alice's; whatever comes on his dropped thread
    // later (here Alice's decline turned into an error, and a copy of it) tells his
    // application nothing and is not answered.
    for mode in [Mode::Four, Mode::Three] {
        let (mut r, p, threads) = crossing([ALICE, BOB], true, 0, [mode; 2]);
        let (a, b) = (p[0], p[1]);
        let dropped = threads[1].clone();
        let seen: Rc<RefCell<Option<Element>>> = Rc::new(RefCell::new(None));
        let keep = seen.clone();
        r.set_filter(Box::new(move |from, s| {
            let on_dropped = s.get_child("thread", "jabber:client").is_some_and(|t| t.text() == dropped);
            if from == a && on_dropped && s.attr("type") != Some("error") {
                assert!(keep.borrow_mut().replace(s).is_none(), "one refusal only");
                let mut error = Element::builder("error", "jabber:client")
                    .append(Element::bare("not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas"))
                    .build();
                set(&mut error, "type", "cancel");
                let mut e = Element::builder("message", "jabber:client")
                    .append(Element::builder("thread", "jabber:client").append(dropped.as_str()))
                    .append(error)
                    .build();
                set(&mut e, "to", BOB);
                set(&mut e, "type", "error");
                return Some(e);
            }
            Some(s)
        }));
        r.drive();
        // And the decline itself, late.
        let decline = seen.borrow_mut().take().expect("Alice refused Bob's crossing request");
        r.set_filter(Box::new(|_, s| Some(s)));
        r.inject(a, decline);
        r.drive();
        let events = r.take_events(b);
        assert!(!events.iter().any(|e| matches!(e, Event::Failed { .. })), "{mode:?}: {events:?}");
        assert_eq!(events.iter().filter(|e| matches!(e, Event::Negotiated { .. })).count(), 1, "{mode:?}");
        assert!(r.engine(b).has_session(&bare(ALICE)) && r.engine(a).has_session(&bare(BOB)));
        let errors_from_bob =
            r.delivered.iter().filter(|(f, _, s)| *f == b && s.attr("type") == Some("error"));
        assert_eq!(errors_from_bob.count(), 0, "{mode:?}: an error is never answered");
    }
}

#[test]
fn content_a_request_dropped_for_a_crossing_one_carried_goes_in_the_session_that_won() {
    // 3-message requests may carry content in Alice's accept (start_with). Bob's request gives
    // way to Alice's: his content goes in the session of hers, once; hers goes as it would.
    let (mut r, a, b) = pair();
    r.engine(a).set_account(&jid(ALICE));
    r.engine(b).set_account(&jid(BOB));
    for (i, peer, text) in [(b, ALICE, "from the loser"), (a, BOB, "from the winner")] {
        let mut m = esession_xmpp::engine::body_message(text);
        set(&mut m, "to", peer);
        let step = r.engine(i).start_with(now(), &jid(peer), Mode::Three, Some((m, false))).unwrap();
        r.output(i, step);
    }
    r.drive();
    let (ea, eb) = (r.take_events(a), r.take_events(b));
    assert_eq!(bodies(&ea), ["from the loser"], "{ea:?}");
    assert_eq!(bodies(&eb), ["from the winner"], "{eb:?}");
    for e in [&ea, &eb] {
        assert_eq!(e.iter().filter(|e| matches!(e, Event::Negotiated { .. })).count(), 1, "{e:?}");
        assert!(!e.iter().any(|e| matches!(e, Event::Failed { .. })), "{e:?}");
    }
}

#[test]
fn crossing_requests_are_answered_even_while_not_accepting() {
    // Neither accepts requests (set_accepting(false)), yet each asked the other: the request
    // that wins is answered (the loser asked that contact for a session), one session.
    for mode in [Mode::Four, Mode::Three] {
        for first in [0, 1] {
            one_session_from_crossing([ALICE, BOB], true, first, [mode; 2], false, Some(0));
            one_session_from_crossing(["zoe@example.org/pda", BOB], true, first, [mode; 2], false, Some(1));
        }
    }
}

#[test]
fn crossing_requests_a_four_message_request_beats_a_three_message_one() {
    // Whatever the JIDs (or the threads): a crossing 3-message request, perhaps forged by a
    // server, never takes the SAS away.
    for first in [0, 1] {
        for accepting in [true, false] {
            // alice@ sorts lower, but asks for 3 messages: Bob's 4-message request wins.
            one_session_from_crossing(
                [ALICE, BOB],
                true,
                first,
                [Mode::Three, Mode::Four],
                accepting,
                Some(1),
            );
            one_session_from_crossing(
                [ALICE, BOB],
                true,
                first,
                [Mode::Four, Mode::Three],
                accepting,
                Some(0),
            );
            one_session_from_crossing(
                ["zoe@example.org/pda", BOB],
                true,
                first,
                [Mode::Four, Mode::Three],
                accepting,
                Some(0),
            );
            one_session_from_crossing(
                ["carol@example.net/a", "carol@example.net/b"],
                true,
                first,
                [Mode::Three, Mode::Four],
                accepting,
                Some(1),
            );
            one_session_from_crossing(
                [ALICE, BOB],
                false,
                first,
                [Mode::Three, Mode::Four],
                accepting,
                Some(1),
            );
        }
    }
}

const MALLORY: &str = "mallory@example.net/x";

/// Replaces the `<thread/>` of `s` with `thread`.
fn with_thread(mut s: Element, thread: &str) -> Element {
    s.remove_child("thread", "jabber:client");
    s.append_child(Element::builder("thread", "jabber:client").append(thread).build());
    s
}

fn thread_text(s: &Element) -> Option<String> {
    s.get_child("thread", "jabber:client").map(Element::text)
}

/// Bob (the higher JID) asks Alice for a 3-message session carrying `text`, and Alice asks him
/// at the same moment: his request gives way to hers, his content is parked for the session of
/// hers. What Bob sends to Alice on her thread is lost in flight: her negotiation stalls. Also
/// in the relay: Mallory, a contact Bob trusts, whose requests reach Bob on the thread of
/// Alice's (the server sees thread ids in clear; the filter rewrites them both ways). The
/// relay, Alice, Bob, Mallory, and the thread of Alice's request.
fn carried_over_a_stalled_crossing(text: &str) -> (Relay, usize, usize, usize, String) {
    let (mut r, a, b) = pair();
    r.engine(a).set_account(&jid(ALICE));
    r.engine(b).set_account(&jid(BOB));
    let mk = bob_key();
    let m = r.add(MALLORY, engine(Some(rsa("rsa.pem")), &[("bob@example.com", mk.public_key())])).unwrap();
    r.engine(b).verify_key(&bare(MALLORY), rsa("rsa.pem").public_key()).unwrap();
    let mut content = esession_xmpp::engine::body_message(text);
    set(&mut content, "to", ALICE);
    let step = r.engine(b).start_with(now(), &jid(ALICE), Mode::Three, Some((content, false))).unwrap();
    r.output(b, step);
    r.start(a, BOB, Mode::Three).unwrap();
    let theirs = thread_text(&r.in_flight().back().unwrap().1).unwrap();
    let t = theirs.clone();
    let mallorys: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    r.set_filter(Box::new(move |from, s| {
        let to = s.attr("to").unwrap_or_default().to_owned();
        let thread = thread_text(&s);
        if from == b && to.starts_with("alice@") && thread.as_deref() == Some(t.as_str()) {
            return None;
        }
        if from == m && to.starts_with("bob@") {
            mallorys.borrow_mut().get_or_insert_with(|| thread.unwrap_or_default());
            return Some(with_thread(s, &t));
        }
        if from == b && to.starts_with("mallory@") && thread.as_deref() == Some(t.as_str()) {
            let ms = mallorys.borrow().clone().unwrap_or_default();
            return Some(with_thread(s, &ms));
        }
        Some(s)
    }));
    r.drive();
    let events = r.take_events(b);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Failed { .. } | Event::Negotiated { .. })),
        "{events:?}"
    );
    assert!(r.engine(b).negotiating(&bare(ALICE)), "Bob answered Alice's request and waits");
    r.take_events(a);
    (r, a, b, m, theirs)
}

/// The content given back as not sent, to whom.
fn not_sent(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { peer, failure: Failure::NotSent { stanza } } => Some((
                peer.to_bare().to_string(),
                stanza.get_child("body", "jabber:client").map(Element::text).unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn content_carried_over_a_crossing_goes_to_that_contact_only() {
    let (mut r, _, b, m, _) = carried_over_a_stalled_crossing("for Alice only");
    let sent = r.delivered.len();
    // Mallory gets a session with Bob on the thread of Alice's request.
    r.start(m, BOB, Mode::Three).unwrap();
    r.drive();
    assert!(r.engine(b).has_session(&bare(MALLORY)) && r.engine(m).has_session(&bare(BOB)));
    let em = r.take_events(m);
    assert!(bodies(&em).is_empty(), "Alice's content went to Mallory: {em:?}");
    let encrypted_to_mallory = r.delivered[sent..]
        .iter()
        .filter(|(f, t, s)| *f == b && *t == m && s.get_child("c", esession_stanza::NS).is_some())
        .count();
    assert_eq!(encrypted_to_mallory, 0, "nothing encrypted went to Mallory");
    let eb = r.take_events(b);
    assert!(not_sent(&eb).is_empty(), "Alice's negotiation still runs: {eb:?}");
    // Alice's negotiation never completes: her content comes back to Bob's application.
    r.advance(chrono::Duration::seconds(121));
    let now = r.now();
    let step = r.engine(b).tick(now);
    assert_eq!(not_sent(&step.events), [("alice@example.org".to_owned(), "for Alice only".to_owned())]);
    assert!(step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Expired, .. })));
}

#[test]
fn content_carried_over_a_crossing_comes_back_when_its_negotiation_ends_without_a_session() {
    for ending in ["expired", "reset", "error", "replaced", "offline"] {
        let (mut r, a, b, _, theirs) = carried_over_a_stalled_crossing("for Alice");
        let events = match ending {
            "expired" => {
                r.advance(chrono::Duration::seconds(121));
                let now = r.now();
                r.engine(b).tick(now).events
            }
            "reset" => {
                let now = r.now();
                r.engine(b).connection_reset(now).events
            }
            "offline" => r.engine(b).terminate_all().events,
            "error" => {
                let mut error = Element::builder("error", "jabber:client")
                    .append(Element::bare("not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas"))
                    .build();
                set(&mut error, "type", "cancel");
                let mut e = Element::builder("message", "jabber:client")
                    .append(Element::builder("thread", "jabber:client").append(theirs.as_str()))
                    .append(error)
                    .build();
                set(&mut e, "to", BOB);
                set(&mut e, "type", "error");
                r.inject(a, e);
                r.drive();
                r.take_events(b)
            }
            // Alice asks again (a new request on a new thread): the one that was to carry it
            // is replaced.
            _ => {
                r.set_filter(Box::new(|_, s| Some(s)));
                r.start(a, BOB, Mode::Three).unwrap();
                r.drive();
                assert!(r.engine(b).has_session(&bare(ALICE)), "{ending}");
                r.take_events(b)
            }
        };
        assert_eq!(
            not_sent(&events),
            [("alice@example.org".to_owned(), "for Alice".to_owned())],
            "{ending}: {events:?}"
        );
        // Given back once: nothing more later.
        r.advance(chrono::Duration::seconds(600));
        let now = r.now();
        assert!(not_sent(&r.engine(b).tick(now).events).is_empty(), "{ending}");
    }
}

#[test]
fn content_carried_over_crossings_is_bounded_and_what_is_pushed_out_comes_back() {
    // Bob gives way to 65 crossing requests in a row (each from another contact), each
    // stalled: 64 contents are kept, the first comes back at once.
    let (mut r, _, b) = pair();
    r.engine(b).set_account(&jid(BOB));
    let mut back = Vec::new();
    for i in 0..65 {
        let peer = format!("a{i:02}@example.org/x");
        let mut content = esession_xmpp::engine::body_message(&format!("to {i}"));
        set(&mut content, "to", &peer);
        let step = r.engine(b).start_with(now(), &jid(&peer), Mode::Three, Some((content, false))).unwrap();
        back.extend(not_sent(&step.events));
        // The contact's crossing request, made by an engine of its own.
        let mut other = engine(Some(rsa("rsa.pem")), &[]);
        other.set_account(&jid(&peer));
        let request = other.start(now(), &jid(BOB), Mode::Three).unwrap().send.remove(0);
        let mut request = request;
        set(&mut request, "from", &peer);
        let step = r.engine(b).handle(now(), &request);
        back.extend(not_sent(&step.events));
    }
    assert_eq!(back, [("a00@example.org".to_owned(), "to 0".to_owned())]);
}
