//! `esession demo`: Alice and Bob, two engines in one process relayed in memory
//! ([`esession_xmpp::relay::Relay`], which plays the server: it stamps senders, stores messages
//! for an account that is offline, and keeps PEP items): a 4-message negotiation with RSA
//! identities, the SAS, messages both ways, a re-key, termination, then an offline session
//! (Alice publishes signed options and goes away, Bob fetches them and sends, Alice returns and
//! reads, a replay is dropped). Nothing secret is printed: only sizes, the SAS and the
//! decrypted bodies.

use chrono::Duration;
use esession_crypto::{CryptoProvider, ModpGroup, PrivateKey};
use esession_negotiate::{Config, Mode};
use esession_offline::Audience;
use esession_stanza::EncryptOptions;
use esession_xmpp::relay::Relay;
use esession_xmpp::{Engine, EngineStores, Event, parse_bare};
use std::process::ExitCode;
use std::time::Instant;

const ALICE: &str = "alice@example.org/pda";
const BOB: &str = "bob@example.com/laptop";

pub(crate) fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esession demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(x: impl std::fmt::Display) -> String {
    x.to_string()
}

/// What party `i` reported since the last call, printed; an error on any failure.
fn report(relay: &mut Relay, i: usize, who: &str) -> Result<Vec<Event>, String> {
    let events = relay.take_events(i);
    for e in &events {
        match e {
            Event::Negotiated { sas: Some(sas), .. } => println!("  {who}: session established, SAS {sas}"),
            Event::Negotiated { offline: true, .. } => println!("  {who}: offline session accepted"),
            Event::Negotiated { .. } => println!("  {who}: session established"),
            Event::Message { stanza, .. } => println!(
                "  {who} reads: {:?}",
                stanza.get_child("body", "jabber:client").map(minidom::Element::text).unwrap_or_default()
            ),
            Event::Terminated { why, .. } => println!("  {who}: session ended: {}", ended(*why)),
            Event::Failed { failure, .. } => return Err(format!("{who}: {failure}")),
            Event::Alert { alert, .. } => println!("  {who}: note: {alert}"),
            _ => {}
        }
    }
    Ok(events)
}

fn ended(why: esession_xmpp::Ended) -> &'static str {
    use esession_xmpp::Ended;
    match why {
        Ended::Acknowledged => "terminated, acknowledged by the peer",
        Ended::ByPeer { verified: true } => "terminated by the peer (authenticated)",
        Ended::ByPeer { verified: false } => "terminated by the peer (not authenticated)",
        Ended::Presence => "the contact came online",
        Ended::Object => "one stanza only",
        _ => "ended",
    }
}

fn run() -> Result<(), String> {
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    println!("esession demo: Alice ({ALICE}) and Bob ({BOB}), two engines relayed in memory");
    let t = Instant::now();
    let alice_key = PrivateKey::generate_rsa(&mut rng, 2048).map_err(err)?;
    let bob_key = PrivateKey::generate_rsa(&mut rng, 2048).map_err(err)?;
    let (alice_pub, bob_pub) = (alice_key.public_key(), bob_key.public_key());
    println!("  identity keys: RSA-2048 each ({:.0} ms)", t.elapsed().as_secs_f64() * 1e3);
    let (alice_bare, bob_bare) = (parse_bare(ALICE).map_err(err)?, parse_bare(BOB).map_err(err)?);
    let mut a_stores = EngineStores::in_memory();
    let mut b_stores = EngineStores::in_memory();
    let mut at = esession_negotiate::MemoryTrust::default();
    at.trust(&bob_bare, bob_pub);
    let mut bt = esession_negotiate::MemoryTrust::default();
    bt.trust(&alice_bare, alice_pub);
    a_stores.trust = Box::new(at);
    b_stores.trust = Box::new(bt);
    // Two groups of 2048 bits and more keep the demo quick.
    let provider = CryptoProvider { modp: vec![ModpGroup::G15, ModpGroup::G14], ..CryptoProvider::default() };
    // The key signs the offline options too: a second copy of it for the plan.
    let alice_key_again = PrivateKey::from_pkcs8_pem(&alice_key.to_pkcs8_pem().map_err(err)?).map_err(err)?;
    let mut a_cfg = Config::with_identity(alice_key);
    a_cfg.provider = provider.clone();
    let mut b_cfg = Config::with_identity(bob_key);
    b_cfg.provider = provider;
    let mut relay = Relay::new(chrono::Utc::now());
    let a = relay.add(ALICE, Engine::new(a_cfg, a_stores)).map_err(err)?;
    let b = relay.add(BOB, Engine::new(b_cfg, b_stores)).map_err(err)?;

    // 1. The 4-message negotiation.
    println!("1. 4-message negotiation (SIGMA-R, RSA identities)");
    let t = Instant::now();
    relay.start(a, BOB, Mode::Four).map_err(err)?;
    let n = relay.drive();
    let (ea, eb) = (report(&mut relay, a, "Alice")?, report(&mut relay, b, "Bob")?);
    let sas = |ev: &[Event]| {
        ev.iter().find_map(|e| match e {
            Event::Negotiated { sas, .. } => sas.clone(),
            _ => None,
        })
    };
    if sas(&ea).is_none() || sas(&ea) != sas(&eb) {
        return Err("the SAS differ".into());
    }
    println!("  {n} stanzas, {:.0} ms; both show the same SAS", t.elapsed().as_secs_f64() * 1e3);

    // 2. Messages both ways, a re-key, termination with acknowledgement.
    println!("2. stanzas (XEP-0200)");
    relay.chat(a, BOB, "Hello, Bob!").map_err(err)?;
    relay.drive();
    report(&mut relay, b, "Bob")?;
    relay.chat(b, ALICE, "Hi Alice, ünïcødé works too").map_err(err)?;
    relay.drive();
    report(&mut relay, a, "Alice")?;
    let w = relay
        .engine(a)
        .chat(&bob_bare, "after a re-key", EncryptOptions { rekey: true, publish_old: false })
        .map_err(err)?;
    relay.inject(a, w);
    relay.drive();
    report(&mut relay, b, "Bob")?;
    let w = relay.engine(a).terminate(&bob_bare).map_err(err)?;
    relay.inject(a, w);
    relay.drive();
    report(&mut relay, a, "Alice")?;
    report(&mut relay, b, "Bob")?;

    // 3. Offline: Alice publishes and goes away; Bob fetches, verifies and sends; Alice returns.
    println!("3. offline session (XEP-0187)");
    let plan = relay.engine(a).plan(vec![alice_key_again], Duration::days(1), None).map_err(err)?;
    let mut sets = relay.publish(a, &plan, &[Audience::Subscribers]).map_err(err)?;
    relay.disconnect(a);
    relay.drive();
    let secrets = sets.pop().ok_or("nothing published")?.secrets;
    println!("  Alice published her signed options and went offline");
    // Bob fetches them from Alice's PEP node (the relay answers as a server would), checks them
    // and makes the start and a second stanza in that session.
    let content = esession_xmpp::engine::body_message("see you when you are back");
    let sent = relay.offline_start(b, ALICE, content, &["and a second message"]).map_err(err)?;
    println!("  Bob fetched her options from PEP: signed by the key he trusts for her, not expired");
    let start = sent.first().cloned().ok_or("no start")?;
    for s in sent {
        relay.inject(b, s);
    }
    relay.drive();
    relay.take_events(b);
    println!(
        "  Bob started an offline session and sent a second message in it (the relay stores both for Alice)"
    );
    relay.advance(Duration::hours(2));
    println!("  two hours later Alice is back (withdraw, then presence)");
    relay.come_back(a, Some(secrets)).map_err(err)?;
    report(&mut relay, a, "Alice")?;
    // The same start again is a replay: dropped silently.
    relay.inject(b, start);
    relay.drive();
    let again = relay.take_events(a);
    let dropped =
        again.iter().any(|e| matches!(e, Event::Failed { failure: esession_xmpp::Failure::Offline(_), .. }));
    println!("  the same start delivered again is dropped silently: {dropped}");
    if !dropped {
        return Err("a replayed offline start was not dropped".into());
    }
    Ok(())
}
