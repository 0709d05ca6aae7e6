//! The hostile-input suite (issue 16): what a peer or a man in the middle can send, driven
//! through the engine, the one router of the client and of the party. Each class ends with a
//! valid negotiation on the same engines: nothing that came before may poison it.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use esession_negotiate::Mode;
use esession_stanza::EncryptOptions;
use esession_xmpp::relay::Relay;
use esession_xmpp::{Ended, Event, Failure, Limits};
use minidom::Element;

const FEATURE: &str = "http://jabber.org/protocol/feature-neg";

/// A chain of `n` nested elements built without recursion (and dropped with `dispose`).
fn chain(name: &str, ns: &str, n: usize) -> Element {
    let mut e = Element::bare(name, ns);
    for _ in 1..n {
        let mut p = Element::bare(name, ns);
        p.append_child(e);
        e = p;
    }
    e
}

fn stamped(mut s: Element, from: &str) -> Element {
    set(&mut s, "from", from);
    s
}

/// A request form of Alice's with one more field holding `extra` (moved in, never copied).
fn request_with(extra: Element, thread: &str) -> Element {
    let (mut r, a, _) = pair();
    let step = r.engine(a).start(now(), &jid(BOB), Mode::Four).unwrap();
    let req = step.send.into_iter().next().unwrap();
    let mut feature = req.get_child("feature", FEATURE).unwrap().clone();
    let x = feature.children_mut().next().unwrap();
    let mut field = Element::bare("field", "jabber:x:data");
    set(&mut field, "var", "bogus");
    field.append_child(extra);
    x.append_child(field);
    let mut out = Element::bare("message", "jabber:client");
    set(&mut out, "to", BOB);
    out.append_child(Element::builder("thread", "jabber:client").append(thread).build());
    out.append_child(feature);
    out
}

/// After whatever came before, a valid negotiation completes and carries a message.
fn still_works(r: &mut Relay, a: usize, b: usize) {
    r.take_events(a);
    r.take_events(b);
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(
        r.engine(a).has_session(&bare(BOB)) && r.engine(b).has_session(&bare(ALICE)),
        "{:?} {:?}",
        r.events(a),
        r.events(b)
    );
    r.chat(a, BOB, "still fine").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["still fine"]);
}

/// 16.1: deep nesting in a request, a response and a 4-message accept: no crash (no recursion
/// over it, not even to drop it), a bounded refusal, and nothing quoted.
#[test]
fn deep_nesting_never_crashes_and_is_never_echoed() {
    let (mut r, a, b) = pair();
    let deep = stamped(request_with(chain("a", "jabber:x:data", 200_000), "deep-1"), ALICE);
    let step = r.engine(b).handle(now(), &deep);
    esession_forms::xml::dispose(deep);
    assert!(
        step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::TooLarge, .. })),
        "{step:?}"
    );
    assert!(step.send.is_empty(), "a stanza beyond the limits is dropped unread, not answered");
    // Within the engine's stanza limits but beyond a negotiation's: refused, not quoted.
    let medium = request_with(chain("a", "jabber:x:data", 20), "deep-2");
    let step = r.engine(b).handle(now(), &stamped(medium, ALICE));
    assert_eq!(step.send.len(), 1, "refused with an error");
    let reply = String::from(&step.send[0]);
    assert!(
        reply.contains("not-acceptable") && !reply.contains("<a"),
        "the deep part is not quoted: {reply}"
    );
    // A deep child in Bob's response, then in Alice's 4-message accept: dropped unread by the
    // receiver, no session, no crash.
    for at in [2, 3] {
        let mut n = 0;
        r.set_filter(Box::new(move |_, mut s| {
            n += 1;
            if n == at {
                s.append_child(chain("z", "urn:deep", 100_000));
            }
            Some(s)
        }));
        r.take_events(a);
        r.take_events(b);
        r.start(a, BOB, Mode::Four).unwrap();
        r.drive();
        let receiver = if at == 2 { a } else { b };
        assert!(
            r.events(receiver).iter().any(|e| matches!(e, Event::Failed { failure: Failure::TooLarge, .. })),
            "{:?}",
            r.events(receiver)
        );
        assert!(!r.engine(a).has_session(&bare(BOB)));
    }
    r.set_filter(Box::new(|_, s| Some(s)));
    still_works(&mut r, a, b);
}

/// 16.2: a `<body/>` (or any child) added in clear beside a valid `<c/>` is never delivered
/// as part of the protected stanza: it is dropped and reported apart.
#[test]
fn clear_children_beside_c_are_never_delivered_as_protected() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.set_filter(Box::new(|_, mut s| {
        if s.get_child("c", esession_stanza::NS).is_some() {
            s.append_child(Element::builder("body", "jabber:client").append("INJECTED").build());
            s.append_child(Element::bare("x", "urn:evil"));
        }
        Some(s)
    }));
    r.chat(a, BOB, "genuine").unwrap();
    r.drive();
    let eb = r.take_events(b);
    assert_eq!(bodies(&eb), ["genuine"]);
    for e in &eb {
        if let Event::Message { stanza, .. } = e {
            assert!(!String::from(stanza).contains("INJECTED"), "{stanza:?}");
        }
    }
    assert!(
        eb.iter().any(
            |e| matches!(e, Event::Unprotected { elements, .. } if elements == &["body", "{urn:evil}x"])
        ),
        "{eb:?}"
    );
    // A re-key stanza too, and the session goes on.
    let w =
        r.engine(a).chat(&bare(BOB), "rekeyed", EncryptOptions { rekey: true, publish_old: false }).unwrap();
    r.inject(a, w);
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["rekeyed"]);
    r.set_filter(Box::new(|_, s| Some(s)));
    still_works(&mut r, a, b);
}

/// Adds a clear `<body/>` and a foreign element beside the `<c/>` of every stanza in flight
/// that has one (what a man in the middle can do).
fn inject_beside_c() -> esession_xmpp::relay::Filter {
    Box::new(|_, mut s| {
        if s.get_child("c", esession_stanza::NS).is_some() {
            s.append_child(Element::builder("body", "jabber:client").append("INJECTED").build());
            s.append_child(Element::bare("x", "urn:evil"));
        }
        Some(s)
    })
}

/// The protected stanzas delivered among `events`, with their thread, and how many
/// `Event::Unprotected` reported exactly the two added children.
fn delivered(events: &[Event]) -> (Vec<(String, Element)>, usize) {
    let messages = events
        .iter()
        .filter_map(|e| match e {
            Event::Message { stanza, thread, clear, .. } => {
                assert!(clear.is_empty(), "nothing but <thread/> in clear here: {clear:?}");
                Some((thread.clone(), stanza.clone()))
            }
            _ => None,
        })
        .collect();
    let reported = events
        .iter()
        .filter(|e| matches!(e, Event::Unprotected { elements, .. } if elements == &["body", "{urn:evil}x"]))
        .count();
    (messages, reported)
}

/// What the sender encrypted: a chat message with `text` (and `extra`), in clear only the
/// `<thread/>` that XEP-0200 §5 leaves out of `<c/>`.
fn exactly(thread: &str, text: &str, extra: Option<Element>) -> Element {
    let mut m = Element::builder("message", "jabber:client")
        .append(Element::builder("body", "jabber:client").append(text))
        .append(Element::builder("thread", "jabber:client").append(thread))
        .append_all(extra)
        .build();
    set(&mut m, "type", "chat");
    m
}

/// The SHIM `Created` header XEP-0187 §4 has Bob put in the encrypted content of a start.
fn created(at: chrono::DateTime<chrono::Utc>) -> Element {
    const SHIM: &str = "http://jabber.org/protocol/shim";
    let mut header = Element::builder("header", SHIM).append(esession_offline::xep0082(at)).build();
    set(&mut header, "name", "Created");
    Element::builder("headers", SHIM).append(header).build()
}

/// `stanza` with its children in a fixed order (by name) and no `from`/`to`, to compare
/// contents whatever order the sender wrote them in.
fn content_of(stanza: &Element) -> Element {
    let mut out = Element::bare(stanza.name(), stanza.ns());
    for ((ns, n), v) in stanza.attrs().iter() {
        if !matches!(n.as_str(), "from" | "to" | "id") {
            out.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
        }
    }
    let mut children: Vec<&Element> = stanza.children().collect();
    children.sort_by_key(|c| (c.ns(), c.name().to_owned()));
    for c in children {
        out.append_child(c.clone());
    }
    out
}

/// 16.2, the same in offline sessions (XEP-0187): clear children added beside the `<c/>` of
/// Bob's offline stanzas, the start and the later ones (stored for Alice while she is away),
/// are dropped and reported as `Event::Unprotected`; what Alice gets as `Event::Message` is
/// exactly what Bob encrypted (the start's content with its `Created` header).
#[test]
fn clear_children_beside_c_in_an_offline_session_are_never_delivered() {
    let (mut r, a, b) = pair();
    let set = away(&mut r, a, chrono::Duration::hours(24));
    let started = r.now();
    let stanzas = r
        .offline_start(
            b,
            "alice@example.org",
            esession_xmpp::engine::body_message("while away"),
            &["second", "third"],
        )
        .unwrap();
    r.set_filter(inject_beside_c());
    for (i, s) in stanzas.into_iter().enumerate() {
        assert!(i == 0 || s.get_child("c", esession_stanza::NS).is_some());
        r.inject(b, s);
    }
    r.drive();
    r.advance(chrono::Duration::minutes(30));
    // Alice returns; Bob's terminate on her presence is not part of this test.
    let ea = alice_returns(&mut r, a, set);
    assert!(
        ea.iter().all(|e| !matches!(e, Event::Message { offline: false, .. })),
        "only offline messages: {ea:?}"
    );
    let (messages, reported) = delivered(&ea);
    let texts: Vec<_> = messages
        .iter()
        .map(|(_, m)| m.get_child("body", "jabber:client").map(Element::text).unwrap_or_default())
        .collect();
    assert_eq!(texts, ["while away", "second", "third"], "{ea:?}");
    for (i, (thread, m)) in messages.iter().enumerate() {
        let text = m.get_child("body", "jabber:client").map(Element::text).unwrap();
        let expected = exactly(thread, &text, (i == 0).then(|| created(started)));
        assert_eq!(content_of(m), content_of(&expected), "{}", String::from(m));
        assert!(!String::from(m).contains("INJECTED") && !String::from(m).contains("urn:evil"));
    }
    // The start and the two later stanzas each carry a <c/>: each one's additions reported.
    assert_eq!(reported, 3, "{ea:?}");
    r.set_filter(Box::new(|_, s| Some(s)));
    still_works(&mut r, a, b);
}

/// 16.2, after a re-key: the re-key stanza and the stanzas after it, each with a clear
/// `<body/>` and a foreign element added beside `<c/>`, deliver exactly what Alice encrypted
/// (under the new keys), and each addition is reported as `Event::Unprotected`.
#[test]
fn clear_children_beside_c_after_a_rekey_are_never_delivered() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.take_events(b);
    r.set_filter(inject_beside_c());
    let w =
        r.engine(a).chat(&bare(BOB), "rekeyed", EncryptOptions { rekey: true, publish_old: false }).unwrap();
    r.inject(a, w);
    r.drive();
    for text in ["after the re-key", "and again"] {
        r.chat(a, BOB, text).unwrap();
    }
    r.drive();
    let eb = r.take_events(b);
    let (messages, reported) = delivered(&eb);
    let texts: Vec<_> = messages
        .iter()
        .map(|(_, m)| m.get_child("body", "jabber:client").map(Element::text).unwrap_or_default())
        .collect();
    assert_eq!(texts, ["rekeyed", "after the re-key", "and again"], "{eb:?}");
    for (thread, m) in &messages {
        let text = m.get_child("body", "jabber:client").map(Element::text).unwrap();
        assert_eq!(content_of(m), content_of(&exactly(thread, &text, None)), "{}", String::from(m));
        assert!(!String::from(m).contains("INJECTED") && !String::from(m).contains("urn:evil"));
    }
    assert_eq!(reported, 3, "each stanza's additions reported: {eb:?}");
    r.set_filter(Box::new(|_, s| Some(s)));
    still_works(&mut r, a, b);
}

/// 16.3: an error answering a negotiation ends Alice's half-open 3-message session (she must
/// not keep sending in it), and says so.
#[test]
fn an_error_on_the_thread_ends_a_half_open_session() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Three).unwrap();
    r.drive();
    assert!(r.engine(a).has_session(&bare(BOB)));
    let thread = r.engine(a).session(&bare(BOB)).unwrap().thread().to_owned();
    let mut err = Element::bare("message", "jabber:client");
    set(&mut err, "type", "error");
    set(&mut err, "to", ALICE);
    err.append_child(Element::builder("thread", "jabber:client").append(thread.as_str()).build());
    let mut e = Element::bare("error", "jabber:client");
    set(&mut e, "type", "cancel");
    e.append_child(Element::bare("feature-not-implemented", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    err.append_child(e);
    r.inject(b, err);
    r.drive();
    let ea = r.take_events(a);
    assert!(ea.iter().any(|e| matches!(e, Event::Terminated { why: Ended::PeerError, .. })), "{ea:?}");
    assert!(!r.engine(a).has_session(&bare(BOB)));
    assert!(r.engine(a).chat(&bare(BOB), "readable?", EncryptOptions::default()).is_err());
    still_works(&mut r, a, b);
}

/// 16.4: an error is never answered with an error (RFC 6120 §8.3.1): two engines handed each
/// other's errors stay quiet.
#[test]
fn errors_are_never_answered() {
    let (mut r, a, b) = pair();
    // Bob refuses a broken request: an error quoting it.
    let mut bad = request_with(Element::bare("unknown", "jabber:x:data"), "err-1");
    bad = stamped(bad, ALICE);
    let step = r.engine(b).handle(now(), &bad);
    assert_eq!(step.send.len(), 1);
    let error = step.send[0].clone();
    assert_eq!(error.attr("type"), Some("error"));
    // Bob's error, handed back to Bob (it quotes a request) and to Alice: no answer from either.
    for i in [a, b] {
        let step = r.engine(i).handle(now(), &stamped(error.clone(), if i == a { BOB } else { ALICE }));
        assert!(step.send.is_empty(), "an error answered: {:?}", step.send);
    }
    // Relayed between the two: the relay goes quiet at once.
    r.inject(b, error.clone());
    r.inject(a, error);
    assert!(r.drive() <= 2);
    still_works(&mut r, a, b);
}

/// 16.5: attributes keep their namespaces through a session: `xml:lang` stays `xml:lang`,
/// and `p:role` beside `role` stays two attributes.
#[test]
fn namespaced_attributes_arrive_intact() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.take_events(b);
    let m: Element =
        "<message xmlns='jabber:client' to='bob@example.com/laptop' type='chat' xmlns:p='urn:p'>\
        <body xml:lang='de' p:role='a' role='b'>Hallo</body></message>"
            .parse()
            .unwrap();
    let w = r.engine(a).protect(&m, EncryptOptions::default()).unwrap();
    r.inject(a, w);
    r.drive();
    let eb = r.take_events(b);
    let Some(Event::Message { stanza, .. }) = eb.iter().find(|e| matches!(e, Event::Message { .. })) else {
        panic!("{eb:?}")
    };
    let body = stanza.get_child("body", "jabber:client").unwrap();
    assert_eq!(body.attr_ns("http://www.w3.org/XML/1998/namespace", "lang"), Some("de"));
    assert_eq!(body.attr_ns("urn:p", "role"), Some("a"));
    assert_eq!(body.attr("role"), Some("b"));
    assert_eq!(body.attrs().iter().count(), 3);
}

/// 16.6: resources stay bounded: a request with 100,000 valued options and a 10 MB request are
/// dropped before any costly work; a flood of requests keeps at most one negotiation per
/// contact and `pending_total` in all; abandoned negotiations expire by `now`.
#[test]
fn floods_keep_memory_flat_and_pending_work_expires() {
    let (mut r, a, b) = pair();
    let mut many = Element::bare("value", "jabber:x:data");
    for _ in 0..100_000 {
        many.append_child(
            Element::builder("option", "jabber:x:data")
                .append(Element::builder("value", "jabber:x:data").append("x"))
                .build(),
        );
    }
    let t = std::time::Instant::now();
    let step = r.engine(b).handle(now(), &stamped(request_with(many, "many"), ALICE));
    assert!(step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::TooLarge, .. })));
    let big =
        request_with(Element::builder("value", "jabber:x:data").append("A".repeat(10 << 20)).build(), "big");
    let step = r.engine(b).handle(now(), &stamped(big, ALICE));
    assert!(step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::TooLarge, .. })));
    assert!(t.elapsed() < std::time::Duration::from_secs(2), "refused quickly: {:?}", t.elapsed());
    // A flood of requests from one contact (many threads): one negotiation at a time.
    let mut req = r.engine(a).start(now(), &jid(BOB), Mode::Four).unwrap().send.remove(0);
    for i in 0..50 {
        let thread = req.get_child_mut("thread", "jabber:client").unwrap();
        *thread = Element::builder("thread", "jabber:client").append(format!("flood-{i}")).build();
        let _ = r.engine(b).handle(now(), &stamped(req.clone(), ALICE));
    }
    assert_eq!(r.engine(b).load().0, 1, "one negotiation per contact");
    // From many contacts: at most pending_total.
    r.engine(b).set_limits(Limits::default().with_pending_total(8));
    for i in 0..40 {
        let _ = r.engine(b).handle(now(), &stamped(req.clone(), &format!("mallory{i}@example.net/x")));
    }
    assert!(r.engine(b).load().0 <= 8, "{:?}", r.engine(b).load());
    // Abandoned negotiations expire.
    let later = now() + chrono::Duration::seconds(121);
    let step = r.engine(b).tick(later);
    assert!(step.events.iter().all(|e| matches!(e, Event::Failed { failure: Failure::Expired, .. })));
    assert_eq!(r.engine(b).load().0, 0);
    r.engine(b).set_limits(Limits::default());
    still_works(&mut r, a, b);
}

/// 16.7: a request after an abandoned negotiation (Alice's client died after Bob answered)
/// starts afresh at once, on a new thread or on the same one.
#[test]
fn an_abandoned_negotiation_does_not_poison_the_next() {
    let (mut r, a, b) = pair();
    // Alice's first request reaches Bob; his response is lost; Alice's client restarts.
    let first = r.engine(a).start(now(), &jid(BOB), Mode::Four).unwrap().send.remove(0);
    let step = r.engine(b).handle(now(), &stamped(first.clone(), ALICE));
    assert_eq!(step.send.len(), 1, "Bob answered");
    // The new request (new thread) is answered the first time.
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(a).has_session(&bare(BOB)), "{:?} {:?}", r.events(a), r.events(b));
    // The same thread reused by a restarted client: a request is never read as an accept.
    let step = r.engine(b).handle(now(), &stamped(first, ALICE));
    assert_eq!(step.send.len(), 1);
    assert!(String::from(&step.send[0]).contains("dhkeys"), "answered as a new request");
}

/// 16.8: an empty nonce is refused in a request and in a response.
#[test]
fn empty_nonces_are_refused() {
    let (mut r, a, b) = pair();
    let req = r.engine(a).start(now(), &jid(BOB), Mode::Four).unwrap().send.remove(0);
    let text = String::from(&req);
    let start = text.find("var='my_nonce'><value>").unwrap() + "var='my_nonce'><value>".len();
    let end = start + text[start..].find("</value>").unwrap();
    let empty: Element = format!("{}{}", &text[..start], &text[end..]).parse().unwrap();
    let step = r.engine(b).handle(now(), &stamped(empty, ALICE));
    assert!(
        step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Negotiation(_), .. })),
        "{step:?}"
    );
    assert!(!r.engine(b).negotiating(&bare(ALICE)));
    still_works(&mut r, a, b);
}

/// Nothing readable in any `<data/>` a party sends, with the default configuration, whatever
/// a middle does to the offers.
#[test]
fn no_readable_data_with_the_defaults() {
    let (mut r, a, _b) = pair();
    r.set_filter(Box::new(|_, s| {
        let text = String::from(&s).replace("aes256-ctr", "none").replace("aes128-ctr", "none");
        Some(text.parse().unwrap())
    }));
    r.start(a, BOB, Mode::Three).unwrap();
    r.drive();
    let _ = r.engine(a).chat(&bare(BOB), "READABLE", EncryptOptions::default());
    for (_, _, s) in &r.delivered {
        assert!(!String::from(s).contains("READABLE"));
        if let Some(c) = s.get_child("c", esession_stanza::NS)
            && let Some(d) = c.get_child("data", esession_stanza::NS)
        {
            let raw = esession_crypto::mpi::b64_decode(&d.text()).unwrap();
            assert!(!raw.windows(4).any(|w| w == b"<bod"), "readable data sent");
        }
    }
}

/// A clear chat message of about `octets` octets from Bob to Alice.
fn big_message(octets: usize) -> Element {
    let mut m = Element::builder("message", "jabber:client")
        .append(Element::builder("body", "jabber:client").append("B".repeat(octets)))
        .build();
    set(&mut m, "to", ALICE);
    set(&mut m, "type", "chat");
    m
}

/// Hostile finding 1: while away, the held queue is bounded in octets as well as in count;
/// what does not fit is dropped and said so (an event and a counter), and the return delivers
/// what was held.
#[test]
fn the_away_queue_is_bounded_in_octets() {
    let (mut r, a, b) = pair();
    let now = r.now();
    let plan = r.engine(a).plan(vec![rsa("rsa.pem")], chrono::Duration::hours(1), None).unwrap();
    let (step, mut sets) =
        r.engine(a).go_offline(now, &plan, &[esession_offline::Audience::Subscribers], true).unwrap();
    r.output(a, step);
    r.drive();
    r.take_events(a);
    // The answers to the PEP IQs are held too.
    let before = r.engine(a).held();
    // 24 stanzas of 900 kB: 21 MB, beyond the default 16 MiB.
    for _ in 0..24 {
        r.inject(b, big_message(900_000));
    }
    r.drive();
    let held = r.engine(a).held() - before;
    let dropped = r.engine(a).held_dropped();
    assert!(held > 0 && held * 900_000 <= Limits::default().queue_octets, "held {held}");
    assert_eq!(held as u64 + dropped, 24);
    let full =
        r.events(a).iter().filter(|e| matches!(e, Event::Failed { failure: Failure::QueueFull, .. })).count();
    assert_eq!(full as u64, dropped, "every drop is reported");
    let now = r.now();
    let step = r.engine(a).come_back(now, Some(sets.remove(0).secrets), None, false).unwrap();
    r.output(a, step);
    r.drive();
    let clear = r.events(a).iter().filter(|e| e.body().is_some_and(|b| b.len() == 900_000)).count();
    assert_eq!(clear, held, "what was held is delivered on return");
    assert_eq!(r.engine(a).held(), 0);
    still_works(&mut r, a, b);
}

/// Hostile finding 2: requests above `request_octets` are dropped before any state is kept;
/// genuine-sized ones from many contacts hold at most `pending_octets` in all (the oldest go).
#[test]
fn pending_negotiations_are_bounded_in_octets() {
    let (mut r, a, b) = pair();
    let pad = |n: usize| Element::builder("value", "jabber:x:data").append("A".repeat(n)).build();
    // Too large to be a request: dropped unread, unanswered, nothing kept.
    let step = r.engine(b).handle(now(), &stamped(request_with(pad(70_000), "big-1"), "x@evil.example/r"));
    assert!(step.send.is_empty(), "not answered");
    assert!(step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::TooLarge, .. })));
    assert_eq!(r.engine(b).load().0, 0);
    // 40 requests of 50 kB from 40 contacts against a budget of 1 MiB: about 17 kept.
    r.engine(b).set_limits(Limits::default().with_request_octets(64 << 10, 1 << 20));
    let req = request_with(pad(50_000), "padded");
    let mut overloaded = 0;
    for i in 0..40 {
        let step = r.engine(b).handle(now(), &stamped(req.clone(), &format!("m{i}@evil.example/r")));
        assert_eq!(step.send.len(), 1, "each is answered");
        overloaded += step
            .events
            .iter()
            .filter(|e| matches!(e, Event::Failed { failure: Failure::Overloaded, .. }))
            .count();
    }
    let kept = r.engine(b).load().0;
    assert!((10..=20).contains(&kept), "{kept} negotiations kept within 1 MiB");
    assert_eq!(kept + overloaded, 40, "every one dropped is reported");
    r.engine(b).set_limits(Limits::default());
    still_works(&mut r, a, b);
}

/// Hostile findings 3 and 4: presence from a crowd of strangers is remembered up to
/// `strangers` (the oldest forgotten), a contact we know is kept through the flood, and the
/// resources of one JID are capped (the oldest forgotten), each presence in bounded time.
#[test]
fn presence_is_remembered_within_bounds() {
    let (mut r, a, b) = pair();
    r.engine(b).set_limits(Limits::default().with_presence(100, 8));
    let presence = |from: &str| {
        let mut p = Element::bare("presence", "jabber:client");
        set(&mut p, "from", from);
        p
    };
    let _ = r.engine(b).handle(now(), &presence(ALICE));
    for i in 0..5_000 {
        let _ = r.engine(b).handle(now(), &presence(&format!("u{i}@evil.example/r")));
    }
    let (contacts, strangers) = r.engine(b).remembered();
    assert_eq!(strangers, 100, "strangers bounded");
    assert_eq!(contacts, 101, "plus Alice, whose key Bob knows");
    assert!(r.engine(b).is_available(&bare(ALICE)), "a known contact survives the flood");
    assert!(!r.engine(b).is_available(&bare("u0@evil.example")), "the oldest stranger is forgotten");
    assert!(r.engine(b).is_available(&bare("u4999@evil.example")));
    // A stranger going away is forgotten at once.
    let mut gone = presence("u4999@evil.example/r");
    set(&mut gone, "type", "unavailable");
    let _ = r.engine(b).handle(now(), &gone);
    assert_eq!(r.engine(b).remembered(), (100, 99));
    // Many resources of one JID: capped, most recent kept, linear time.
    let t = std::time::Instant::now();
    for i in 0..20_000 {
        let _ = r.engine(b).handle(now(), &presence(&format!("alice@example.org/r{i}")));
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "{:?}", t.elapsed());
    let res = r.engine(b).resources(&bare(ALICE));
    assert_eq!(res.len(), 8);
    assert_eq!(res.last().map(ToString::to_string).as_deref(), Some("alice@example.org/r19999"));
    r.engine(b).set_limits(Limits::default());
    still_works(&mut r, a, b);
}

/// An error stanza about a session from Bob: `thread` (None: no `<thread/>`), from `from`.
fn error_to_alice(thread: Option<&str>, from: &str) -> Element {
    let mut err = Element::bare("message", "jabber:client");
    set(&mut err, "type", "error");
    set(&mut err, "to", ALICE);
    set(&mut err, "from", from);
    if let Some(t) = thread {
        err.append_child(Element::builder("thread", "jabber:client").append(t).build());
    }
    let mut e = Element::bare("error", "jabber:client");
    set(&mut e, "type", "cancel");
    e.append_child(Element::bare("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    err.append_child(e);
    err
}

/// Hostile finding 5: an error ends only the negotiation or session whose thread it carries
/// and whose peer (full JID) sent it; without a thread, from another resource or about another
/// thread, it is reported and ends nothing.
#[test]
fn an_error_ends_only_the_session_of_its_thread_and_sender() {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let thread = r.engine(a).session(&bare(BOB)).unwrap().thread().to_owned();
    for (what, err) in [
        ("no thread", error_to_alice(None, BOB)),
        ("another resource", error_to_alice(Some(&thread), "bob@example.com/evil")),
        ("another thread", error_to_alice(Some("other-thread"), BOB)),
        ("the bare JID of a full-JID session", error_to_alice(Some(&thread), "bob@example.com")),
    ] {
        let step = r.engine(a).handle(now(), &err);
        assert!(step.send.is_empty(), "{what}: never answered");
        assert!(
            step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::PeerError { .. }, .. })),
            "{what}: reported"
        );
        assert!(
            !step.events.iter().any(|e| matches!(e, Event::Terminated { .. })),
            "{what}: {:?}",
            step.events
        );
        assert!(r.engine(a).has_session(&bare(BOB)), "{what}: the session goes on");
    }
    r.chat(a, BOB, "still here").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(b)), ["still here"]);
    // The bounce a server sends (from the full JID we wrote, with our thread) ends it.
    let step = r.engine(a).handle(now(), &error_to_alice(Some(&thread), BOB));
    assert!(step.events.iter().any(|e| matches!(e, Event::Terminated { why: Ended::PeerError, .. })));
    assert!(!r.engine(a).has_session(&bare(BOB)));
    // A negotiation likewise: an error without the thread leaves it, with it ends it.
    let req = r.engine(a).start(now(), &jid(BOB), Mode::Four).unwrap().send.remove(0);
    let t = req.get_child("thread", "jabber:client").map(Element::text).unwrap();
    let _ = r.engine(a).handle(now(), &error_to_alice(None, BOB));
    assert!(r.engine(a).negotiating(&bare(BOB)));
    let _ = r.engine(a).handle(now(), &error_to_alice(Some(&t), BOB));
    assert!(!r.engine(a).negotiating(&bare(BOB)));
    still_works(&mut r, a, b);
}

/// Issue 21, floods: a contact whose stanzas keep failing (errors about nothing, stanzas of no
/// session, requests over the rate limit) spends its failure budget
/// (`Limits::failures_per_minute`); then its stanzas are dropped unread, told once, until the
/// budget refills. Other contacts go on; servers and our own account are never cut off.
#[test]
fn a_contact_whose_stanzas_keep_failing_is_cut_off_and_others_go_on() {
    const MALLORY: &str = "mallory@example.net/x";
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    r.take_events(a);
    let budget = Limits::default().failures_per_minute as usize;
    assert_eq!(budget, 30, "the documented default");
    let t0 = now();
    let mut failed = 0;
    let mut flooded = 0;
    for i in 0..(budget + 70) {
        let step = r.engine(a).handle(t0, &error_to_alice(Some("esession-nobody"), MALLORY));
        assert!(step.send.is_empty());
        for e in &step.events {
            match e {
                Event::Failed { failure: Failure::PeerError { .. }, .. } => failed += 1,
                Event::Failed { failure: Failure::Flooded, peer } => {
                    assert_eq!(peer.to_bare(), bare(MALLORY));
                    assert_eq!(i, budget, "told once, at the first stanza dropped");
                    flooded += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!((failed, flooded), (budget, 1), "the budget, then one notice, then silence");
    // Another resource, or the JID written otherwise (normalized to the same contact): cut off.
    for other in ["mallory@example.net/y", "Mallory@EXAMPLE.net/x"] {
        let step = r.engine(a).handle(t0, &error_to_alice(Some("esession-nobody"), other));
        assert!(step.events.is_empty(), "{other}: {:?}", step.events);
    }
    // Bob is not affected.
    r.chat(b, ALICE, "from bob").unwrap();
    r.drive();
    assert_eq!(bodies(&r.take_events(a)), ["from bob"]);
    // The budget refills (one stanza per 60 / budget seconds): handled again.
    let later = t0 + chrono::Duration::seconds(3);
    let step = r.engine(a).handle(later, &error_to_alice(Some("esession-nobody"), MALLORY));
    assert!(
        matches!(step.events.as_slice(), [Event::Failed { failure: Failure::PeerError { .. }, .. }]),
        "{:?}",
        step.events
    );
    // A server (no local part) is never cut off.
    for _ in 0..(budget + 10) {
        let step = r.engine(a).handle(t0, &error_to_alice(Some("esession-nobody"), "example.net"));
        assert!(
            matches!(step.events.as_slice(), [Event::Failed { failure: Failure::PeerError { .. }, .. }]),
            "{:?}",
            step.events
        );
    }
    // Stanzas of no session count as failures too.
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    let sealed = r.engine(b).chat(&bare(ALICE), "x", EncryptOptions::default()).unwrap();
    let mut cut = false;
    for _ in 0..(budget + 5) {
        let step = r.engine(a).handle(t0, &stamped(sealed.clone(), MALLORY));
        cut |= step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Flooded, .. }));
    }
    assert!(cut, "stanzas of no session spend the budget");
}
