//! Two engines (the sans-IO core of `Client`) negotiate a 4-message session and exchange a
//! message through an in-memory relay that plays the server: what an application that brings
//! its own XMPP connection does with `Engine`, without a server.
//!
//! `cargo run -p esession-xmpp --example relay`

use esession_negotiate::{Config, Mode};
use esession_xmpp::relay::Relay;
use esession_xmpp::{Engine, EngineStores, Event};

fn main() -> Result<(), esession_xmpp::Error> {
    let mut relay = Relay::new(chrono::Utc::now());
    let a = relay.add("alice@example.org/pda", Engine::new(Config::default(), EngineStores::in_memory()))?;
    let b = relay.add("bob@example.com/laptop", Engine::new(Config::default(), EngineStores::in_memory()))?;
    relay.start(a, "bob@example.com/laptop", Mode::Four)?;
    relay.drive();
    relay.chat(a, "bob@example.com", "hello from Alice")?;
    relay.drive();
    for (name, party) in [("alice", a), ("bob", b)] {
        for event in relay.events(party) {
            match event {
                Event::Negotiated { sas, .. } => println!("{name}: negotiated, SAS {sas:?}"),
                e => match e.body() {
                    Some(body) => println!("{name}: message {body:?}"),
                    None => println!("{name}: {e:?}"),
                },
            }
        }
    }
    Ok(())
}
