//! XEP-0187 in one run: Alice signs and publishes her offline options and goes away; Bob
//! verifies them and starts a session in a single stanza; Alice comes back, accepts it once,
//! and drops the replay of the same stanza silently.
//!
//! `cargo run -p esession-offline --example away`

use chrono::{Duration, Utc};
use esession_crypto::{CryptoProvider, PrivateKey, Profile};
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::{BareJid, Config, MemoryTrust, RngEntropy};
use esession_offline::replay::MemoryReplay;
use esession_offline::{Audience, pep, publish, receive, send};
use minidom::Element;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    println!("generating two RSA-2048 identity keys...");
    let alice_key = PrivateKey::generate_rsa(&mut rng, 2048)?;
    let bob_key = PrivateKey::generate_rsa(&mut rng, 2048)?;
    let (alice_public, bob_public) = (alice_key.public_key(), bob_key.public_key());
    let now = Utc::now();

    // Alice goes offline: her options, signed, go to her PEP node; she keeps the secrets.
    let plan = publish::Plan {
        profile: Profile::Xep,
        provider: CryptoProvider::default(),
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![alice_key],
        lifetime: Duration::days(1),
        match_resource: None,
    };
    let (options, secrets) = publish::prepare(&plan, Audience::Subscribers, now, &mut RngEntropy(&mut rng))?;
    let iq = pep::publish(Audience::Subscribers, "pub1", options.clone());
    println!("Alice publishes {} octets of options", String::from(&iq).len());

    // Bob fetches them, checks them against the key he trusts for Alice, and starts.
    let (alice, bob) = (BareJid::new("alice@example.org")?, BareJid::new("bob@example.com")?);
    let mut bob_trust = MemoryTrust::default();
    bob_trust.trust(&alice, alice_public);
    let later = now + Duration::hours(2);
    let verified = send::verify(&options, &alice, &bob_trust, later, Profile::Xep)?;
    let body = Element::builder("body", "jabber:client").append("see you").build();
    let content = Element::builder("message", "jabber:client").append(body).build();
    let (mut stanza, _bob_session) = send::start(
        verified,
        &Config::with_identity(bob_key),
        "thread-1",
        Some(content),
        false,
        later,
        &mut RngEntropy(&mut rng),
    )?;
    println!("Bob sends one stanza of {} octets", String::from(&stanza).len());

    // The server stamps the sender; Alice returns and accepts it once.
    stanza.set_attr(
        minidom::rxml::Namespace::NONE,
        esession_forms::xml::attr_name("from")?,
        "bob@example.com/laptop".to_owned(),
    );
    let mut alice_trust = MemoryTrust::default();
    alice_trust.trust(&bob, bob_public);
    let mut seen = MemoryReplay::default();
    let back = now + Duration::hours(5);
    let (_alice_session, clear) =
        receive::accept(&secrets, &stanza, back, Profile::Xep, &alice_trust, &mut seen)?;
    let clear = clear.ok_or("no content")?.stanza;
    println!("Alice reads: {}", String::from(&clear));
    let again = receive::accept(&secrets, &stanza, back, Profile::Xep, &alice_trust, &mut seen);
    println!("the same stanza again: {}", if again.is_err() { "dropped" } else { "ACCEPTED (wrong)" });
    Ok(())
}
