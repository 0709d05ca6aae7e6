//! Alice and Bob driven by arbitrary actions: an online negotiation (3- or 4-message, Xep or
//! Gajim) and traffic both ways, through a network that may deliver, drop, duplicate, reorder,
//! replay or tamper with any stanza, add clear children beside `<c/>` (a `<body/>`, an
//! `<error/>`, an `<amp/>`) or answer a stanza with an error. Invariants: no panic; no body is
//! delivered that its sender did not send, or twice; nothing added in clear is ever part of a
//! delivered stanza's protected content; an error is never answered with an error; when both
//! sides establish, they hold the same K.
#![no_main]

use esession_crypto::testing::TestRng;
use esession_crypto::{PrivateKey, Profile};
use esession_negotiate::{
    Config, Established, Initiator, MemoryRetained, MemoryTrust, Mode, Output, Received, Responder,
    RngEntropy, Stores,
};
use esession_stanza::EncryptOptions;
use libfuzzer_sys::fuzz_target;
use minidom::Element;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

const ALICE: &str = "alice@example.org/pda";
const BOB: &str = "bob@example.com/laptop";

struct Keys {
    cfgs: Vec<(Arc<Config>, Arc<Config>)>,
    alice_pub: esession_crypto::PublicKey,
    bob_pub: esession_crypto::PublicKey,
}

fn key() -> PrivateKey {
    // One RSA key for both (fast to load; trust is per JID anyway).
    let pem = include_str!("../../crates/esession-crypto/tests/vectors/pem/rsa.pem");
    PrivateKey::from_pkcs8_pem(pem).unwrap_or_else(|_| unreachable!())
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let mut cfgs = Vec::new();
        for profile in [Profile::Xep, Profile::Gajim] {
            let mk = || {
                let mut c = Config::with_identity(key());
                c.profile = profile;
                c.provider.modp = vec![esession_crypto::ModpGroup::G1];
                c.support.crypto = esession_crypto::CryptoProvider::all();
                c.support.crypto.modp = vec![esession_crypto::ModpGroup::G1];
                Arc::new(c)
            };
            cfgs.push((mk(), mk()));
        }
        let p = key().public_key();
        Keys { cfgs, alice_pub: p.clone(), bob_pub: p }
    })
}

fn jid(s: &str) -> esession_negotiate::Jid {
    esession_negotiate::Jid::new(s).unwrap_or_else(|_| unreachable!())
}

fn chat(to: &str, thread: &str, body: &str) -> Element {
    esession_negotiate::wire::message(&jid(to), thread, vec![Element::builder("body", "jabber:client").append(body).build()])
}

/// Whether `e` or anything in it carries the text the network added.
fn injected(e: &Element) -> bool {
    e.text().contains("INJECTED") || e.children().any(injected)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, actions)) = data.split_first() else { return };
    let k = keys();
    let (a_cfg, b_cfg) = &k.cfgs[usize::from(flags & 1)];
    let mode = if flags & 2 == 0 { Mode::Four } else { Mode::Three };
    let mut rng = TestRng::new(u64::from(flags));
    let mut at = MemoryTrust::default();
    at.trust(&esession_negotiate::BareJid::new("bob@example.com").unwrap_or_else(|_| unreachable!()), k.bob_pub.clone());
    let mut bt = MemoryTrust::default();
    bt.trust(&esession_negotiate::BareJid::new("alice@example.org").unwrap_or_else(|_| unreachable!()), k.alice_pub.clone());
    let (mut ar, mut br) = (MemoryRetained::default(), MemoryRetained::default());
    let mut alice = Initiator::new(a_cfg.clone(), jid(BOB), "t");
    let mut bob = Responder::new(b_cfg.clone(), jid(ALICE), "t");
    if alice.start(mode, &mut RngEntropy(&mut rng)).is_err() {
        return;
    }
    let (mut a_est, mut b_est): (Option<Box<Established>>, Option<Box<Established>>) = (None, None);
    // In flight: (to Bob?, stanza).
    let mut net: VecDeque<(bool, Element)> = VecDeque::new();
    let mut seen: Vec<(bool, Element)> = Vec::new();
    let mut sent: HashSet<String> = HashSet::new();
    let mut delivered: HashSet<String> = HashSet::new();
    let mut n = 0u32;
    let mut it = actions.iter();
    loop {
        while let Some(o) = alice.poll_output() {
            match o {
                Output::Send(s) => net.push_back((true, s)),
                Output::Established(e) => a_est = Some(e),
                _ => {}
            }
        }
        while let Some(o) = bob.poll_output() {
            match o {
                Output::Send(s) => net.push_back((false, s)),
                Output::Established(e) => b_est = Some(e),
                _ => {}
            }
        }
        let Some(&act) = it.next() else { break };
        match act % 10 {
            // Deliver the first stanza in flight.
            0 | 1 => {
                let Some((to_bob, s)) = net.pop_front() else { continue };
                seen.push((to_bob, s.clone()));
                let body = if to_bob {
                    match b_est.as_mut() {
                        Some(e) => e.receive(&s, false, &mut rng).ok(),
                        None => {
                            let _ = bob.handle(chrono::DateTime::UNIX_EPOCH, &s, &mut RngEntropy(&mut rng), &mut Stores { trust: &mut bt, retained: &mut br });
                            None
                        }
                    }
                } else {
                    match a_est.as_mut() {
                        Some(e) => e.receive(&s, false, &mut rng).ok(),
                        None => {
                            let _ = alice.handle(chrono::DateTime::UNIX_EPOCH, &s, &mut RngEntropy(&mut rng), &mut Stores { trust: &mut at, retained: &mut ar });
                            None
                        }
                    }
                };
                if s.attr("type") == Some("error") {
                    // RFC 6120 §8.3.1: what the receiver sends now never answers this error.
                    let machine_out: Vec<Element> = if to_bob {
                        std::iter::from_fn(|| bob.poll_output()).filter_map(|o| match o { Output::Send(x) => Some(x), Output::Established(e) => { b_est = Some(e); None } _ => None }).collect()
                    } else {
                        std::iter::from_fn(|| alice.poll_output()).filter_map(|o| match o { Output::Send(x) => Some(x), Output::Established(e) => { a_est = Some(e); None } _ => None }).collect()
                    };
                    for x in &machine_out {
                        assert_ne!(x.attr("type"), Some("error"), "an error answered with an error");
                    }
                    for x in machine_out {
                        net.push_back((!to_bob, x));
                    }
                }
                if let Some(Received::Stanza { stanza: clear, clear: kept_clear, .. }) = body {
                    // A child added in clear is dropped, or (an <amp/> in a message) kept and
                    // named as clear: never delivered as protected.
                    for c in clear.children().filter(|c| injected(c)) {
                        assert!(
                            kept_clear.iter().any(|n| n == c.name() || n.ends_with(&format!("}}{}", c.name()))),
                            "a child added in clear was delivered as protected: {}",
                            c.name()
                        );
                    }
                    if let Some(b) = clear.get_child("body", "jabber:client").map(Element::text) {
                        assert!(sent.contains(&b), "delivered a body nobody sent: {b:?}");
                        assert!(delivered.insert(b.clone()), "delivered twice: {b:?}");
                        assert_eq!(b.starts_with('A'), to_bob, "delivered to its own sender");
                    }
                }
            }
            // Drop, duplicate, reorder.
            2 => {
                net.pop_front();
            }
            3 => {
                if let Some(f) = net.front().cloned() {
                    net.push_back(f);
                }
            }
            4 => {
                if net.len() > 1 {
                    net.swap(0, 1);
                }
            }
            // Replay something already delivered.
            5 => {
                if !seen.is_empty() {
                    let i = usize::from(*it.next().unwrap_or(&0)) % seen.len();
                    net.push_front(seen[i].clone());
                }
            }
            // Tamper: flip one bit of the first stanza's text.
            6 => {
                let Some((to_bob, s)) = net.pop_front() else { continue };
                let mut text = String::from(&s).into_bytes();
                let pos = usize::from(*it.next().unwrap_or(&0)) * 7 % text.len().max(1);
                let bit = *it.next().unwrap_or(&1) % 8;
                if let Some(c) = text.get_mut(pos) {
                    *c ^= 1 << bit;
                }
                if let Ok(t) = String::from_utf8(text) {
                    if let Ok(e) = esession_forms::xml::parse(&t) {
                        net.push_front((to_bob, e));
                    }
                }
            }
            // Add clear children beside the first stanza's <c/> (they must never be delivered).
            8 => {
                let Some((to_bob, mut s)) = net.pop_front() else { continue };
                match it.next().map_or(0, |b| b % 3) {
                    0 => s.append_child(Element::builder("body", "jabber:client").append("INJECTED body").build()),
                    1 => s.append_child(
                        Element::builder("error", "jabber:client")
                            .attr(minidom::rxml::NcName::try_from("type").unwrap_or_else(|_| unreachable!()), "cancel")
                            .append(Element::builder("text", "urn:ietf:params:xml:ns:xmpp-stanzas").append("INJECTED error").build())
                            .build(),
                    ),
                    _ => s.append_child(
                        Element::builder("amp", "http://jabber.org/protocol/amp").append("INJECTED amp").build(),
                    ),
                };
                net.push_front((to_bob, s));
            }
            // Answer the first stanza in flight with an error, as a server or a peer would.
            9 => {
                let Some((to_bob, s)) = net.pop_front() else { continue };
                let mut e = s.clone();
                e.set_attr(minidom::rxml::Namespace::NONE, minidom::rxml::NcName::try_from("type").unwrap_or_else(|_| unreachable!()), "error".to_owned());
                e.append_child(
                    Element::builder("error", "jabber:client")
                        .attr(minidom::rxml::NcName::try_from("type").unwrap_or_else(|_| unreachable!()), "cancel")
                        .append(Element::builder("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas").build())
                        .build(),
                );
                // Back to the sender.
                net.push_front((!to_bob, e));
            }
            // Send a message (either side, sometimes with a re-key).
            _ => {
                let from_alice = it.next().is_none_or(|b| b & 1 == 0);
                let rekey = n % 3 == 2;
                n += 1;
                let (est, to, tag) =
                    if from_alice { (a_est.as_mut(), BOB, 'A') } else { (b_est.as_mut(), ALICE, 'B') };
                let Some(est) = est else { continue };
                let body = format!("{tag}{n}");
                let m = chat(to, &est.thread().to_owned(), &body);
                if let Ok(w) = est.encrypt(&m, EncryptOptions { rekey, publish_old: false }, &mut rng) {
                    sent.insert(body);
                    net.push_back((from_alice, w));
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (&a_est, &b_est) {
        assert!(a.k().ct_eq(b.k().expose_secret()), "both established with different keys");
    }
});
