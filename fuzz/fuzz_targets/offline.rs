//! XEP-0187 on arbitrary stanzas: Bob verifying fetched options (PEP items result or publish)
//! and Alice checking an offline start against fixed secrets. Neither may panic; a start that
//! is accepted once must be refused as a replay the second time.
//!
//! Then the same input as hostile stanzas around a genuine offline session, through engines
//! relayed in memory (`esession_fuzz::pair`): Alice publishes her options and goes away; Bob
//! fetches them and sends an offline start ("while away") and a later stanza ("later"); the
//! input, as from Bob, is stored for Alice before the start and again before the later stanza,
//! and handed to her once more after her return. Invariants: no panic; what Alice is told as
//! protected is exactly what Bob sent, in order, each once; the start is delivered whatever
//! came before it; afterwards a new online negotiation succeeds and carries a message.
#![no_main]

use chrono::TimeZone;
use esession_crypto::{CryptAlg, DhKeyPair, HashAlg, ModpGroup, Profile, SignAlg};
use esession_forms::esession::Offers;
use esession_forms::names::{Compress, Disclosure, Logging, Security, StanzaType, Version};
use esession_fuzz::{ALICE, bodies, pair, renegotiates};
use esession_negotiate::MemoryTrust;
use esession_offline::publish::Secrets;
use esession_offline::replay::MemoryReplay;
use esession_offline::{Audience, Check, Error, pep, receive, send};
use libfuzzer_sys::fuzz_target;
use minidom::Element;

fn secrets() -> Option<Secrets> {
    let x = [0x5au8; 40];
    Some(Secrets {
        audience: Audience::Subscribers,
        offers: Offers {
            logging: vec![Logging::May, Logging::MustNot],
            disclosure: vec![Disclosure::Never],
            security: vec![Security::E2e],
            modp: vec![ModpGroup::G5],
            crypt_algs: vec![CryptAlg::Aes128Ctr],
            hash_algs: vec![HashAlg::Sha256],
            sign_algs: vec![SignAlg::RsaSha256, SignAlg::DsaSha256],
            compress: vec![Compress::None],
            stanzas: vec![StanzaType::Message],
            ver: vec![Version::V1_0],
            rekey_freq: 1,
        },
        na: vec![0x06; 32],
        pairs: vec![(ModpGroup::G5, DhKeyPair::from_exponent(ModpGroup::G5, &x).ok()?)],
        expires: chrono::Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(stanza) = esession_forms::xml::parse(text) else { return };
    let Some(now) = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single() else { return };
    let trust = MemoryTrust::default();
    if let Some(x) = pep::options_in(&stanza) {
        // Nobody is trusted, so nothing may verify.
        let r = send::verify(
            x,
            &esession_negotiate::BareJid::new("alice@example.org").unwrap_or_else(|_| unreachable!()),
            &trust,
            now,
            Profile::Xep,
        );
        assert!(r.is_err());
    }
    let Some(secrets) = secrets() else { return };
    let mut replay = MemoryReplay::default();
    if receive::accept(&secrets, &stanza, now, Profile::Xep, &trust, &mut replay).is_ok() {
        let again = receive::accept(&secrets, &stanza, now, Profile::Xep, &trust, &mut replay);
        assert!(matches!(again, Err(Error::Refused(Check::Replay))));
    }
    through_engines(stanza);
});

/// The input `junk` stored for Alice around Bob's offline session, and handed to her on return.
fn through_engines(mut junk: Element) {
    esession_fuzz::set(&mut junk, "to", ALICE);
    let mut r = pair(Profile::Xep, true, 1);
    let Ok(plan) = r.engine(0).plan(vec![esession_fuzz::key()], chrono::Duration::hours(24), None) else {
        unreachable!()
    };
    let Ok(mut sets) = r.publish(0, &plan, &[Audience::Subscribers]) else { unreachable!() };
    r.disconnect(0);
    r.drive();
    let content = esession_xmpp::engine::body_message("while away");
    let Ok(mut genuine) = r.offline_start(1, "alice@example.org", content, &["later"]) else {
        panic!("Bob could not start an offline session: {:?}", r.events(1));
    };
    let later = genuine.pop().unwrap_or_else(|| unreachable!());
    for s in [junk.clone()].into_iter().chain(genuine).chain([junk.clone(), later]) {
        r.inject(1, s);
    }
    r.drive();
    r.advance(chrono::Duration::minutes(30));
    // Alice returns; Bob's terminate on her presence is not part of this.
    r.set_filter(Box::new(|from, s| (from == 0 || s.name() != "message").then_some(s)));
    assert!(r.come_back(0, Some(sets.remove(0).secrets)).is_ok());
    r.inject(1, junk);
    r.drive();
    let told = bodies(&r.take_events(0));
    assert!(
        told == ["while away", "later"] || told == ["while away"],
        "Alice was told {told:?} as protected"
    );
    renegotiates(&mut r);
}
