//! The sans-IO engine without a server: two engines relayed in memory (the server's part,
//! stamping `from`, is played by the relay).

#![allow(clippy::unwrap_used, clippy::panic)]

use esession_crypto::{PrivateKey, PublicKey};
use esession_negotiate::{Config, MemoryRetained, MemoryTrust, Mode};
use esession_offline::Audience;
use esession_offline::replay::MemoryReplay;
use esession_stanza::EncryptOptions;
use esession_xmpp::{Engine, EngineStores, Error, Event};
use minidom::Element;

const ALICE: &str = "alice@example.org/pda";
const BOB: &str = "bob@example.com/laptop";

fn rsa(name: &str) -> PrivateKey {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../esession-crypto/tests/vectors/pem/");
    PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(format!("{p}{name}")).unwrap()).unwrap()
}

fn bob_key() -> PrivateKey {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pem = PEM.get_or_init(|| {
        let k =
            PrivateKey::generate_rsa(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng), 2048).unwrap();
        k.to_pkcs8_pem().unwrap().to_string()
    });
    PrivateKey::from_pkcs8_pem(pem).unwrap()
}

/// Alice (the RSA fixture) and Bob (a generated RSA key), each trusting the other.
fn pair() -> (Engine, Engine) {
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let (ap, bp) = (ak.public_key(), bk.public_key());
    (engine(Some(ak), &[("bob@example.com", bp)]), engine(Some(bk), &[("alice@example.org", ap)]))
}

fn engine(key: Option<PrivateKey>, trusts: &[(&str, PublicKey)]) -> Engine {
    let mut trust = MemoryTrust::default();
    for (jid, k) in trusts {
        trust.trust(jid, k.clone());
    }
    let cfg = match key {
        Some(k) => Config::with_identity(k),
        None => Config::default(),
    };
    let stores = EngineStores {
        trust: Box::new(trust),
        retained: Box::new(MemoryRetained::default()),
        replay: Box::new(MemoryReplay::default()),
    };
    Engine::new(cfg, stores)
}

fn stamp(mut s: Element, from: &str) -> Element {
    s.set_attr(
        minidom::rxml::Namespace::NONE,
        minidom::rxml::NcName::try_from("from").unwrap(),
        from.to_owned(),
    );
    s
}

/// Relays stanzas back and forth until both are quiet; returns (Alice's events, Bob's events).
fn relay(a: &mut Engine, b: &mut Engine, first: Vec<Element>) -> (Vec<Event>, Vec<Event>) {
    let now = chrono::Utc::now();
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    let mut to_b = first;
    let mut to_a: Vec<Element> = Vec::new();
    while !to_a.is_empty() || !to_b.is_empty() {
        for s in std::mem::take(&mut to_b) {
            let step = b.handle(now, &stamp(s, ALICE));
            to_a.extend(step.send);
            eb.extend(step.events);
        }
        for s in std::mem::take(&mut to_a) {
            let step = a.handle(now, &stamp(s, BOB));
            to_b.extend(step.send);
            ea.extend(step.events);
        }
    }
    (ea, eb)
}

fn bodies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { body, .. } => body.clone(),
            _ => None,
        })
        .collect()
}

fn sas_of(events: &[Event]) -> Option<Option<String>> {
    events.iter().find_map(|e| match e {
        Event::Negotiated { sas, .. } => Some(sas.clone()),
        _ => None,
    })
}

#[test]
fn online_session_chat_refusal_and_termination() {
    for mode in [Mode::Four, Mode::Three] {
        let (mut a, mut b) = pair();
        let step = a.start(BOB, mode).unwrap();
        let (ea, eb) = relay(&mut a, &mut b, step.send);
        let (sa, sb) = (sas_of(&ea).unwrap(), sas_of(&eb).unwrap());
        assert_eq!(sa, sb);
        assert_eq!(sa.is_some(), mode == Mode::Four);
        assert!(a.has_session(BOB) && b.has_session(ALICE));
        // Chat both ways, with a re-key.
        let w = a.chat(BOB, "hello", EncryptOptions::default()).unwrap();
        let (_, eb) = relay(&mut a, &mut b, vec![w]);
        assert!(matches!(&eb[..], [Event::Message { body: Some(t), .. }] if t == "hello"));
        let w = a.chat(BOB, "rekeyed", EncryptOptions { rekey: true, publish_old: false }).unwrap();
        let w2 = a.chat(BOB, "after", EncryptOptions::default()).unwrap();
        let (_, eb) = relay(&mut a, &mut b, vec![w, w2]);
        assert_eq!(bodies(&eb), ["rekeyed", "after"]);
        // The wire form hides the body.
        let w = a.chat(BOB, "secret words", EncryptOptions::default()).unwrap();
        assert!(!String::from(&w).contains("secret words"));
        assert!(format!("{:?}", b.handle(chrono::Utc::now(), &stamp(w, ALICE))).contains("octets"));
        // No session with Carol: refused, nothing produced.
        let m = stamp(Element::builder("message", "jabber:client").build(), ALICE);
        let mut to_carol = m.clone();
        to_carol.set_attr(
            minidom::rxml::Namespace::NONE,
            minidom::rxml::NcName::try_from("to").unwrap(),
            "carol@example.net/x".to_owned(),
        );
        assert!(matches!(a.protect(&to_carol, EncryptOptions::default()), Err(Error::NotProtected(_))));
        // Termination with acknowledgement.
        let t = a.terminate(BOB).unwrap();
        let (ea, eb) = relay(&mut a, &mut b, vec![t]);
        assert!(ea.iter().any(|e| matches!(e, Event::Terminated { .. })));
        assert!(eb.iter().any(|e| matches!(e, Event::Terminated { .. })));
        assert!(!a.has_session(BOB) && !b.has_session(ALICE));
    }
}

#[test]
fn a_tampered_negotiation_fails_without_a_session() {
    let (mut a, mut b) = (engine(None, &[]), engine(None, &[]));
    let step = a.start(BOB, Mode::Four).unwrap();
    let now = chrono::Utc::now();
    let reply = b.handle(now, &stamp(step.send[0].clone(), ALICE));
    // Flip one character in Bob's response form.
    let text = String::from(&reply.send[0]);
    let i = text.find("<value>").unwrap() + 8;
    let mut bytes = text.into_bytes();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered: Element = String::from_utf8(bytes).unwrap().parse().unwrap();
    let step = a.handle(now, &stamp(tampered, BOB));
    assert!(step.events.iter().any(|e| matches!(e, Event::Failed { .. })), "{step:?}");
    assert!(!step.events.iter().any(|e| matches!(e, Event::Negotiated { .. })));
    assert!(!a.has_session(BOB));
}

#[test]
fn offline_session_from_published_options() {
    let alice_key = rsa("rsa.pem");
    let alice_pub = alice_key.public_key();
    let bob_key =
        PrivateKey::generate_rsa(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng), 2048).unwrap();
    let bob_pub = bob_key.public_key();
    let mut a = engine(Some(rsa("rsa.pem")), &[("bob@example.com", bob_pub)]);
    let mut b = engine(Some(bob_key), &[("alice@example.org", alice_pub)]);
    let now = chrono::Utc::now();
    let plan = a.plan(vec![alice_key], chrono::Duration::hours(1)).unwrap();
    let mut sets = esession_offline::away::go_offline(
        &plan,
        &[Audience::Subscribers],
        now,
        &mut esession_negotiate::RngEntropy(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng)),
    )
    .unwrap();
    let p = sets.pop().unwrap();
    let options = esession_offline::pep::options_in(p.iqs.last().unwrap()).unwrap().clone();
    let v = esession_offline::send::verify(&options, ALICE, b.trust(), now, b.config().profile).unwrap();
    let start = b.offline_start(&v, "while you were away", now).unwrap();
    let later = b.offline_send(ALICE, "and more").unwrap();
    let queued = vec![stamp(start.clone(), BOB), stamp(later, BOB), stamp(start, BOB)];
    let (step, other) = a.come_back(Some(p.secrets), None, &queued, now).unwrap();
    assert!(other.is_empty());
    assert_eq!(step.send.len(), 1, "the withdraw");
    assert_eq!(bodies(&step.events), ["while you were away", "and more"]);
    assert!(
        step.events.iter().any(|e| matches!(e, Event::Failed { condition, .. } if condition == "silent"))
    );
    // X187-4-01 X187-4-02: Alice never sends inside Bob's offline session; to answer she
    // negotiates a new online session.
    assert!(!a.has_session(BOB), "an accepted offline session is receive-only");
    assert!(matches!(a.chat(BOB, "reply", EncryptOptions::default()), Err(Error::NotProtected(_))));
    let req = a.start(BOB, Mode::Four).unwrap();
    let (ea, eb) = relay(&mut a, &mut b, req.send);
    assert!(sas_of(&ea).is_some() && sas_of(&eb).is_some(), "a new online session");
    let w = a.chat(BOB, "reply", EncryptOptions::default()).unwrap();
    let (_, eb) = relay(&mut a, &mut b, vec![w]);
    assert_eq!(bodies(&eb), ["reply"]);
    // Bob's terminate when Alice is seen online reaches the accepted session.
    let t = b.contact_online(ALICE).unwrap();
    let step = a.handle(now, &stamp(t, BOB));
    assert!(step.events.iter().any(|e| matches!(e, Event::Terminated { offline: true, .. })), "{step:?}");
}

#[test]
fn terminate_all_before_going_offline() {
    let (mut a, mut b) = pair();
    let step = a.start(BOB, Mode::Four).unwrap();
    relay(&mut a, &mut b, step.send);
    assert!(a.has_session(BOB));
    let out = a.terminate_all();
    assert_eq!(out.len(), 1, "one terminate per open session");
    assert!(!a.has_session(BOB));
    let step = b.handle(chrono::Utc::now(), &stamp(out[0].clone(), ALICE));
    assert!(step.events.iter().any(|e| matches!(e, Event::Terminated { .. })), "{step:?}");
    assert!(!b.has_session(ALICE));
}

#[test]
fn negotiations_take_their_key_pairs_from_the_pool() {
    // Issue 9: with a KeyPool attached, starting a negotiation offering several groups and
    // answering one take the pairs generated in the background; both sides still agree.
    use esession_crypto::{CryptoProvider, ModpGroup};
    use esession_xmpp::KeyPool;
    let groups = [ModpGroup::G5, ModpGroup::G2, ModpGroup::G1];
    let small = |k: PrivateKey, peer: &str, pk: PublicKey| {
        let mut cfg = Config::with_identity(k);
        cfg.provider = CryptoProvider { modp: groups.to_vec(), ..CryptoProvider::default() };
        // Small (weak) groups to stay fast: accepted because the test asks for them.
        cfg.support.crypto = CryptoProvider::all();
        let mut trust = MemoryTrust::default();
        trust.trust(peer, pk);
        let stores = EngineStores {
            trust: Box::new(trust),
            retained: Box::new(MemoryRetained::default()),
            replay: Box::new(MemoryReplay::default()),
        };
        Engine::new(cfg, stores)
    };
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let (ap, bp) = (ak.public_key(), bk.public_key());
    let (mut a, mut b) = (small(ak, "bob@example.com", bp), small(bk, "alice@example.org", ap));
    a.set_key_pool(KeyPool::spawn(&groups, 2).unwrap());
    b.set_key_pool(KeyPool::spawn(&groups, 2).unwrap());
    for e in [&a, &b] {
        assert!(e.key_pool().unwrap().wait_full(std::time::Duration::from_secs(60)));
    }
    let step = a.start(BOB, Mode::Four).unwrap();
    for g in groups {
        let s = a.key_pool().unwrap().stats(g);
        assert_eq!((s.served, s.missed), (1, 0), "one pooled pair of modp {g} went into the request");
    }
    let (ea, eb) = relay(&mut a, &mut b, step.send);
    assert_eq!(sas_of(&ea).unwrap(), sas_of(&eb).unwrap());
    assert!(sas_of(&ea).unwrap().is_some());
    // Bob chose the strongest group and took one pooled pair of it, none of the others.
    let served: Vec<u64> = groups.iter().map(|g| b.key_pool().unwrap().stats(*g).served).collect();
    assert_eq!(served, [1, 0, 0]);
    let w = a.chat(BOB, "pooled", EncryptOptions::default()).unwrap();
    let (_, eb) = relay(&mut a, &mut b, vec![w]);
    assert_eq!(bodies(&eb), ["pooled"]);
}
