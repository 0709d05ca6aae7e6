//! What the engine tests share: two parties over the in-memory relay, and small helpers.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use esession_crypto::{CryptoProvider, ModpGroup, PrivateKey, PublicKey};
use esession_negotiate::{BareJid, Config, Jid, MemoryRetained, MemoryTrust};
use esession_offline::Audience;
use esession_offline::away::Published;
use esession_offline::replay::MemoryReplay;
use esession_xmpp::relay::Relay;
use esession_xmpp::{Engine, EngineStores, Event};
use minidom::Element;

pub const ALICE: &str = "alice@example.org/pda";
pub const BOB: &str = "bob@example.com/laptop";

pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

pub fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

pub fn bare(s: &str) -> BareJid {
    jid(s).to_bare()
}

pub fn rsa(name: &str) -> PrivateKey {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pem/");
    PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(format!("{p}{name}")).unwrap()).unwrap()
}

/// A second RSA key, generated once per test binary.
pub fn bob_key() -> PrivateKey {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pem = PEM.get_or_init(|| {
        let k =
            PrivateKey::generate_rsa(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng), 2048).unwrap();
        k.to_pkcs8_pem().unwrap().to_string()
    });
    PrivateKey::from_pkcs8_pem(pem).unwrap()
}

/// An engine with `cfg` trusting each (bare JID, key).
pub fn engine_with(cfg: Config, trusts: &[(&str, PublicKey)]) -> Engine {
    let mut trust = MemoryTrust::default();
    for (j, k) in trusts {
        trust.trust(&bare(j), k.clone());
    }
    let stores = EngineStores {
        trust: Box::new(trust),
        retained: Box::new(MemoryRetained::default()),
        replay: Box::new(MemoryReplay::default()),
    };
    Engine::new(cfg, stores)
}

/// The default configuration with `key` (or none), narrowed to group 14 to stay quick.
pub fn config(key: Option<PrivateKey>) -> Config {
    let mut cfg = match key {
        Some(k) => Config::with_identity(k),
        None => Config::default(),
    };
    cfg.provider = CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::default() };
    cfg
}

pub fn engine(key: Option<PrivateKey>, trusts: &[(&str, PublicKey)]) -> Engine {
    engine_with(config(key), trusts)
}

/// Alice (the RSA fixture) and Bob (a generated RSA key), each trusting the other, relayed.
pub fn pair() -> (Relay, usize, usize) {
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let (ap, bp) = (ak.public_key(), bk.public_key());
    let mut r = Relay::new(now());
    let a = r.add(ALICE, engine(Some(ak), &[("bob@example.com", bp)])).unwrap();
    let b = r.add(BOB, engine(Some(bk), &[("alice@example.org", ap)])).unwrap();
    (r, a, b)
}

/// Party `a` (Alice) publishes her offline options for `audiences`, valid `lifetime` and
/// signed with the RSA fixture, through the relay; she stays online. The published sets.
pub fn publish(
    r: &mut Relay,
    a: usize,
    audiences: &[Audience],
    lifetime: chrono::Duration,
) -> Vec<Published> {
    let plan = r.engine(a).plan(vec![rsa("rsa.pem")], lifetime, None).unwrap();
    r.publish(a, &plan, audiences).unwrap()
}

/// Alice publishes her options for her subscribers, valid `lifetime`, and goes away; the set
/// she will come back with.
pub fn away(r: &mut Relay, a: usize, lifetime: chrono::Duration) -> Published {
    let set = publish(r, a, &[Audience::Subscribers], lifetime).remove(0);
    r.disconnect(a);
    r.drive();
    set
}

/// Alice comes back with `set`: the stored stanzas are delivered, but no message anyone else
/// sends from then on (Bob's terminate of his offline session, on her presence). Her events.
pub fn alice_returns(r: &mut Relay, a: usize, set: Published) -> Vec<Event> {
    r.set_filter(Box::new(move |from, s| (from == a || s.name() != "message").then_some(s)));
    r.come_back(a, Some(set.secrets)).unwrap();
    r.take_events(a)
}

pub fn bodies(events: &[Event]) -> Vec<String> {
    events.iter().filter(|e| matches!(e, Event::Message { .. })).filter_map(Event::body).collect()
}

pub fn sas_of(events: &[Event]) -> Option<Option<String>> {
    events.iter().find_map(|e| match e {
        Event::Negotiated { sas, .. } => Some(sas.as_ref().map(ToString::to_string)),
        _ => None,
    })
}

pub fn set(e: &mut Element, name: &str, value: &str) {
    e.set_attr(
        minidom::rxml::Namespace::NONE,
        minidom::rxml::NcName::try_from(name).unwrap(),
        value.to_owned(),
    );
}
