//! A 4-message XEP-0116 negotiation (SIGMA-R) between Alice and Bob, relayed in memory: the
//! stanzas each sends, the SAS both show, then one message through the established sessions.
//!
//! `cargo run -p esession-negotiate --example handshake`

use esession_negotiate::{
    Config, Initiator, Jid, MemoryRetained, MemoryTrust, Mode, Output, Responder, RngEntropy, Stores,
};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let (alice_jid, bob_jid) = (Jid::new("alice@example.org/pda")?, Jid::new("bob@example.com/laptop")?);
    let mut alice = Initiator::new(Arc::new(Config::default()), bob_jid, "thread-1");
    let mut bob = Responder::new(Arc::new(Config::default()), alice_jid, "thread-1");
    let (mut at, mut ar) = (MemoryTrust::default(), MemoryRetained::default());
    let (mut bt, mut br) = (MemoryTrust::default(), MemoryRetained::default());
    let now = chrono::Utc::now();
    alice.start(Mode::Four, &mut RngEntropy(&mut rng))?;

    let (mut a_est, mut b_est) = (None, None);
    for _ in 0..4 {
        while let Some(o) = alice.poll_output() {
            match o {
                Output::Send(s) => {
                    println!("alice -> bob: {} octets", String::from(&s).len());
                    bob.handle(
                        now,
                        &s,
                        &mut RngEntropy(&mut rng),
                        &mut Stores { trust: &mut bt, retained: &mut br },
                    )?;
                }
                Output::Established(e) => a_est = Some(e),
                other => println!("alice: {other:?}"),
            }
        }
        while let Some(o) = bob.poll_output() {
            match o {
                Output::Send(s) => {
                    println!("bob -> alice: {} octets", String::from(&s).len());
                    alice.handle(
                        now,
                        &s,
                        &mut RngEntropy(&mut rng),
                        &mut Stores { trust: &mut at, retained: &mut ar },
                    )?;
                }
                Output::Established(e) => b_est = Some(e),
                other => println!("bob: {other:?}"),
            }
        }
    }
    let (mut a, mut b) = (a_est.ok_or("Alice did not finish")?, b_est.ok_or("Bob did not finish")?);
    println!("SAS shown to Alice: {:?}", a.sas());
    println!("SAS shown to Bob:   {:?}", b.sas());
    if a.sas() != b.sas() {
        return Err("the SAS differ".into());
    }

    // The sessions now protect stanzas (XEP-0200).
    let msg = esession_forms::xml::parse(
        "<message xmlns='jabber:client' type='chat'><thread>thread-1</thread><body>hi Bob</body></message>",
    )?;
    let wire = a.encrypt(&msg, Default::default(), &mut rng)?;
    if let esession_negotiate::Received::Stanza { stanza, .. } = b.receive(&wire, false, &mut rng)? {
        println!("Bob reads: {}", String::from(&stanza));
    }
    Ok(())
}
