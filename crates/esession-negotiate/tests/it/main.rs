//! Integration tests of esession-negotiate: an in-memory `Pair` harness drives Alice and Bob.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod durable;
mod lifecycle;
mod matrix;
mod security;

use esession_crypto::PrivateKey;
use esession_crypto::testing::TestRng;
use esession_negotiate::*;
use esession_stanza::EncryptOptions;
use minidom::Element;
use std::sync::Arc;

/// A JID of the tests.
pub(crate) fn j(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

/// The bare JID of a JID of the tests.
pub(crate) fn bare(s: &str) -> BareJid {
    j(s).to_bare()
}

/// A time of the tests: `secs` seconds after the epoch.
pub(crate) fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, 0).unwrap()
}

pub(crate) const ALICE: &str = "alice@example.org/pda";
pub(crate) const BOB: &str = "bob@example.com/laptop";

/// One side's stores, outputs and fixed randomness.
pub(crate) struct Side {
    pub(crate) trust: MemoryTrust,
    pub(crate) retained: MemoryRetained,
    pub(crate) rng: TestRng,
    pub(crate) established: Option<Box<Established>>,
    pub(crate) rejected: Option<Error>,
    pub(crate) sas: Option<esession_crypto::Sas>,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) ssn: bool,
    pub(crate) received: Vec<Element>,
}

impl Side {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            trust: MemoryTrust::default(),
            retained: MemoryRetained::default(),
            rng: TestRng::new(seed),
            established: None,
            rejected: None,
            sas: None,
            alerts: Vec::new(),
            ssn: false,
            received: Vec::new(),
        }
    }
}

/// Which stanza of the negotiation: its index and sender.
pub(crate) type Tamper<'a> = Box<dyn FnMut(usize, bool, Element) -> Option<Element> + 'a>;

/// Runs one negotiation between `alice_cfg` and `bob_cfg`; `tamper` sees every stanza in flight
/// (index, from Alice?) and may change or drop it.
pub(crate) fn negotiate(
    mode: Mode,
    alice_cfg: Arc<Config>,
    bob_cfg: Arc<Config>,
    a: &mut Side,
    b: &mut Side,
    tamper: Tamper<'_>,
) {
    negotiate_with(mode, alice_cfg, bob_cfg, a, b, tamper, None, None);
}

/// [`negotiate`], with content piggybacked by Alice (3-message accept, optionally terminating)
/// and by Bob (4-message identity).
#[allow(clippy::too_many_arguments)]
pub(crate) fn negotiate_with(
    mode: Mode,
    alice_cfg: Arc<Config>,
    bob_cfg: Arc<Config>,
    a: &mut Side,
    b: &mut Side,
    tamper: Tamper<'_>,
    alice_content: Option<(Element, bool)>,
    bob_content: Option<Element>,
) {
    let mut alice = Initiator::new(alice_cfg, j(BOB), "thread-1");
    let mut bob = Responder::new(bob_cfg, j(ALICE), "thread-1");
    if let Some((c, t)) = alice_content {
        alice.piggyback(c, t);
    }
    if let Some(c) = bob_content {
        bob.piggyback(c);
    }
    run_parties(mode, alice, bob, a, b, tamper);
}

/// Runs a negotiation between parties built by the caller (with shapers, piggybacked content).
pub(crate) fn run_parties(
    mode: Mode,
    mut alice: Initiator,
    mut bob: Responder,
    a: &mut Side,
    b: &mut Side,
    mut tamper: Tamper<'_>,
) {
    let mut ent = TestRng::new(a.rng_seed());
    alice.start(mode, &mut RngEntropy(&mut ent)).unwrap();
    let mut n = 0usize;
    loop {
        let mut moved = false;
        while let Some(o) = alice.poll_output() {
            if let Some(s) = collect(o, a) {
                moved = true;
                n += 1;
                if let Some(s) = tamper(n - 1, true, s) {
                    let _ = bob.handle(
                        at(0),
                        &s,
                        &mut RngEntropy(&mut b.rng),
                        &mut Stores { trust: &mut b.trust, retained: &mut b.retained },
                    );
                }
            }
        }
        while let Some(o) = bob.poll_output() {
            if let Some(s) = collect(o, b) {
                moved = true;
                n += 1;
                if let Some(s) = tamper(n - 1, false, s) {
                    let _ = alice.handle(
                        at(0),
                        &s,
                        &mut RngEntropy(&mut a.rng),
                        &mut Stores { trust: &mut a.trust, retained: &mut a.retained },
                    );
                }
            }
        }
        if !moved {
            break;
        }
    }
}

impl Side {
    fn rng_seed(&mut self) -> u64 {
        use rand_core::Rng;
        self.rng.next_u64()
    }
}

/// Records non-Send outputs; returns stanzas to deliver.
fn collect(o: Output, side: &mut Side) -> Option<Element> {
    match o {
        Output::Send(s) => return Some(s),
        Output::SasReady(s) => side.sas = Some(s),
        Output::Established(e) => side.established = Some(e),
        Output::Rejected(e) => side.rejected = Some(e),
        Output::Alert(a) => side.alerts.push(a),
        Output::StanzaSession { .. } => side.ssn = true,
        Output::Received { content: e, .. } => side.received.push(e),
        _ => {}
    }
    None
}

pub(crate) fn no_tamper<'a>() -> Tamper<'a> {
    Box::new(|_, _, s| Some(s))
}

/// Messages both ways through the established sessions.
pub(crate) fn exchange(a: &mut Side, b: &mut Side) {
    let (Some(ea), Some(eb)) = (a.established.as_mut(), b.established.as_mut()) else {
        panic!("not established")
    };
    let mut r = TestRng::new(5);
    for (i, text) in ["Hello, Bob!", "Hi Alice", "ünïcødé"].iter().enumerate() {
        let msg = chat(text);
        let (from, to) = if i % 2 == 0 {
            (ea.session_mut(), eb.session_mut())
        } else {
            (eb.session_mut(), ea.session_mut())
        };
        let wire = from.encrypt(&msg, EncryptOptions::default(), &mut r).unwrap();
        let (clear, _) = to.decrypt(&wire).unwrap();
        assert_eq!(clear.get_child("body", "jabber:client").map(Element::text).as_deref(), Some(*text));
    }
}

pub(crate) fn chat(body: &str) -> Element {
    let mut m = Element::bare("message", "jabber:client");
    m.append_child(Element::builder("thread", "jabber:client").append("thread-1").build());
    m.append_child(Element::builder("body", "jabber:client").append(body).build());
    m
}

pub(crate) fn keys() -> (PrivateKey, PrivateKey, PrivateKey, PrivateKey) {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../../esession-crypto/tests/vectors/identity-keys.json"))
            .unwrap();
    let h = |a: &str, f: &str| {
        let s = v[a][f].as_str().unwrap();
        hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
    };
    let rsa = || PrivateKey::rsa_from_components(&h("rsa", "n"), &h("rsa", "e"), &h("rsa", "d")).unwrap();
    let dsa = || {
        PrivateKey::dsa_from_components(
            &h("dsa", "p"),
            &h("dsa", "q"),
            &h("dsa", "g"),
            &h("dsa", "y"),
            &h("dsa", "x"),
        )
        .unwrap()
    };
    (rsa(), rsa(), dsa(), dsa())
}
