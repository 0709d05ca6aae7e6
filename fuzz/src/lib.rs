//! What the fuzz targets that drive engines share: Alice and Bob, two `esession_xmpp::Engine`s
//! relayed in memory by `esession_xmpp::relay::Relay` (the one harness of the tests, the demo,
//! the fuzz targets and the docs), offering and accepting MODP group 1 only (it is the parsing,
//! the routing and the checks under test, not the group: a run costs little) and drawing their
//! randomness from a seed (a run replays).

use esession_crypto::testing::TestRng;
use esession_crypto::{CryptoProvider, ModpGroup, PrivateKey, Profile};
use esession_negotiate::{BareJid, Config, MemoryRetained, MemoryTrust, Mode};
use esession_offline::replay::MemoryReplay;
use esession_xmpp::relay::Relay;
use esession_xmpp::{Engine, EngineStores, Event};
use minidom::Element;

/// Alice's full JID (party 0).
pub const ALICE: &str = "alice@example.org/pda";
/// Bob's full JID (party 1).
pub const BOB: &str = "bob@example.com/laptop";

/// The RSA fixture: the identity key of both (trust is per JID, and one key loads faster).
pub fn key() -> PrivateKey {
    let pem = include_str!("../../crates/esession-crypto/tests/vectors/pem/rsa.pem");
    PrivateKey::from_pkcs8_pem(pem).unwrap_or_else(|_| unreachable!())
}

/// A bare JID from a constant.
pub fn bare(jid: &str) -> BareJid {
    esession_negotiate::Jid::new(jid).unwrap_or_else(|_| unreachable!()).to_bare()
}

/// The configuration of one party: `profile`, the RSA fixture as identity key with `identity`
/// (else none), every algorithm accepted, group 1 only.
pub fn config(profile: Profile, identity: bool) -> Config {
    let mut c = if identity { Config::with_identity(key()) } else { Config::default() };
    c.profile = profile;
    c.provider.modp = vec![ModpGroup::G1];
    c.support.crypto = CryptoProvider::all();
    c.support.crypto.modp = vec![ModpGroup::G1];
    c
}

/// Alice (party 0) and Bob (party 1) relayed, both online, engines seeded from `seed`; with
/// `identity`, each signs with the RSA fixture and trusts it for the other.
pub fn pair(profile: Profile, identity: bool, seed: u64) -> Relay {
    let party = |peer: &str, seed: u64| {
        let mut trust = MemoryTrust::default();
        if identity {
            trust.trust(&bare(peer), key().public_key());
        }
        let stores = EngineStores {
            trust: Box::new(trust),
            retained: Box::new(MemoryRetained::default()),
            replay: Box::new(MemoryReplay::default()),
        };
        Engine::with_rng(config(profile, identity), stores, Box::new(TestRng::new(seed)))
    };
    let mut r = Relay::new(chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap_or_default());
    let a = r.add(ALICE, party(BOB, seed.wrapping_mul(2))).unwrap_or_else(|_| unreachable!());
    let b = r.add(BOB, party(ALICE, seed.wrapping_mul(2) | 1)).unwrap_or_else(|_| unreachable!());
    debug_assert_eq!((a, b), (0, 1));
    r
}

/// The bodies of the protected messages among `events`, in order.
pub fn bodies(events: &[Event]) -> Vec<String> {
    events.iter().filter(|e| matches!(e, Event::Message { .. })).filter_map(Event::body).collect()
}

/// Sets attribute `name` of `e`.
pub fn set(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
    }
}

/// Whatever came before, Alice negotiates a new session with Bob through the relay and it
/// carries a message: nothing a peer or the network sent may poison the next session.
pub fn renegotiates(r: &mut Relay) {
    r.set_filter(Box::new(|_, s| Some(s)));
    r.drive();
    r.take_events(0);
    r.take_events(1);
    assert!(r.start(0, BOB, Mode::Four).is_ok(), "a negotiation could not start");
    r.drive();
    assert!(
        r.engine(0).has_session(&bare(BOB)) && r.engine(1).has_session(&bare(ALICE)),
        "no session after a valid negotiation: {:?} {:?}",
        r.events(0),
        r.events(1)
    );
    assert!(r.chat(0, "bob@example.com", "after").is_ok());
    r.drive();
    assert_eq!(bodies(&r.take_events(1)), ["after"], "the new session carries a message");
}
