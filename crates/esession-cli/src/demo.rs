//! `esession demo`: Alice and Bob in one process over an in-memory router: a 4-message
//! negotiation with RSA identities, the SAS, messages both ways, a re-key, termination, then an
//! offline session (Alice publishes signed options and goes away, Bob sends, Alice returns).
//! Nothing secret is printed: only sizes, the SAS and the decrypted bodies.

use chrono::Duration;
use esession_crypto::{CryptoProvider, ModpGroup, PrivateKey};
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::{
    Config, Established, Initiator, MemoryRetained, MemoryTrust, Mode, Output, Received, Responder,
    RngEntropy, Stores,
};
use esession_offline::away::{Outbox, come_back, go_offline};
use esession_offline::publish::Plan;
use esession_offline::replay::MemoryReplay;
use esession_offline::{Audience, pep, send};
use esession_stanza::EncryptOptions;
use minidom::Element;
use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;
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

type Rng = getrandom::rand_core::UnwrapErr<getrandom::SysRng>;

fn chat(to: &str, thread: &str, body: &str) -> Element {
    let mut m = esession_negotiate::wire::message(
        to,
        thread,
        vec![Element::builder("body", "jabber:client").append(body).build()],
    );
    if let Ok(n) = esession_forms::xml::attr_name("type") {
        m.set_attr(minidom::rxml::Namespace::NONE, n, "chat".to_owned());
    }
    m
}

fn stamp(mut s: Element, from: &str) -> Element {
    if let Ok(n) = esession_forms::xml::attr_name("from") {
        s.set_attr(minidom::rxml::Namespace::NONE, n, from.to_owned());
    }
    s
}

fn body(e: &Element) -> String {
    e.get_child("body", "jabber:client").map(Element::text).unwrap_or_default()
}

fn run() -> Result<(), String> {
    let mut rng: Rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let e = |x: &dyn std::fmt::Display| x.to_string();
    println!("esession demo: Alice ({ALICE}) and Bob ({BOB}) over an in-memory router");
    let t = Instant::now();
    let alice_key = PrivateKey::generate_rsa(&mut rng, 2048).map_err(|x| e(&x))?;
    let bob_key = PrivateKey::generate_rsa(&mut rng, 2048).map_err(|x| e(&x))?;
    let (alice_pub, bob_pub) = (alice_key.public_key(), bob_key.public_key());
    println!("  identity keys: RSA-2048 each ({:.0} ms)", t.elapsed().as_secs_f64() * 1e3);

    let mut a_trust = MemoryTrust::default();
    a_trust.trust("bob@example.com", bob_pub);
    let mut b_trust = MemoryTrust::default();
    b_trust.trust("alice@example.org", alice_pub);
    let (mut a_ret, mut b_ret) = (MemoryRetained::default(), MemoryRetained::default());
    let provider = CryptoProvider { modp: vec![ModpGroup::G14, ModpGroup::G5], ..CryptoProvider::default() };
    let mut a_cfg = Config::with_identity(alice_key);
    a_cfg.provider = provider.clone();
    let mut b_cfg = Config::with_identity(bob_key);
    b_cfg.provider = provider.clone();
    let b_cfg = Arc::new(b_cfg);

    // 1. The 4-message negotiation, routed in memory.
    let t = Instant::now();
    let a_cfg = Arc::new(a_cfg);
    let mut alice = Initiator::new(a_cfg.clone(), BOB, "demo-thread");
    let mut bob = Responder::new(b_cfg.clone(), ALICE, "demo-thread");
    alice.start(Mode::Four, &mut RngEntropy(&mut rng)).map_err(|x| e(&x))?;
    let (mut a_est, mut b_est): (Option<Box<Established>>, Option<Box<Established>>) = (None, None);
    let mut wire: VecDeque<(bool, Element)> = VecDeque::new();
    let mut stanzas = 0;
    loop {
        while let Some(o) = alice.poll_output() {
            match o {
                Output::Send(s) => wire.push_back((true, stamp(s, ALICE))),
                Output::Established(x) => a_est = Some(x),
                Output::Rejected(x) => return Err(format!("Alice: {x}")),
                _ => {}
            }
        }
        while let Some(o) = bob.poll_output() {
            match o {
                Output::Send(s) => wire.push_back((false, stamp(s, BOB))),
                Output::Established(x) => b_est = Some(x),
                Output::Rejected(x) => return Err(format!("Bob: {x}")),
                _ => {}
            }
        }
        let Some((from_alice, s)) = wire.pop_front() else { break };
        stanzas += 1;
        let r = if from_alice {
            bob.handle(
                0,
                &s,
                &mut RngEntropy(&mut rng),
                &mut Stores { trust: &mut b_trust, retained: &mut b_ret },
            )
        } else {
            alice.handle(
                0,
                &s,
                &mut RngEntropy(&mut rng),
                &mut Stores { trust: &mut a_trust, retained: &mut a_ret },
            )
        };
        r.map_err(|x| e(&x))?;
    }
    let (Some(mut a), Some(mut b)) = (a_est, b_est) else {
        return Err("the negotiation did not finish".into());
    };
    let sas = |x: &Established| x.sas.as_ref().map(ToString::to_string).unwrap_or_default();
    println!(
        "  4-message negotiation: {stanzas} stanzas, {:.0} ms; SAS Alice {} / Bob {} (compare them by voice)",
        t.elapsed().as_secs_f64() * 1e3,
        sas(&a),
        sas(&b)
    );

    // 2. Messages both ways, a re-key, termination.
    let w = a.encrypt(
        &chat(BOB, &a.thread, "Hello Bob, this is encrypted."),
        EncryptOptions::default(),
        &mut rng,
    );
    let w = w.map_err(|x| e(&x))?;
    println!("  Alice -> Bob: {} octets on the wire", String::from(&w).len());
    deliver(&mut b, &w, "Bob", &mut rng)?;
    let w = b.encrypt(
        &chat(ALICE, &b.thread, "Hi Alice, a fresh key comes with this one."),
        EncryptOptions { rekey: true, publish_old: false },
        &mut rng,
    );
    deliver(&mut a, &w.map_err(|x| e(&x))?, "Alice (after Bob's re-key)", &mut rng)?;
    let w =
        a.encrypt(&chat(BOB, &a.thread, "Got it, under the new keys."), EncryptOptions::default(), &mut rng);
    deliver(&mut b, &w.map_err(|x| e(&x))?, "Bob", &mut rng)?;
    let term = a.terminate(false, &mut rng).map_err(|x| e(&x))?;
    match b.receive(&term, false, &mut rng).map_err(|x| e(&x))? {
        Received::Terminated { ack: Some(ack), .. } => {
            a.receive(&ack, false, &mut rng).map_err(|x| e(&x))?;
            println!("  terminated by Alice, acknowledged by Bob; both sides destroyed their keys");
        }
        _ => return Err("no acknowledgement".into()),
    }

    // 3. Offline: Alice publishes signed options and goes away; Bob sends; Alice returns.
    // Her identity key moves from the online configuration to the offline plan.
    drop(alice);
    let alice_plan_key = Arc::try_unwrap(a_cfg)
        .ok()
        .and_then(|mut c| c.identity.take())
        .ok_or("Alice's key is still in use")?;
    let now = chrono::Utc::now();
    let plan = Plan {
        profile: esession_crypto::Profile::Xep,
        provider,
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![alice_plan_key],
        lifetime: Duration::hours(24),
        match_resource: None,
    };
    let mut sets =
        go_offline(&plan, &[Audience::Subscribers], now, &mut RngEntropy(&mut rng)).map_err(|x| e(&x))?;
    let set = sets.pop().ok_or("nothing published")?;
    let options = set.iqs.last().and_then(pep::options_in).ok_or("no options")?.clone();
    println!("  Alice published signed offline options (valid 24 h) and went offline");
    let v = send::verify(
        &options,
        "alice@example.org",
        &b_trust,
        now + Duration::hours(1),
        esession_crypto::Profile::Xep,
    )
    .map_err(|x| e(&x))?;
    let mut outbox = Outbox::new();
    let content = Element::builder("message", "jabber:client")
        .append(Element::builder("body", "jabber:client").append("Sent while you were away."))
        .build();
    let start = outbox
        .start(
            &v,
            &b_cfg,
            "offline-thread",
            Some(content),
            false,
            now + Duration::hours(1),
            &mut RngEntropy(&mut rng),
        )
        .map_err(|x| e(&x))?;
    let later = outbox
        .send(
            "alice@example.org",
            &Element::builder("message", "jabber:client")
                .append(Element::builder("body", "jabber:client").append("And one more."))
                .build(),
            &mut rng,
        )
        .map_err(|x| e(&x))?;
    let bye = outbox.contact_online("alice@example.org", &mut rng).map_err(|x| e(&x))?.ok_or("no session")?;
    println!(
        "  Bob verified the options' signature and sent a one-shot key exchange with content, one more message and a terminate"
    );
    let queue = vec![stamp(start, BOB), stamp(later, BOB), stamp(bye, BOB)];
    let mut replay = MemoryReplay::default();
    let back = come_back(
        Some(set.secrets),
        None,
        &queue,
        now + Duration::hours(2),
        esession_crypto::Profile::Xep,
        &a_trust,
        &mut replay,
        &mut rng,
    )
    .map_err(|x| e(&x))?;
    for s in &back.sessions {
        for c in &s.contents {
            println!("  Alice, back online, reads: {:?}", body(c));
        }
        println!("  the offline session ended: {}", s.ended);
    }
    let again = come_back(
        None,
        None,
        &queue[..1],
        now + Duration::hours(2),
        esession_crypto::Profile::Xep,
        &a_trust,
        &mut replay,
        &mut rng,
    )
    .map_err(|x| e(&x))?;
    println!("  the same start delivered again is dropped silently ({} dropped)", again.dropped.len());
    Ok(())
}

fn deliver(to: &mut Established, w: &Element, who: &str, rng: &mut Rng) -> Result<(), String> {
    match to.receive(w, false, rng).map_err(|x| x.to_string())? {
        Received::Stanza { stanza, .. } => {
            println!("  {who} reads: {:?}", body(&stanza));
            Ok(())
        }
        _ => Err("unexpected termination".into()),
    }
}
