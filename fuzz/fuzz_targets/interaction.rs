//! Alice and Bob, two engines relayed in memory (`esession_xmpp::relay::Relay` through
//! `esession_fuzz::pair`: the harness of the tests, the demo and the docs), driven by arbitrary
//! actions: an online negotiation (3- or 4-message, Xep or Gajim) and traffic both ways, through
//! a network that may deliver, drop, duplicate, reorder, replay or tamper with any stanza in
//! flight, add clear children beside `<c/>` (a `<body/>`, an `<error/>`, an `<amp/>`), answer a
//! stanza with an error, or hand a party a stanza the input spells out (in a session's thread or
//! not). Invariants: no panic; no body is delivered that its sender did not send, or twice, or to
//! its sender; nothing added in clear is ever part of a delivered message's protected content;
//! an error is never answered with an error; when both hold a session on one thread, they hold
//! the same K and were shown the same SAS.
#![no_main]

use esession_crypto::Profile;
use esession_fuzz::{ALICE, BOB, bare, pair, set};
use esession_negotiate::Mode;
use esession_stanza::EncryptOptions;
use esession_xmpp::Event;
use esession_xmpp::relay::Relay;
use libfuzzer_sys::fuzz_target;
use minidom::Element;
use std::collections::{HashMap, HashSet};

/// Whether `e` or anything in it carries the text the network added.
fn injected(e: &Element) -> bool {
    e.text().contains("INJECTED") || e.children().any(injected)
}

/// What the run saw so far, to check each event against.
#[derive(Default)]
struct Seen {
    sent: HashSet<String>,
    delivered: HashSet<String>,
    /// Per party, the SAS shown for each thread it negotiated.
    sas: [HashMap<String, Option<esession_crypto::Sas>>; 2],
    threads: Vec<String>,
}

impl Seen {
    /// Checks and records what party `i` reported since the last call.
    fn events(&mut self, r: &mut Relay, i: usize) {
        for e in r.take_events(i) {
            match e {
                Event::Negotiated { thread, sas, offline: false, .. } => {
                    if let Some(other) = self.sas[1 - i].get(&thread) {
                        assert_eq!(other, &sas, "one thread, two SAS");
                    }
                    self.threads.push(thread.clone());
                    self.sas[i].insert(thread, sas);
                }
                Event::Message { stanza, clear, .. } => {
                    // A child added in clear is dropped, or (an <amp/> in a message, an
                    // <error/> in an error) kept and named as clear: never delivered as
                    // protected.
                    for c in stanza.children().filter(|c| injected(c)) {
                        assert!(
                            clear.iter().any(|n| n == c.name() || n.ends_with(&format!("}}{}", c.name()))),
                            "a child added in clear was delivered as protected: {}",
                            c.name()
                        );
                    }
                    if let Some(b) = stanza.get_child("body", "jabber:client").map(Element::text) {
                        assert!(self.sent.contains(&b), "delivered a body nobody sent: {b:?}");
                        assert!(self.delivered.insert(b.clone()), "delivered twice: {b:?}");
                        assert_eq!(b.starts_with('A'), i == 1, "delivered to its own sender");
                    }
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, actions)) = data.split_first() else { return };
    let profile = if flags & 1 == 0 { Profile::Xep } else { Profile::Gajim };
    let mode = if flags & 2 == 0 { Mode::Four } else { Mode::Three };
    let mut r = pair(profile, true, u64::from(flags));
    if r.start(0, BOB, mode).is_err() {
        return;
    }
    let mut seen = Seen::default();
    // Stanzas delivered so far, for replays.
    let mut old: Vec<(usize, Element)> = Vec::new();
    let mut n = 0u32;
    let mut it = actions.iter();
    while let Some(&act) = it.next() {
        match act % 11 {
            // Deliver the first stanza in flight.
            0 | 1 => {
                let Some((from, s)) = r.in_flight().front().cloned() else { continue };
                old.push((from, s.clone()));
                let after = r.in_flight().len() - 1;
                r.step();
                if s.attr("type") == Some("error") {
                    // RFC 6120 §8.3.1: what the receiver sends now never answers this error.
                    for (_, x) in r.in_flight().iter().skip(after) {
                        assert_ne!(x.attr("type"), Some("error"), "an error answered with an error");
                    }
                }
            }
            // Drop, duplicate, reorder.
            2 => {
                r.in_flight().pop_front();
            }
            3 => {
                if let Some(f) = r.in_flight().front().cloned() {
                    r.in_flight().push_back(f);
                }
            }
            4 => {
                if r.in_flight().len() > 1 {
                    r.in_flight().swap(0, 1);
                }
            }
            // Replay something already delivered.
            5 => {
                if !old.is_empty() {
                    let i = usize::from(*it.next().unwrap_or(&0)) % old.len();
                    let again = old[i].clone();
                    r.in_flight().push_front(again);
                }
            }
            // Tamper: flip one bit of the first stanza's text.
            6 => {
                let Some((from, s)) = r.in_flight().pop_front() else { continue };
                let mut text = String::from(&s).into_bytes();
                let pos = usize::from(*it.next().unwrap_or(&0)) * 7 % text.len().max(1);
                let bit = *it.next().unwrap_or(&1) % 8;
                if let Some(c) = text.get_mut(pos) {
                    *c ^= 1 << bit;
                }
                if let Ok(t) = String::from_utf8(text) {
                    if let Ok(e) = esession_forms::xml::parse(&t) {
                        r.in_flight().push_front((from, e));
                    }
                }
            }
            // A stanza spelled out by the input (a length octet, then the XML), to Alice or to
            // Bob as from the other, in the thread of a session so far or not.
            7 => {
                let len = usize::from(*it.next().unwrap_or(&0));
                let bytes: Vec<u8> = it.by_ref().take(len).copied().collect();
                let Ok(mut e) = std::str::from_utf8(&bytes)
                    .map_err(|_| ())
                    .and_then(|t| esession_forms::xml::parse(t).map_err(|_| ()))
                else {
                    continue;
                };
                let how = *it.next().unwrap_or(&0);
                let to_bob = how & 1 == 0;
                set(&mut e, "to", if to_bob { BOB } else { ALICE });
                if let Some(thread) = seen.threads.get(usize::from(how >> 1)) {
                    let t = Element::builder("thread", "jabber:client").append(thread.as_str()).build();
                    match e.get_child_mut("thread", "jabber:client") {
                        Some(old) => *old = t,
                        None => {
                            e.append_child(t);
                        }
                    }
                }
                r.in_flight().push_front((usize::from(to_bob) ^ 1, e));
            }
            // Add clear children beside the first stanza's <c/> (they must never be delivered).
            8 => {
                let Some((from, mut s)) = r.in_flight().pop_front() else { continue };
                match it.next().map_or(0, |b| b % 3) {
                    0 => s.append_child(
                        Element::builder("body", "jabber:client").append("INJECTED body").build(),
                    ),
                    1 => s.append_child(
                        Element::builder("error", "jabber:client")
                            .attr(
                                minidom::rxml::NcName::try_from("type").unwrap_or_else(|_| unreachable!()),
                                "cancel",
                            )
                            .append(
                                Element::builder("text", "urn:ietf:params:xml:ns:xmpp-stanzas")
                                    .append("INJECTED error")
                                    .build(),
                            )
                            .build(),
                    ),
                    _ => s.append_child(
                        Element::builder("amp", "http://jabber.org/protocol/amp")
                            .append("INJECTED amp")
                            .build(),
                    ),
                };
                r.in_flight().push_front((from, s));
            }
            // Answer the first stanza in flight with an error, as a server or a peer would.
            9 => {
                let Some((from, s)) = r.in_flight().pop_front() else { continue };
                let mut e = s.clone();
                set(&mut e, "type", "error");
                let back = r.jid(from).as_str().to_owned();
                set(&mut e, "to", &back);
                e.append_child(
                    Element::builder("error", "jabber:client")
                        .attr(
                            minidom::rxml::NcName::try_from("type").unwrap_or_else(|_| unreachable!()),
                            "cancel",
                        )
                        .append(
                            Element::builder("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas")
                                .build(),
                        )
                        .build(),
                );
                // Back to the sender, from the party it was sent to.
                r.in_flight().push_front((1 - from, e));
            }
            // (10) Send a message (either side, sometimes with a re-key).
            _ => {
                let from = usize::from(it.next().is_some_and(|b| b & 1 == 1));
                let rekey = n % 3 == 2;
                n += 1;
                let (peer, tag) = if from == 0 { (bare(BOB), 'A') } else { (bare(ALICE), 'B') };
                let body = format!("{tag}{n}");
                if let Ok(w) = r.engine(from).chat(&peer, &body, EncryptOptions { rekey, publish_old: false })
                {
                    seen.sent.insert(body);
                    r.inject(from, w);
                }
            }
        }
        seen.events(&mut r, 0);
        seen.events(&mut r, 1);
    }
    let (a, b) = (
        r.engine(0).session(&bare(BOB)).map(|s| (s.thread().to_owned(), s.k().expose_secret().to_vec())),
        r.engine(1).session(&bare(ALICE)).map(|s| (s.thread().to_owned(), s.k().expose_secret().to_vec())),
    );
    if let (Some((ta, ka)), Some((tb, kb))) = (a, b) {
        if ta == tb {
            assert!(ka == kb, "one thread, two keys");
        }
    }
});
