//! XEP-0187 on arbitrary stanzas: Bob verifying fetched options (PEP items result or publish)
//! and Alice checking an offline start against fixed secrets. Neither may panic; a start that
//! is accepted once must be refused as a replay the second time.
#![no_main]

use chrono::TimeZone;
use esession_crypto::{CryptAlg, DhKeyPair, HashAlg, ModpGroup, Profile, SignAlg};
use esession_forms::esession::Offers;
use esession_forms::names::{Compress, Disclosure, Logging, Security, StanzaType, Version};
use esession_negotiate::MemoryTrust;
use esession_offline::publish::Secrets;
use esession_offline::replay::MemoryReplay;
use esession_offline::{Audience, Check, Error, pep, receive, send};
use libfuzzer_sys::fuzz_target;

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
        let r = send::verify(x, &esession_negotiate::BareJid::new("alice@example.org").unwrap_or_else(|_| unreachable!()), &trust, now, Profile::Xep);
        assert!(r.is_err());
    }
    let Some(secrets) = secrets() else { return };
    let mut replay = MemoryReplay::default();
    if receive::accept(&secrets, &stanza, now, Profile::Xep, &trust, &mut replay).is_ok() {
        let again = receive::accept(&secrets, &stanza, now, Profile::Xep, &trust, &mut replay);
        assert!(matches!(again, Err(Error::Refused(Check::Replay))));
    }
});
