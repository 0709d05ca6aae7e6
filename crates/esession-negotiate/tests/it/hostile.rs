//! Hostile peers: values a party must refuse before it answers or keeps anything.

use crate::*;
use esession_crypto::testing::TestRng;
use esession_crypto::{ModpGroup, Profile};

/// Alice's request, as she sends it.
fn request(cfg: &Arc<Config>, mode: Mode, seed: u64) -> Element {
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-h");
    alice.start(mode, &mut RngEntropy(&mut TestRng::new(seed))).unwrap();
    sent(&drain(&mut alice)).remove(0)
}

/// What Bob does with `stanza` as a first message: his result, the stanzas he sends, and
/// whether he is done (kept nothing).
fn bob_on(cfg: &Arc<Config>, stanza: &Element) -> (Result<()>, Vec<Element>, bool) {
    let mut bob = Responder::new(cfg.clone(), j(ALICE), "thread-h");
    let mut b = Side::new(2);
    let r = to_bob(&mut bob, &mut b, stanza);
    let out = sent(&drain(&mut bob));
    (r, out, bob.is_done())
}

fn refused_naming(r: &Result<()>, field: &str) -> bool {
    matches!(r, Err(Error::PeerMisbehaved { condition: Condition::NotAcceptable, fields, .. }) if fields == &[field.to_owned()])
}

/// A one-octet `my_nonce` (AA==) in Alice's request, or one of 8 octets in `Profile::Xep`
/// (16 at least), is refused with `<not-acceptable/>` naming `my_nonce`; Bob keeps nothing.
/// A 16-octet nonce is answered.
#[test]
fn short_request_nonces_are_refused() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let req = request(&cfg, Mode::Four, 1);
    for short in ["AA==", "AAECAwQFBgc="] {
        let (r, out, done) = bob_on(&cfg, &set_values(&req, "my_nonce", &[short]));
        assert!(refused_naming(&r, "my_nonce"), "{short}: {r:?}");
        assert_eq!(out.len(), 1, "one error reply");
        assert_eq!(error_fields(&out[0]), (Some("not-acceptable".into()), vec!["my_nonce".into()]));
        assert!(done, "Bob keeps no state");
    }
    let sixteen = esession_crypto::mpi::b64_encode(&[9; 16]);
    let (r, out, done) = bob_on(&cfg, &set_values(&req, "my_nonce", &[&sixteen]));
    assert!(r.is_ok() && !done, "{r:?}");
    assert!(values(&out[0], "dhkeys").is_some(), "answered with a response");
}

/// A one-octet `my_nonce` (N_B) in Bob's response, or one of 8 octets in `Profile::Xep`, is
/// refused by Alice naming `my_nonce`; the deployed dialect's 8 octets pass in `Profile::Gajim`.
#[test]
fn short_response_nonces_are_refused() {
    for (profile, short, refused) in [
        (Profile::Xep, "AA==", true),
        (Profile::Xep, "AAECAwQFBgc=", true),
        (Profile::Gajim, "AA==", true),
        (Profile::Gajim, "AAECAwQFBgc=", false),
    ] {
        let mut c = small_cfg(Config::new(profile));
        c.provider.modp = vec![ModpGroup::G5];
        let cfg = Arc::new(c);
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-h");
        let mut bob = Responder::new(cfg.clone(), j(ALICE), "thread-h");
        alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(3))).unwrap();
        let req = sent(&drain(&mut alice)).remove(0);
        to_bob(&mut bob, &mut b, &req).unwrap();
        let resp = sent(&drain(&mut bob)).remove(0);
        let r = to_alice(&mut alice, &mut a, &set_values(&resp, "my_nonce", &[short]));
        let out = sent(&drain(&mut alice));
        assert_eq!(refused_naming(&r, "my_nonce"), refused, "{profile:?} {short}: {r:?}");
        if refused {
            assert_eq!(error_fields(&out[0]), (Some("not-acceptable".into()), vec!["my_nonce".into()]));
            assert!(alice.is_done());
        } else {
            assert!(r.is_ok(), "{profile:?}: {r:?}");
        }
    }
}

/// Five empty `dhhashes` values (one per offered group) commit to nothing: Bob refuses with
/// `<not-acceptable/>` naming `dhhashes` and keeps nothing. A 3-message request whose `dhkeys`
/// are empty is refused too (1 < e < p - 1 fails for the chosen group).
#[test]
fn empty_commitments_are_refused() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let req = request(&cfg, Mode::Four, 4);
    let groups = ["1", "2", "5", "14", "15"];
    let five = set_values(&set_options(&req, "modp", &groups), "dhhashes", &[""; 5]);
    assert_eq!(values(&five, "dhhashes").unwrap().len(), 5);
    let (r, out, done) = bob_on(&cfg, &five);
    assert!(refused_naming(&r, "dhhashes"), "{r:?}");
    assert_eq!(error_fields(&out[0]), (Some("not-acceptable".into()), vec!["dhhashes".into()]));
    assert!(done);
    let (ra, rb, _, _) = keys();
    let alice3 = Arc::new(small_cfg(Config::with_identity(ra)));
    let bob3 = Arc::new(small_cfg(Config::with_identity(rb)));
    let req3 = request(&alice3, Mode::Three, 5);
    let (r, out, done) = bob_on(&bob3, &set_values(&req3, "dhkeys", &[""]));
    assert!(
        matches!(&r, Err(Error::PeerMisbehaved { check: Check::ERange, fields, .. }) if fields == &["dhkeys".to_owned()]),
        "{r:?}"
    );
    assert_eq!(error_fields(&out[0]).1, vec!["dhkeys".to_owned()]);
    assert!(done);
}

/// `n` nested `<nest/>` elements (in `jabber:x:data`) as text, built in a loop.
fn nested_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 15);
    for _ in 0..n {
        s.push_str("<nest>");
    }
    for _ in 0..n {
        s.push_str("</nest>");
    }
    s
}

/// The ~19,000 nested elements of issue 16.1 (136 KB of text), parsed without limits (the test
/// plays a peer whose XML reached the party unbounded); drop it with `dispose`.
fn deep_field(n: usize) -> Element {
    let text = format!("<field xmlns='jabber:x:data' var='bogus'>{}</field>", nested_text(n));
    let unbounded = esession_forms::xml::Limits { depth: usize::MAX, elements: usize::MAX, octets: 1 << 20 };
    esession_forms::xml::parse_with(&text, unbounded).unwrap()
}

/// `stanza` with `field` appended to its form (moved in; the rest of the stanza is copied).
fn with_field(stanza: &Element, field: Element) -> Element {
    let mut field = Some(field);
    rewrite(stanza, &mut |c: &Element| {
        (c.name() == "x").then(|| {
            let mut x = c.clone();
            x.append_child(field.take().expect("one form"));
            vec![x]
        })
    })
}

/// Every stanza sent is an error reply that quotes nothing of `marker` and stays small
/// (`bound` octets written); returns the replies.
fn bounded_refusals(outs: &[Output], marker: &str, bound: usize) -> Vec<Element> {
    let replies = sent(outs);
    for s in &replies {
        assert_eq!(s.attr("type"), Some("error"), "{s:?}");
        let text = String::from(s);
        assert!(text.len() <= bound, "{} octets sent", text.len());
        assert!(!text.contains(marker), "the refused input is echoed: {}", &text[..text.len().min(300)]);
    }
    assert!(outs.iter().any(|o| matches!(o, Output::Rejected(_))), "{outs:?}");
    replies
}

const DEEP: usize = 19_000;

/// 16.1: a refused request with 19,000 nested elements inside a field (the 136 KB
/// stanza) reaches `Responder::refuse`: no stack overflow, one `<not-acceptable/>` reply that
/// quotes nothing of it, Bob keeps nothing. The same for a request too large in octets
/// (300 KB of text) and for one within a negotiation's limits but too large to quote.
#[test]
fn a_deep_or_oversized_request_is_refused_without_echo() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let req = request(&cfg, Mode::Four, 6);
    let deep = with_field(&req, deep_field(DEEP));
    let (r, outs, done) = {
        let mut bob = Responder::new(cfg.clone(), j(ALICE), "thread-h");
        let r = to_bob(&mut bob, &mut Side::new(2), &deep);
        (r, drain(&mut bob), bob.is_done())
    };
    esession_forms::xml::dispose(deep);
    assert!(matches!(r, Err(Error::PeerMisbehaved { condition: Condition::NotAcceptable, .. })), "{r:?}");
    assert!(done, "Bob keeps nothing");
    let replies = bounded_refusals(&outs, "nest", 1024);
    assert_eq!(replies.len(), 1);
    assert_eq!(error_fields(&replies[0]).0.as_deref(), Some("not-acceptable"));
    assert!(esession_forms::esession::Wrapper::find(&replies[0]).is_none(), "nothing of it quoted");

    // 300 KB of text: past Limits::NEGOTIATION in octets, refused unread and unquoted.
    let big = Element::builder("field", "jabber:x:data")
        .attr(esession_forms::xml::attr_name("var").unwrap(), "bogus")
        .append(Element::builder("value", "jabber:x:data").append("BIGTEXT".repeat(300 << 10 >> 3)))
        .build();
    let (r, out, done) = bob_on(&cfg, &with_field(&req, big));
    assert!(r.is_err() && done, "{r:?}");
    assert_eq!(out.len(), 1);
    assert!(String::from(&out[0]).len() <= 1024 && !String::from(&out[0]).contains("BIGTEXT"));

    // 20 KB of padding and a short nonce: within a negotiation's limits, so read and refused
    // naming my_nonce, but larger than Limits::QUOTE, so the reply leaves the request out.
    let padded = Element::builder("field", "jabber:x:data")
        .attr(esession_forms::xml::attr_name("var").unwrap(), "padding")
        .append(Element::builder("value", "jabber:x:data").append("PADDING".repeat(20 << 10 >> 3)))
        .build();
    let short = set_values(&with_field(&req, padded), "my_nonce", &["AA=="]);
    let (r, out, done) = bob_on(&cfg, &short);
    assert!(refused_naming(&r, "my_nonce") && done, "{r:?}");
    assert_eq!(error_fields(&out[0]), (Some("not-acceptable".into()), vec!["my_nonce".into()]));
    let text = String::from(&out[0]);
    assert!(text.len() <= 1024 && !text.contains("PADDING"), "{} octets", text.len());
    // A small refused request is quoted, within Limits::QUOTE.
    let (_, out, _) = bob_on(&cfg, &set_values(&req, "my_nonce", &["AA=="]));
    assert!(esession_forms::esession::Wrapper::find(&out[0]).is_some(), "a small request is quoted");
    let quoted = String::from(&out[0]).len();
    assert!(quoted <= esession_forms::xml::Limits::QUOTE.octets * 2, "{quoted} octets");
}

/// Alice (4-message) at the response, with `edit` applied to Bob's response: her result, her
/// outputs, and whether she is done.
fn alice_on_response(edit: impl FnOnce(&Element) -> Element) -> (Result<()>, Vec<Output>, bool) {
    let cfg = Arc::new(small_cfg(Config::default()));
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-h");
    let mut bob = Responder::new(cfg, j(ALICE), "thread-h");
    alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(7))).unwrap();
    to_bob(&mut bob, &mut b, &sent(&drain(&mut alice)).remove(0)).unwrap();
    let resp = edit(&sent(&drain(&mut bob)).remove(0));
    let r = to_alice(&mut alice, &mut a, &resp);
    esession_forms::xml::dispose(resp);
    (r, drain(&mut alice), alice.is_done())
}

/// Bob (4-message) at message 3, Alice's accept, with `edit` applied to it: his result, his
/// outputs, and whether he is done.
fn bob_on_accept(edit: impl FnOnce(&Element) -> Element) -> (Result<()>, Vec<Output>, bool) {
    let cfg = Arc::new(small_cfg(Config::default()));
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-h");
    let mut bob = Responder::new(cfg, j(ALICE), "thread-h");
    alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(8))).unwrap();
    to_bob(&mut bob, &mut b, &sent(&drain(&mut alice)).remove(0)).unwrap();
    to_alice(&mut alice, &mut a, &sent(&drain(&mut bob)).remove(0)).unwrap();
    let accept = sent(&drain(&mut alice)).remove(0);
    assert!(values(&accept, "dhkeys").is_some(), "message 3 reveals Alice's dhkeys");
    let accept = edit(&accept);
    let r = to_bob(&mut bob, &mut b, &accept);
    esession_forms::xml::dispose(accept);
    (r, drain(&mut bob), bob.is_done())
}

/// 16.1: a response with 19,000 nested elements in a field reaches `Initiator::refuse`: no
/// crash, a bounded unquoting refusal, Alice done.
#[test]
fn a_deep_response_is_refused_at_alice_without_echo() {
    let (r, outs, done) = alice_on_response(|s| with_field(s, deep_field(DEEP)));
    assert!(matches!(r, Err(Error::PeerMisbehaved { .. })), "{r:?}");
    assert!(done);
    assert_eq!(bounded_refusals(&outs, "nest", 1024).len(), 1);
    assert!(!outs.iter().any(|o| matches!(o, Output::Established(_))));
}

/// 16.1: a 4-message accept (message 3) with 19,000 nested elements in a field, at Bob: no
/// crash, a bounded unquoting refusal, no session.
#[test]
fn a_deep_accept_is_refused_at_bob_without_echo() {
    let (r, outs, done) = bob_on_accept(|s| with_field(s, deep_field(DEEP)));
    assert!(matches!(r, Err(Error::PeerMisbehaved { .. })), "{r:?}");
    assert!(done);
    assert_eq!(bounded_refusals(&outs, "nest", 1024).len(), 1);
    assert!(!outs.iter().any(|o| matches!(o, Output::Established(_))));
}

/// An error stanza about `thread` (as a peer or a server sends it), quoting `quoted`.
fn error_stanza(quoted: Option<&Element>, thread: &str) -> Element {
    let wrapper = quoted.and_then(esession_forms::esession::Wrapper::find);
    let e = esession_negotiate::wire::error_reply(&j(ALICE), thread, wrapper, Condition::NotAcceptable, &[]);
    from(&e, BOB)
}

/// No stanza among `outs`, and the negotiation ended as `Rejected`.
fn unanswered(r: &Result<()>, outs: &[Output], done: bool, what: &str) {
    assert!(matches!(r, Err(Error::Rejected { .. })), "{what}: {r:?}");
    assert!(sent(outs).is_empty(), "{what}: an error answered: {:?}", sent(outs));
    assert!(outs.iter().any(|o| matches!(o, Output::Rejected(_))), "{what}: {outs:?}");
    assert!(done, "{what}: the negotiation ends");
}

/// 16.4 (RFC 6120 §8.3.1): an error stanza is never answered with an error, wherever it
/// reaches a party: Bob idle (an error quoting a request, where a request is expected), Bob
/// waiting for message 3, Alice waiting for the response. Each ends the negotiation.
#[test]
fn an_error_stanza_is_never_answered() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let req = request(&cfg, Mode::Four, 9);
    // Bob idle: the error quotes a whole request.
    let err = error_stanza(Some(&req), "thread-h");
    assert!(esession_forms::esession::Wrapper::find(&err).is_some(), "the error quotes the request");
    let (r, out, done) = {
        let mut bob = Responder::new(cfg.clone(), j(ALICE), "thread-h");
        let r = to_bob(&mut bob, &mut Side::new(2), &err);
        (r, drain(&mut bob), bob.is_done())
    };
    unanswered(&r, &out, done, "Bob idle");
    // Bob waiting for message 3.
    let (r, out, done) = bob_on_accept(|s| error_stanza(Some(s), "thread-h"));
    unanswered(&r, &out, done, "Bob at message 3");
    // Alice waiting for the response, with and without a quote.
    let (r, out, done) = alice_on_response(|s| error_stanza(Some(s), "thread-h"));
    unanswered(&r, &out, done, "Alice at the response");
    let (r, out, done) = alice_on_response(|_| error_stanza(None, "thread-h"));
    unanswered(&r, &out, done, "Alice at the response, no quote");
}
