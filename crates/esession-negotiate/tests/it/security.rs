//! The tamper matrix, a man in the middle, a downgrade, the rejections of §4.4 and trust.

use crate::*;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup, mpi};
use esession_forms::names::{PubkeyMethod, Security};
use minidom::Node;

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

/// The fields of the (single) form in a stanza: (var, values).
fn fields(stanza: &Element) -> Vec<(String, Vec<String>)> {
    let w = esession_forms::esession::Wrapper::find(stanza).unwrap();
    let (_, x) = esession_forms::esession::Wrapper::unwrap(w).unwrap();
    x.children()
        .filter(|f| f.name() == "field")
        .map(|f| {
            (
                f.attr("var").unwrap_or("").to_owned(),
                f.children().filter(|v| v.name() == "value").map(Element::text).collect(),
            )
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Flip a bit of value `v` of field `f`.
    Flip {
        f: usize,
        v: usize,
        bit: usize,
    },
    Remove {
        f: usize,
    },
    Duplicate {
        f: usize,
    },
}

fn rebuild(e: &Element, path: &mut dyn FnMut(&Element) -> Option<Vec<Element>>) -> Element {
    let mut out = Element::bare(e.name(), e.ns());
    for ((ns, n), v) in e.attrs().iter() {
        out.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
    }
    for node in e.nodes() {
        match node {
            Node::Element(c) => match path(c) {
                Some(repl) => {
                    for r in repl {
                        out.append_child(r);
                    }
                }
                None => {
                    out.append_child(rebuild(c, path));
                }
            },
            Node::Text(t) => out.append_text_node(t.clone()),
        }
    }
    out
}

/// Applies `op` to the form of `stanza`; None if the change cannot be written as XML text.
fn apply(stanza: &Element, op: Op) -> Option<Element> {
    let mut field_idx = 0usize;
    let mut ok = true;
    let out = rebuild(stanza, &mut |c: &Element| {
        if c.name() != "field" {
            return None;
        }
        let i = field_idx;
        field_idx += 1;
        match op {
            Op::Remove { f } if f == i => Some(vec![]),
            Op::Duplicate { f } if f == i => Some(vec![c.clone(), c.clone()]),
            Op::Flip { f, v, bit } if f == i => {
                let mut field = Element::bare("field", c.ns());
                for ((ns, n), val) in c.attrs().iter() {
                    field.attrs_mut().insert(ns.clone(), n.clone(), val.clone());
                }
                let mut vi = 0;
                for child in c.children() {
                    if child.name() == "value" {
                        if vi == v {
                            let text = child.text();
                            let changed = match mpi::b64_decode(&text) {
                                Ok(mut raw) if !raw.is_empty() => {
                                    let b = bit % (raw.len() * 8);
                                    raw[b / 8] ^= 1 << (b % 8);
                                    Some(mpi::b64_encode(&raw))
                                }
                                _ => {
                                    let mut raw = text.into_bytes();
                                    if raw.is_empty() {
                                        None
                                    } else {
                                        let b = bit % (raw.len() * 8);
                                        raw[b / 8] ^= 1 << (b % 8);
                                        String::from_utf8(raw)
                                            .ok()
                                            .filter(|s| !s.chars().any(|ch| ch.is_control()))
                                    }
                                }
                            };
                            match changed {
                                Some(t) => field
                                    .append_child(Element::builder("value", child.ns()).append(t).build()),
                                None => {
                                    ok = false;
                                    field.append_child(child.clone())
                                }
                            };
                        } else {
                            field.append_child(child.clone());
                        }
                        vi += 1;
                    } else {
                        field.append_child(child.clone());
                    }
                }
                Some(vec![field])
            }
            _ => None,
        }
    });
    ok.then_some(out)
}

fn cfgs(mode: Mode) -> (Arc<Config>, Arc<Config>, Side, Side) {
    let (ra, rb, _, _) = keys();
    let (pa, pb) = (ra.public_key(), rb.public_key());
    let (ca, cb) = match mode {
        Mode::Four => (small(Config::default()), small(Config::default())),
        Mode::Three => (small(Config::with_identity(ra)), small(Config::with_identity(rb))),
    };
    let mut a = Side::new(1);
    let mut b = Side::new(2);
    a.trust.trust(&bare(BOB), pb);
    b.trust.trust(&bare(ALICE), pa);
    (Arc::new(ca), Arc::new(cb), a, b)
}

/// Records the stanzas of an untouched run.
fn transcript(mode: Mode) -> Vec<Element> {
    let (ca, cb, mut a, mut b) = cfgs(mode);
    let mut seen = Vec::new();
    negotiate(
        mode,
        ca,
        cb,
        &mut a,
        &mut b,
        Box::new(|_, _, s: Element| {
            seen.push(s.clone());
            Some(s)
        }),
    );
    assert!(a.established.is_some() && b.established.is_some());
    seen
}

#[test]
fn tamper_matrix_every_field_of_every_message() {
    // `ESESSION_QUICK=1` (set by `cargo xtask mutants`, where the suite runs once per mutant):
    // every 8th tampering only, a lower bound of what the full matrix catches.
    let stride = if std::env::var_os("ESESSION_QUICK").is_some() { 8 } else { 1 };
    let mut cases = 0usize;
    for mode in [Mode::Three, Mode::Four] {
        let base = transcript(mode);
        assert_eq!(base.len(), if mode == Mode::Four { 4 } else { 3 });
        for (msg, stanza) in base.iter().enumerate() {
            let fs = fields(stanza);
            let mut ops = Vec::new();
            for (fi, (_, values)) in fs.iter().enumerate() {
                ops.push(Op::Remove { f: fi });
                ops.push(Op::Duplicate { f: fi });
                for (vi, v) in values.iter().enumerate() {
                    let bits = mpi::b64_decode(v).map_or(v.len() * 8, |r| r.len() * 8).max(1);
                    // Every bit of short values; a spread of bits (first, last, a stride) of long ones.
                    let step = if bits <= 256 { 1 } else { 61 };
                    let mut chosen: Vec<usize> = (0..bits).step_by(step).collect();
                    chosen.push(bits - 1);
                    for bit in chosen {
                        ops.push(Op::Flip { f: fi, v: vi, bit });
                    }
                }
            }
            for op in ops.into_iter().step_by(stride) {
                let (ca, cb, mut a, mut b) = cfgs(mode);
                let mut applied = true;
                negotiate(
                    mode,
                    ca,
                    cb,
                    &mut a,
                    &mut b,
                    Box::new(|i, _, s: Element| {
                        if i == msg {
                            match apply(&s, op) {
                                Some(t) => Some(t),
                                None => {
                                    applied = false;
                                    Some(s)
                                }
                            }
                        } else {
                            Some(s)
                        }
                    }),
                );
                if !applied {
                    continue;
                }
                cases += 1;
                let both = a.established.is_some() && b.established.is_some();
                assert!(
                    !both,
                    "{mode:?} message {msg} {op:?} {:?} was not detected",
                    fs.get(match op {
                        Op::Flip { f, .. } | Op::Remove { f } | Op::Duplicate { f } => f,
                    })
                    .map(|x| &x.0)
                );
                // The receiver of the tampered message refused it.
                let receiver_rejected =
                    if msg % 2 == 0 { b.rejected.is_some() } else { a.rejected.is_some() };
                assert!(receiver_rejected, "{mode:?} message {msg} {op:?}: the receiver did not refuse it");
            }
        }
    }
    assert!(cases * stride > 1000, "{cases} tampered runs");
}

#[test]
fn man_in_the_middle_gives_different_sas_and_is_caught_by_retained_secrets() {
    // Mallory answers Alice as "Bob" and asks Bob as "Alice", each with her own DH values.
    let mallory_cfg = Arc::new(small(Config::default()));
    let (ca, cb, mut a, mut b) = cfgs(Mode::Four);
    let mut m1 = Side::new(7);
    let mut m2 = Side::new(8);
    negotiate(Mode::Four, ca.clone(), mallory_cfg.clone(), &mut a, &mut m1, no_tamper());
    negotiate(Mode::Four, mallory_cfg.clone(), cb.clone(), &mut m2, &mut b, no_tamper());
    let (sa, sb) =
        (a.established.as_ref().unwrap().sas().cloned(), b.established.as_ref().unwrap().sas().cloned());
    assert_ne!(sa, sb, "a relay with its own DH values shows on the SAS");
    // Once Alice and Bob share a retained secret, Mallory cannot produce it.
    let (ca, cb, mut a, mut b) = cfgs(Mode::Four);
    negotiate(Mode::Four, ca.clone(), cb.clone(), &mut a, &mut b, no_tamper());
    assert!(a.established.is_some());
    a.established = None;
    a.alerts.clear();
    let mut m = Side::new(9);
    negotiate(Mode::Four, ca, mallory_cfg, &mut a, &mut m, no_tamper());
    assert!(a.alerts.iter().any(|x| matches!(x, Alert::RetainedSecretMismatch { .. })), "{:?}", a.alerts);
    assert!(!a.established.as_ref().unwrap().retained_secret_used());
}

/// Bob's side of the retained-secret check (X116-4.7): once Alice and Bob share a secret, a
/// genuine new negotiation alerts neither, and Mallory asking Bob as "Alice" alerts Bob.
#[test]
fn bob_is_alerted_when_a_known_contact_shows_no_retained_secret() {
    let mallory_cfg = Arc::new(small(Config::default()));
    let (ca, cb, mut a, mut b) = cfgs(Mode::Four);
    negotiate(Mode::Four, ca.clone(), cb.clone(), &mut a, &mut b, no_tamper());
    let mismatch =
        |alerts: &[Alert]| alerts.iter().any(|x| matches!(x, Alert::RetainedSecretMismatch { .. }));
    for side in [&mut a, &mut b] {
        side.established = None;
        side.alerts.clear();
    }
    negotiate(Mode::Four, ca, cb.clone(), &mut a, &mut b, no_tamper());
    assert!(a.established.as_ref().unwrap().retained_secret_used());
    assert!(!mismatch(&a.alerts) && !mismatch(&b.alerts), "{:?} {:?}", a.alerts, b.alerts);
    b.established = None;
    b.alerts.clear();
    let mut m = Side::new(10);
    negotiate(Mode::Four, mallory_cfg, cb, &mut m, &mut b, no_tamper());
    assert!(mismatch(&b.alerts), "{:?}", b.alerts);
}

#[test]
fn downgrade_in_transit_is_detected() {
    for mode in [Mode::Three, Mode::Four] {
        let (ra, rb, _, _) = keys();
        let (pa, pb) = (ra.public_key(), rb.public_key());
        let mut ca = if mode == Mode::Three { Config::with_identity(ra) } else { Config::default() };
        let mut cb = if mode == Mode::Three { Config::with_identity(rb) } else { Config::default() };
        for c in [&mut ca, &mut cb] {
            // Group 1 is weak: offered and accepted here because the test asks for it.
            c.provider.modp = vec![ModpGroup::G14, ModpGroup::G1];
            c.provider.crypt_algs = vec![CryptAlg::Aes256Ctr, CryptAlg::Aes128Ctr];
            c.support.crypto = CryptoProvider::all();
        }
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        a.trust.trust(&bare(BOB), pb);
        b.trust.trust(&bare(ALICE), pa);
        // An attacker strips group 14 and AES-256 from the request.
        negotiate(
            mode,
            Arc::new(ca),
            Arc::new(cb),
            &mut a,
            &mut b,
            Box::new(|i, _, s: Element| {
                if i != 0 {
                    return Some(s);
                }
                let text = String::from(&s)
                    .replace("<option><value>14</value></option>", "")
                    .replace("<option><value>aes256-ctr</value></option>", "");
                // The e/He of group 14 goes with it.
                let e = esession_forms::xml::parse(&text).unwrap();
                Some(drop_first_dh_value(&e))
            }),
        );
        assert!(b.rejected.is_some(), "{mode:?}: Bob accepted a downgraded request");
        assert!(b.established.is_none());
        assert!(
            matches!(b.rejected, Some(Error::PeerMisbehaved { check: Check::MacA | Check::Signature, .. })),
            "{mode:?} {:?}",
            b.rejected
        );
    }
}

/// Issue 16.3: with the default configuration, a man in the middle of a 3-message negotiation
/// cannot make Alice use the cipher `none` or a weak group, even with a responder that would
/// accept anything: she offers neither, and refuses a response that chose what she did not
/// offer. No `<data/>` she sends is readable.
#[test]
fn three_message_downgrade_to_nothing_weak_with_defaults() {
    type Edit = fn(String) -> String;
    let edits: [(&str, Edit); 3] = [
        ("cipher none", |t| {
            let mut t = t;
            for c in [
                "aes256-ctr",
                "aes192-ctr",
                "aes128-ctr",
                "serpent256-ctr",
                "twofish256-ctr",
                "serpent192-ctr",
                "twofish192-ctr",
                "serpent128-ctr",
                "twofish128-ctr",
            ] {
                t = t.replace(&format!("<option><value>{c}</value></option>"), "");
            }
            t.replace("var='crypt_algs'>", "var='crypt_algs'><option><value>none</value></option>")
        }),
        // The middle adds its own e (2) for the group it adds.
        ("group 1 first", |t| {
            t.replace("var='modp'>", "var='modp'><option><value>1</value></option>")
                .replace("var='dhkeys'>", "var='dhkeys'><value>Ag==</value>")
        }),
        ("group 1 only", |t| {
            let mut t = t;
            for g in ["18", "17", "16", "15", "14"] {
                t = t.replace(&format!("<option><value>{g}</value></option>"), "");
            }
            let t = t.replace("var='modp'>", "var='modp'><option><value>1</value></option>");
            let start = t.find("var='dhkeys'><value>").map(|i| i + "var='dhkeys'><value>".len()).unwrap();
            let end = start + t[start..].find("</value>").unwrap();
            format!("{}Ag=={}", &t[..start], &t[end..])
        }),
    ];
    for (what, edit) in edits {
        let (ra, rb, _, _) = keys();
        let (pa, pb) = (ra.public_key(), rb.public_key());
        let ca = Config::with_identity(ra);
        let mut cb = Config::with_identity(rb);
        // A responder that accepts everything, weak choices included.
        cb.support.crypto = CryptoProvider::all();
        let ca =
            Config { provider: CryptoProvider { modp: vec![ModpGroup::G14], ..ca.provider.clone() }, ..ca };
        assert!(!ca.provider.crypt_algs.contains(&CryptAlg::None), "the default offers no cipher none");
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        a.trust.trust(&bare(BOB), pb);
        b.trust.trust(&bare(ALICE), pa);
        let sent_by_alice = std::cell::RefCell::new(Vec::new());
        negotiate_with(
            Mode::Three,
            Arc::new(ca),
            Arc::new(cb),
            &mut a,
            &mut b,
            Box::new(|i, from_alice, s: Element| {
                if from_alice {
                    sent_by_alice.borrow_mut().push(String::from(&s));
                }
                if i != 0 {
                    return Some(s);
                }
                let edited = edit(String::from(&s));
                assert_ne!(edited, String::from(&s), "{what}: the edit applies");
                Some(esession_forms::xml::parse(&edited).unwrap())
            }),
            Some((chat("READABLE SECRET"), false)),
            None,
        );
        assert!(a.established.is_none(), "{what}: Alice established a downgraded session");
        assert!(
            matches!(a.rejected, Some(Error::PeerMisbehaved { check: Check::Options, .. })),
            "{what}: {:?}",
            a.rejected
        );
        for s in sent_by_alice.borrow().iter() {
            assert!(!s.contains("READABLE") && !s.contains("<data>"), "{what}: Alice sent {s}");
        }
    }
}

fn drop_first_dh_value(s: &Element) -> Element {
    let mut done = false;
    rebuild(s, &mut |c: &Element| {
        if c.name() == "field" && matches!(c.attr("var"), Some("dhhashes" | "dhkeys")) && !done {
            done = true;
            let mut f = Element::bare("field", c.ns());
            for ((ns, n), v) in c.attrs().iter() {
                f.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
            }
            for v in c.children().skip(1) {
                f.append_child(v.clone());
            }
            return Some(vec![f]);
        }
        None
    })
}

#[test]
fn rejections_of_section_4_4() {
    // 3-message not supported: feature-not-implemented naming dhkeys.
    let (ca, _, mut a, mut b) = cfgs(Mode::Three);
    let (_, rb, _, _) = keys();
    let mut bob = small(Config::with_identity(rb));
    bob.support.three_message = false;
    let errors = bobs_replies(Mode::Three, ca, Arc::new(bob), (&mut a, &mut b), |s| s);
    let (cond, fields) = esession_negotiate::wire::error_of(&errors[0]).unwrap();
    assert_eq!((cond.as_deref(), fields), (Some("feature-not-implemented"), vec!["dhkeys".to_owned()]));
    assert!(matches!(a.rejected, Some(Error::Rejected { .. })));
    // Nothing acceptable: not-acceptable naming every such field.
    let mut alice = small(Config::default());
    alice.provider.modp = vec![ModpGroup::G2];
    let mut bob = small(Config::default());
    bob.support.crypto.modp = vec![ModpGroup::G5];
    bob.support.crypto.crypt_algs = vec![CryptAlg::Serpent256Ctr];
    let errors = bobs_replies(
        Mode::Four,
        Arc::new(alice),
        Arc::new(bob),
        (&mut Side::new(1), &mut Side::new(2)),
        |s| s,
    );
    let (cond, fields) = esession_negotiate::wire::error_of(&errors[0]).unwrap();
    assert_eq!(cond.as_deref(), Some("not-acceptable"));
    assert_eq!(fields, vec!["modp".to_owned(), "crypt_algs".to_owned()]);
    // Silence when Bob does not want to reveal presence.
    let mut bob = small(Config::default());
    bob.support.crypto.modp = vec![ModpGroup::G5];
    bob.silent_rejections = true;
    bob.accept_ssn = false;
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let mut from_bob = 0;
    negotiate(
        Mode::Four,
        Arc::new(small(Config::default())),
        Arc::new(bob),
        &mut a,
        &mut b,
        Box::new(|_, from_alice, s| {
            if !from_alice {
                from_bob += 1;
            }
            Some(s)
        }),
    );
    assert_eq!(from_bob, 0);
    assert!(b.rejected.is_some() && a.established.is_none());
    // SSN fall-back: Alice offers c2s too, Bob declines e2e.
    let mut alice = small(Config::default());
    alice.security = vec![Security::E2e, Security::C2s];
    let mut bob = small(Config::default());
    bob.support.security = vec![];
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    negotiate(Mode::Four, Arc::new(alice), Arc::new(bob), &mut a, &mut b, no_tamper());
    assert!(a.ssn && b.ssn, "both sides see a plain stanza session");
    assert!(a.established.is_none() && b.established.is_none());
}

#[test]
fn untrusted_keys_and_unknown_fingerprints_are_refused() {
    for (method, check) in [(PubkeyMethod::Key, Check::KeyTrust), (PubkeyMethod::Hash, Check::KeyUnknown)] {
        let (ra, rb, _, _) = keys();
        let pa = ra.public_key();
        let mut ca = small(Config::with_identity(ra));
        ca.resp_pubkey = vec![method.clone()];
        let cb = small(Config::with_identity(rb));
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        b.trust.trust(&bare(ALICE), pa);
        // Alice does not know Bob's key.
        negotiate(Mode::Three, Arc::new(ca), Arc::new(cb), &mut a, &mut b, no_tamper());
        assert!(
            matches!(&a.rejected, Some(Error::PeerMisbehaved { check: c, condition: Condition::FeatureNotImplemented, .. }) if *c == check),
            "{:?}",
            a.rejected
        );
        assert!(a.established.is_none() && b.established.is_none());
    }
}

#[test]
fn key_association_alerts() {
    let (ra, rb, da, _) = keys();
    let (pa, pb, pda) = (ra.public_key(), rb.public_key(), da.public_key());
    // Bob knows a DSA key for Alice; Alice now presents her RSA key, which Bob also trusts, and
    // which he knows under another JID too.
    let ca = small(Config::with_identity(ra));
    let cb = small(Config::with_identity(rb));
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    a.trust.trust(&bare(BOB), pb);
    b.trust.trust(&bare(ALICE), pa.clone());
    b.trust.trust(&bare(ALICE), pda);
    b.trust.trust(&bare("mallory@example.net"), pa);
    negotiate(Mode::Three, Arc::new(ca), Arc::new(cb), &mut a, &mut b, no_tamper());
    assert!(b.established.is_some(), "{:?}", b.rejected);
    assert!(b.alerts.iter().any(|x| matches!(x, Alert::KeyUnderOtherJid { known_as, .. } if known_as == &vec![bare("mallory@example.net")])), "{:?}", b.alerts);
    // A peer with a stored key that now presents none.
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let (ra, _, _, _) = keys();
    b.trust.trust(&bare(ALICE), ra.public_key());
    negotiate(
        Mode::Four,
        Arc::new(small(Config::default())),
        Arc::new(small(Config::default())),
        &mut a,
        &mut b,
        no_tamper(),
    );
    assert!(b.alerts.iter().any(|x| matches!(x, Alert::KeyChanged { .. })), "{:?}", b.alerts);
    assert!(b.alerts.iter().any(|x| matches!(x, Alert::SasNotConfirmed { .. })));
}

/// An error reply copies the received wrapper. A request whose form declares a prefix again on
/// a child (well-formed XML; minidom's writer panics on it when the parsed form is written as a
/// root, docs/security.md) must give an error reply whose every part writes: the copy carries
/// no prefix declarations of the peer.
#[test]
fn error_reply_with_redeclared_prefixes_in_the_request_serializes() {
    let mut alice = small(Config::default());
    alice.provider.modp = vec![ModpGroup::G2];
    let mut bob = small(Config::default());
    bob.support.crypto.modp = vec![ModpGroup::G5];
    let errors = bobs_replies(
        Mode::Four,
        Arc::new(alice),
        Arc::new(bob),
        (&mut Side::new(1), &mut Side::new(2)),
        |s| {
            let text = String::from(&s).replacen("<x ", "<x xmlns:p='urn:p' p:a='1' ", 1).replacen(
                "<field ",
                "<field xmlns:p='urn:p' p:b='2' ",
                1,
            );
            text.parse().expect("still well-formed")
        },
    );
    assert_eq!(errors.len(), 1, "Bob refused with an error reply");
    let text = String::from(&errors[0]);
    let back: Element = text.parse().expect("the reply parses");
    let (cond, _) = esession_negotiate::wire::error_of(&back).unwrap();
    assert_eq!(cond.as_deref(), Some("not-acceptable"));
    // The copy kept the peer's namespaced attributes, and its form writes on its own too (the
    // peer's declarations, had they been kept, would make minidom's writer panic here).
    assert!(text.contains("urn:p"), "{text}");
    let feature = errors[0].get_child("feature", esession_forms::esession::FEATURE_NEG_NS).unwrap();
    let form = feature.children().next().unwrap();
    assert!(String::from(form).contains("urn:p"));
}

/// A negotiation of `alice` with `bob` on sides `a` and `b`, Alice's request passed through
/// `request`: the stanzas Bob sends.
fn bobs_replies(
    mode: Mode,
    alice: Arc<Config>,
    bob: Arc<Config>,
    (a, b): (&mut Side, &mut Side),
    mut request: impl FnMut(Element) -> Element,
) -> Vec<Element> {
    let mut replies = Vec::new();
    negotiate(
        mode,
        alice,
        bob,
        a,
        b,
        Box::new(|i, from_alice, s: Element| {
            if !from_alice {
                replies.push(s.clone());
                return Some(s);
            }
            Some(if i == 0 { request(s) } else { s })
        }),
    );
    replies
}
