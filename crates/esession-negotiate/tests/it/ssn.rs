//! XEP-0155 stanza session negotiation around the ESession forms: the request's shape, the
//! other fields, required fields, the completion and cancel, the resource that replied, threads.

use crate::*;
use esession_crypto::ModpGroup;
use esession_crypto::testing::TestRng;
use esession_forms::names::Security;

const XHTML: &str = "http://jabber.org/protocol/xhtml-im";
const XHTML_OFFER: &str = "<field xmlns='jabber:x:data' type='list-single' var='http://jabber.org/protocol/xhtml-im'>\
    <value>may</value><option><value>may</value></option><option><value>mustnot</value></option><required/></field>";
const UNKNOWN_REQUIRED: &str =
    "<field xmlns='jabber:x:data' type='boolean' var='urn:example:x'><value>1</value><required/></field>";

/// X155-4.2-04 X155-4.2-03: Alice's request carries a required `xhtml-im` field (default may,
/// options may and mustnot). Bob answers it with a value he supports (`mustnot`), inside form_B
/// (before `identity` and `mac`, so his MAC covers it), and the session is established. The
/// answer changed in transit breaks Bob's MAC.
#[test]
fn other_fields_are_answered_inside_form_b() {
    for tamper in [false, true] {
        let (ca, cb, mut a, mut b) = keyed_pair();
        let alice = Initiator::new(Arc::new(ca), j(BOB), "thread-1")
            .with_shaper(adding(FormKind::Request, XHTML_OFFER));
        let bob = Responder::new(Arc::new(cb), j(ALICE), "thread-1");
        let mut response = None;
        run_parties(
            Mode::Three,
            alice,
            bob,
            &mut a,
            &mut b,
            Box::new(|i, _, s: Element| {
                if i != 1 {
                    return Some(s);
                }
                response = Some(s.clone());
                Some(if tamper { set_values(&s, XHTML, &["may"]) } else { s })
            }),
        );
        let response = response.unwrap();
        assert_eq!(
            values(&response, XHTML),
            Some(vec!["mustnot".to_owned()]),
            "answered with what Bob supports"
        );
        let order = vars(&response);
        let at = |v: &str| order.iter().position(|x| x == v).unwrap();
        assert!(at(XHTML) < at("identity") && at(XHTML) < at("mac"), "{order:?}");
        if tamper {
            assert!(a.established.is_none(), "the answer is covered by Bob's MAC");
            assert!(
                matches!(
                    a.rejected,
                    Some(Error::PeerMisbehaved { check: Check::MacB | Check::Signature, .. })
                ),
                "{:?}",
                a.rejected
            );
        } else {
            assert!(a.established.is_some() && b.established.is_some(), "{:?} {:?}", a.rejected, b.rejected);
        }
    }
}

/// X155-4.3-09 X155-4.2-04: a required field Bob does not implement (`urn:example:x`) is never
/// dropped silently: Bob refuses with `<feature-not-implemented/>` naming it; no session.
#[test]
fn a_required_unknown_field_is_refused_by_name() {
    let (ca, cb, mut a, mut b) = keyed_pair();
    let alice = Initiator::new(Arc::new(ca), j(BOB), "thread-1")
        .with_shaper(adding(FormKind::Request, UNKNOWN_REQUIRED));
    let bob = Responder::new(Arc::new(cb), j(ALICE), "thread-1");
    let seen = run_recorded(Mode::Three, alice, bob, &mut a, &mut b);
    let from_bob: Vec<&Element> = seen.iter().filter(|(fa, _)| !fa).map(|(_, s)| s).collect();
    assert_eq!(from_bob.len(), 1);
    assert_eq!(
        error_fields(from_bob[0]),
        (Some("feature-not-implemented".into()), vec!["urn:example:x".into()])
    );
    assert!(a.established.is_none() && b.established.is_none());
    assert!(matches!(a.rejected, Some(Error::Rejected { .. })));
}

/// X155-4.2-03: a field the request marks required gets a value in Bob's response, or Bob
/// refuses: here `sign_algs`, which a negotiation with `none` identities does not answer (Bob
/// refuses with `<feature-not-implemented/>` naming it); and a response a shaper stripped of
/// the required `xhtml-im` answer is never sent (`Error::Config`).
#[test]
fn a_response_without_a_required_answer_is_not_sent() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let sign = "<field xmlns='jabber:x:data' type='list-single' var='sign_algs'>\
        <option><value>http://www.w3.org/2000/09/xmldsig#rsa-sha256</value></option><required/></field>";
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let alice = Initiator::new(cfg.clone(), j(BOB), "thread-1").with_shaper(adding(FormKind::Request, sign));
    let bob = Responder::new(cfg.clone(), j(ALICE), "thread-1");
    let seen = run_recorded(Mode::Four, alice, bob, &mut a, &mut b);
    assert_eq!(seen.len(), 2, "the request and Bob's refusal");
    assert_eq!(error_fields(&seen[1].1), (Some("feature-not-implemented".into()), vec!["sign_algs".into()]));
    assert!(
        matches!(&b.rejected, Some(Error::PeerMisbehaved { condition: Condition::FeatureNotImplemented, fields, .. }) if fields == &["sign_algs".to_owned()]),
        "{:?}",
        b.rejected
    );
    // A shaper removing the answer: Bob does not send what he cannot stand by.
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let alice =
        Initiator::new(cfg.clone(), j(BOB), "thread-1").with_shaper(adding(FormKind::Request, XHTML_OFFER));
    let strip = Shape(FormKind::Response, |x: Element| replace_field(&x, XHTML, None));
    let bob = Responder::new(cfg, j(ALICE), "thread-1").with_shaper(Box::new(strip));
    let seen = run_recorded(Mode::Four, alice, bob, &mut a, &mut b);
    assert_eq!(seen.len(), 1, "Bob sent nothing");
    assert!(matches!(b.rejected, Some(Error::Config(_))), "{:?}", b.rejected);
}

/// X155-4.4-01 X155-4.4-03: when Bob accepts a plain stanza session instead of an ESession
/// (XEP-0116 §4.4), Alice completes it with a `result` form carrying FORM_TYPE and `accept`
/// true on the thread; Bob opens the session only then. X155-4.2-04: Bob's answer gives the
/// plain session's fields what Alice offered and he supports, her other fields included.
#[test]
fn a_plain_stanza_session_is_completed_by_alice() {
    let mut ca = small_cfg(Config::default());
    ca.security = vec![Security::E2e, Security::C2s];
    ca.logging = vec![esession_forms::names::Logging::MustNot, esession_forms::names::Logging::May];
    let mut cb = small_cfg(Config::default());
    cb.support.security = vec![];
    let (ca, cb) = (Arc::new(ca), Arc::new(cb));
    let mut alice =
        Initiator::new(ca, j(BOB), "thread-s").with_shaper(adding(FormKind::Request, XHTML_OFFER));
    let mut bob = Responder::new(cb, j(ALICE), "thread-s");
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
    let req = sent(&drain(&mut alice)).remove(0);
    to_bob(&mut bob, &mut b, &req).unwrap();
    let outs = drain(&mut bob);
    assert!(!outs.iter().any(|o| matches!(o, Output::StanzaSession { .. })), "not before Alice completes");
    assert!(!bob.is_done());
    let answer = sent(&outs).remove(0);
    assert_eq!(values(&answer, "accept"), Some(vec!["1".into()]));
    assert_eq!(values(&answer, "security"), Some(vec!["c2s".into()]));
    // Alice's first choice is `mustnot`, which a plain session never promises (X155-N15-01).
    assert_eq!(values(&answer, "logging"), Some(vec!["may".into()]));
    assert_eq!(values(&answer, "disclosure"), Some(vec!["never".into()]));
    assert_eq!(values(&answer, XHTML), Some(vec!["mustnot".into()]));
    to_alice(&mut alice, &mut a, &answer).unwrap();
    let outs = drain(&mut alice);
    assert!(outs.iter().any(|o| matches!(o, Output::StanzaSession { security: Security::C2s })));
    let completion = sent(&outs).remove(0);
    assert_eq!(wire::thread(&completion).as_deref(), Some("thread-s"));
    assert_eq!(form_x(&completion).attr("type"), Some("result"));
    assert_eq!(values(&completion, "FORM_TYPE"), Some(vec!["urn:xmpp:ssn".into()]));
    assert_eq!(values(&completion, "accept"), Some(vec!["1".into()]));
    assert_eq!(vars(&completion), vec!["FORM_TYPE", "accept"]);
    to_bob(&mut bob, &mut b, &completion).unwrap();
    let outs = drain(&mut bob);
    assert!(outs.iter().any(|o| matches!(o, Output::StanzaSession { security: Security::C2s })));
    assert!(sent(&outs).is_empty() && bob.is_done());
}

/// X155-4.4-02 X155-4.4-05: a plain-session answer with a value Alice did not offer is
/// cancelled: a `result` with `accept` false, and no session on either side (Bob does not
/// answer the cancel). Also refused: `logging` not offered, `disclosure` disabled.
#[test]
fn a_plain_session_answer_alice_did_not_offer_is_cancelled() {
    for (var, value) in [("security", "c2s"), ("logging", "mustnot"), ("disclosure", "disabled")] {
        let mut ca = small_cfg(Config::default());
        ca.security = vec![Security::E2e, Security::None];
        ca.logging = vec![esession_forms::names::Logging::May];
        let mut cb = small_cfg(Config::default());
        cb.support.security = vec![];
        // Alice offers `disabled` too (another implementation's offer): never negotiated.
        let offer =
            Shape(FormKind::Request, |x: Element| set_options(&x, "disclosure", &["never", "disabled"]));
        let mut alice = Initiator::new(Arc::new(ca), j(BOB), "thread-s").with_shaper(Box::new(offer));
        let mut bob = Responder::new(Arc::new(cb), j(ALICE), "thread-s");
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
        to_bob(&mut bob, &mut b, &sent(&drain(&mut alice)).remove(0)).unwrap();
        let answer = sent(&drain(&mut bob)).remove(0);
        assert_eq!(values(&answer, "security"), Some(vec!["none".into()]));
        let r = to_alice(&mut alice, &mut a, &set_values(&answer, var, &[value]));
        assert!(
            matches!(&r, Err(Error::PeerMisbehaved { check: Check::Options, fields, .. }) if fields == &[var.to_owned()]),
            "{var}: {r:?}"
        );
        let outs = drain(&mut alice);
        assert!(!outs.iter().any(|o| matches!(o, Output::StanzaSession { .. })), "{var}");
        let cancel = sent(&outs).remove(0);
        assert_eq!(form_x(&cancel).attr("type"), Some("result"));
        assert_eq!(values(&cancel, "accept"), Some(vec!["0".into()]), "{var}");
        assert_eq!(values(&cancel, "FORM_TYPE"), Some(vec!["urn:xmpp:ssn".into()]));
        let r = to_bob(&mut bob, &mut b, &cancel);
        assert!(matches!(r, Err(Error::Rejected { .. })), "{r:?}");
        let outs = drain(&mut bob);
        assert!(sent(&outs).is_empty(), "a cancel is not answered");
        assert!(!outs.iter().any(|o| matches!(o, Output::StanzaSession { .. })));
    }
}

/// X155-4.2-04: the plain-session fall-back answers `logging` with what Alice offered and Bob
/// supports: when nothing fits, Bob refuses naming the fields rather than answering a value she
/// did not offer.
#[test]
fn the_plain_session_fall_back_answers_only_offered_values() {
    let mut ca = small_cfg(Config::default());
    ca.security = vec![Security::E2e, Security::C2s];
    ca.logging = vec![esession_forms::names::Logging::MustNot];
    let mut cb = small_cfg(Config::default());
    cb.support.security = vec![];
    cb.support.logging = vec![esession_forms::names::Logging::May];
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let seen = run_recorded(
        Mode::Four,
        Initiator::new(Arc::new(ca), j(BOB), "thread-s"),
        Responder::new(Arc::new(cb), j(ALICE), "thread-s"),
        &mut a,
        &mut b,
    );
    assert_eq!(seen.len(), 2);
    assert_eq!(
        error_fields(&seen[1].1),
        (Some("not-acceptable".into()), vec!["logging".into(), "security".into()])
    );
    assert!(!a.ssn && !b.ssn);
}

/// X155-4.4-03: Alice's third stanza completes the negotiation with FORM_TYPE urn:xmpp:ssn and
/// `accept` true. Bob reads `accept`: false is a cancel (X155-4.4-05): he establishes nothing
/// and does not answer. A shaper cannot make Alice send a cancel while she opens the session.
#[test]
fn accept_false_is_a_cancel() {
    for mode in [Mode::Three, Mode::Four] {
        let (ca, cb, mut a, mut b) = keyed_pair();
        let (ca, cb) = (Arc::new(ca), Arc::new(cb));
        let seen = run_recorded(
            mode,
            Initiator::new(ca.clone(), j(BOB), "t"),
            Responder::new(cb.clone(), j(ALICE), "t"),
            &mut a,
            &mut b,
        );
        let third = &seen[2].1;
        assert!(seen[2].0);
        assert_eq!(values(third, "FORM_TYPE"), Some(vec!["urn:xmpp:ssn".into()]));
        assert_eq!(values(third, "accept"), Some(vec!["1".into()]));
        // In transit, accept set to 0.
        let (ca2, cb2, mut a, mut b) = keyed_pair();
        let _ = (ca, cb);
        let mut bob_sent = 0;
        negotiate_with(
            mode,
            Arc::new(ca2),
            Arc::new(cb2),
            &mut a,
            &mut b,
            Box::new(|i, from_alice, s: Element| {
                if !from_alice && i > 1 {
                    bob_sent += 1;
                }
                Some(if i == 2 { set_values(&s, "accept", &["0"]) } else { s })
            }),
            None,
            None,
        );
        assert!(b.established.is_none(), "{mode:?}");
        assert!(matches!(b.rejected, Some(Error::Rejected { .. })), "{mode:?}: {:?}", b.rejected);
        assert_eq!(bob_sent, 0, "{mode:?}: a cancel is not answered");
    }
    // Alice's own accept shaped into a cancel: she refuses to send it.
    for mode in [Mode::Three, Mode::Four] {
        let (ca, cb, mut a, mut b) = keyed_pair();
        let cancel = Shape(FormKind::Accept, |x: Element| set_values(&x, "accept", &["0"]));
        let alice = Initiator::new(Arc::new(ca), j(BOB), "t").with_shaper(Box::new(cancel));
        let seen = run_recorded(mode, alice, Responder::new(Arc::new(cb), j(ALICE), "t"), &mut a, &mut b);
        assert_eq!(seen.len(), 2, "{mode:?}: no third stanza");
        assert!(matches!(a.rejected, Some(Error::Config(_))) && a.established.is_none(), "{mode:?}");
    }
}

/// X155-4.2-05: whichever resource the request went to (the bare JID or another resource),
/// both assume the session is with the resource that replied: Alice's accept goes to it and her
/// session's peer is it. A reply stamped with another contact's JID changes nothing.
#[test]
fn the_session_is_with_the_resource_that_replied() {
    for (mode, addressed, replied, expected) in [
        (Mode::Four, "bob@example.com", "bob@example.com/desktop", "bob@example.com/desktop"),
        (Mode::Four, "bob@example.com/laptop", "bob@example.com/desktop", "bob@example.com/desktop"),
        (Mode::Three, "bob@example.com", "bob@example.com/desktop", "bob@example.com/desktop"),
        (Mode::Three, "bob@example.com/laptop", "mallory@example.net/desktop", "bob@example.com/laptop"),
    ] {
        let (ca, cb, mut a, mut b) = keyed_pair();
        let mut alice = Initiator::new(Arc::new(ca), j(addressed), "thread-r");
        let mut bob = Responder::new(Arc::new(cb), j(ALICE), "thread-r");
        alice.start(mode, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
        let req = sent(&drain(&mut alice)).remove(0);
        assert_eq!(req.attr("to"), Some(addressed));
        to_bob(&mut bob, &mut b, &req).unwrap();
        let resp = sent(&drain(&mut bob)).remove(0);
        to_alice(&mut alice, &mut a, &from(&resp, replied)).unwrap();
        let outs = drain(&mut alice);
        let accept = sent(&outs).remove(0);
        assert_eq!(accept.attr("to"), Some(expected), "{mode:?} {addressed} {replied}");
        assert_eq!(alice.peer().as_str(), expected);
        let mut established =
            outs.into_iter().find_map(|o| if let Output::Established(e) = o { Some(e) } else { None });
        if mode == Mode::Four {
            to_bob(&mut bob, &mut b, &accept).unwrap();
            let ident = sent(&drain(&mut bob)).remove(0);
            to_alice(&mut alice, &mut a, &from(&ident, replied)).unwrap();
            established = drain(&mut alice)
                .into_iter()
                .find_map(|o| if let Output::Established(e) = o { Some(e) } else { None });
        }
        assert_eq!(
            established.expect("established").peer().as_str(),
            expected,
            "{mode:?} {addressed} {replied}"
        );
    }
}

/// X155-4.1-01 X155-4.1-02 X155-4.1-04 X155-4.1-06: the request Alice sends has no `<body/>`,
/// no `type` (normal), a hidden FORM_TYPE urn:xmpp:ssn, a required boolean `accept` 1, and the
/// groups in her order of preference.
#[test]
fn the_request_has_the_shape_of_section_4_1() {
    let mut c = small_cfg(Config::default());
    c.provider.modp = vec![ModpGroup::G14, ModpGroup::G5];
    let mut alice = Initiator::new(Arc::new(c), j(BOB), "thread-q");
    alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
    let req = sent(&drain(&mut alice)).remove(0);
    assert!(req.children().all(|c| c.name() != "body"), "no body");
    assert!(matches!(req.attr("type"), None | Some("normal")));
    assert_eq!(wire::thread(&req).as_deref(), Some("thread-q"));
    let ft = field(&req, "FORM_TYPE").unwrap();
    assert_eq!(ft.attr("type"), Some("hidden"));
    assert_eq!(values(&req, "FORM_TYPE"), Some(vec!["urn:xmpp:ssn".into()]));
    let accept = field(&req, "accept").unwrap();
    assert_eq!(accept.attr("type"), Some("boolean"));
    assert_eq!(values(&req, "accept"), Some(vec!["1".into()]));
    assert!(accept.children().any(|c| c.name() == "required"));
    assert_eq!(options(&req, "modp"), Some(vec!["14".into(), "5".into()]));
}

/// X155-4.1-04 X155-13-02: `accept` is required: a request without it does not parse
/// (`MissingField("accept")`) and Bob refuses it naming `accept`; a response without it is
/// refused by Alice naming `accept`.
#[test]
fn accept_is_required_both_ways() {
    use esession_forms::{dataform::DataForm, esession::Request};
    let cfg = Arc::new(small_cfg(Config::default()));
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "t");
    alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
    let req = sent(&drain(&mut alice)).remove(0);
    let without = replace_field(&req, "accept", None);
    assert_eq!(
        Request::parse(&DataForm::parse(form_x(&without)).unwrap()),
        Err(esession_forms::Error::MissingField("accept"))
    );
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let mut bob = Responder::new(cfg.clone(), j(ALICE), "t");
    assert!(to_bob(&mut bob, &mut b, &without).is_err());
    assert_eq!(
        error_fields(&sent(&drain(&mut bob))[0]),
        (Some("not-acceptable".into()), vec!["accept".into()])
    );
    let mut bob = Responder::new(cfg, j(ALICE), "t");
    to_bob(&mut bob, &mut b, &req).unwrap();
    let resp = sent(&drain(&mut bob)).remove(0);
    let r = to_alice(&mut alice, &mut a, &replace_field(&resp, "accept", None));
    assert!(
        matches!(&r, Err(Error::PeerMisbehaved { check: Check::Options, fields, .. }) if fields == &["accept".to_owned()]),
        "{r:?}"
    );
    assert_eq!(error_fields(&sent(&drain(&mut alice))[0]).1, vec!["accept".to_owned()]);
}

/// X155-4.2-02: every stanza Bob sends mirrors the request's thread: the response, his
/// identity, an error reply and a plain-session answer.
#[test]
fn bob_mirrors_the_thread_in_every_stanza() {
    let check = |seen: &[(bool, Element)], what: &str| {
        let from_bob: Vec<&Element> = seen.iter().filter(|(a, _)| !a).map(|(_, s)| s).collect();
        assert!(!from_bob.is_empty(), "{what}");
        for s in from_bob {
            assert_eq!(wire::thread(s).as_deref(), Some("thread-m"), "{what}: {}", String::from(s));
        }
    };
    let run = |ca: Config, cb: Config| {
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        run_recorded(
            Mode::Four,
            Initiator::new(Arc::new(ca), j(BOB), "thread-m"),
            Responder::new(Arc::new(cb), j(ALICE), "thread-m"),
            &mut a,
            &mut b,
        )
    };
    // Response and identity.
    let seen = run(small_cfg(Config::default()), small_cfg(Config::default()));
    assert_eq!(seen.len(), 4);
    check(&seen, "response and identity");
    // An error reply.
    let mut cb = small_cfg(Config::default());
    cb.support.crypto.modp = vec![ModpGroup::G5];
    cb.accept_ssn = false;
    check(&run(small_cfg(Config::default()), cb), "error reply");
    // A plain-session answer.
    let mut ca = small_cfg(Config::default());
    ca.security = vec![Security::E2e, Security::C2s];
    let mut cb = small_cfg(Config::default());
    cb.support.security = vec![];
    check(&run(ca, cb), "plain-session answer");
}

/// X155-4.3-08: a negotiation form of another FORM_TYPE is answered `<service-unavailable/>`.
#[test]
fn another_form_type_is_service_unavailable() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "t");
    alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
    let req = sent(&drain(&mut alice)).remove(0);
    let mut bob = Responder::new(cfg, j(ALICE), "t");
    let r = to_bob(&mut bob, &mut Side::new(2), &set_values(&req, "FORM_TYPE", &["urn:example:other"]));
    assert!(
        matches!(r, Err(Error::PeerMisbehaved { condition: Condition::ServiceUnavailable, .. })),
        "{r:?}"
    );
    assert_eq!(error_fields(&sent(&drain(&mut bob))[0]).0.as_deref(), Some("service-unavailable"));
}

/// X155-N15-01: a plain stanza session (not encrypted: the servers could archive it readable)
/// never answers `logging` with `mustnot`, which would promise what the server's archiving may
/// break: offered only `mustnot`, Bob refuses; offered `mustnot` then `may`, he answers `may`.
#[test]
fn a_plain_session_never_promises_mustnot() {
    use esession_forms::names::Logging;
    for (offer, answered) in
        [(vec![Logging::MustNot], None), (vec![Logging::MustNot, Logging::May], Some("may"))]
    {
        let mut ca = small_cfg(Config::default());
        ca.security = vec![Security::E2e, Security::C2s];
        ca.logging = offer;
        let mut cb = small_cfg(Config::default());
        cb.support.security = vec![];
        cb.support.logging = vec![Logging::MustNot, Logging::May];
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        let seen = run_recorded(
            Mode::Four,
            Initiator::new(Arc::new(ca), j(BOB), "thread-n"),
            Responder::new(Arc::new(cb), j(ALICE), "thread-n"),
            &mut a,
            &mut b,
        );
        match answered {
            None => {
                assert_eq!(error_fields(&seen[1].1).0.as_deref(), Some("not-acceptable"));
                assert!(!b.ssn);
            }
            Some(v) => assert_eq!(values(&seen[1].1, "logging"), Some(vec![v.to_owned()])),
        }
    }
}
