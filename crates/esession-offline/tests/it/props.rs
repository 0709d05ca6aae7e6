//! Properties of the options form: whatever Alice offers round-trips through the wire text, its
//! signatures verify for Bob, and any change to a signed value is refused.

use crate::keys;
use chrono::{Duration, TimeZone, Utc};
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup, Profile};
use esession_forms::dataform::DataForm;
use esession_forms::esession::OfflineOptions;
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::{MemoryTrust, RngEntropy};
use esession_offline::publish::{Plan, prepare};
use esession_offline::{Audience, Check, Error, send};
use proptest::prelude::*;

fn subset<T: Clone + core::fmt::Debug + 'static>(all: Vec<T>) -> impl Strategy<Value = Vec<T>> {
    let n = all.len();
    proptest::sample::subsequence(all, 1..=n).prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn options_round_trip_and_their_signatures_cover_every_value(
        modp in subset(vec![ModpGroup::G1, ModpGroup::G2, ModpGroup::G5]),
        crypt in subset(vec![CryptAlg::Aes128Ctr, CryptAlg::Aes256Ctr, CryptAlg::Twofish256Ctr, CryptAlg::Serpent128Ctr]),
        hash in subset(vec![HashAlg::Sha256, HashAlg::Whirlpool]),
        logging in subset(vec![Logging::May, Logging::MustNot]),
        stanzas in subset(vec![StanzaType::Message, StanzaType::Presence, StanzaType::Iq]),
        rekey_freq in 1u32..=u32::MAX,
        match_resource in proptest::option::of("[a-z0-9]{1,12}"),
        hours in 1i64..1000,
        dsa_first: bool,
        seed: u64,
        flip: usize,
    ) {
        let (rsa, dsa) = keys();
        let (rsa_pub, dsa_pub) = (rsa.public_key(), dsa.public_key());
        let plan = Plan {
            profile: Profile::Xep,
            provider: CryptoProvider { modp: modp.clone(), crypt_algs: crypt, hash_algs: hash, ..CryptoProvider::default() },
            logging,
            compress: vec![Compress::None],
            stanzas,
            rekey_freq,
            keys: if dsa_first { vec![dsa, rsa] } else { vec![rsa, dsa] },
            lifetime: Duration::hours(hours),
            match_resource,
        };
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let result = prepare(&plan, Audience::Everyone, now, &mut RngEntropy(&mut TestRng::new(seed)));
        if plan.match_resource.is_none() && plan.stanzas.iter().all(|s| *s == StanzaType::Iq) {
            // iq is never offered offline, so nothing would be left to offer.
            prop_assert!(matches!(result, Err(Error::Config(_))));
            return Ok(());
        }
        let (x, secrets) = result.unwrap();
        // Through the wire text and back.
        let text = String::from(&x);
        let back = esession_forms::xml::parse(&text).unwrap();
        let parsed = OfflineOptions::parse(&DataForm::parse(&back).unwrap()).unwrap();
        prop_assert_eq!(parsed.to_form(Profile::Xep).to_element(), x.clone());
        prop_assert_eq!(&parsed.offers, &secrets.offers);
        prop_assert_eq!(parsed.dhkeys.len(), modp.len());
        prop_assert!(!parsed.offers.stanzas.contains(&StanzaType::Iq));
        if parsed.match_resource.is_some() {
            prop_assert_eq!(&parsed.offers.stanzas, &vec![StanzaType::Message]);
        }
        // Bob verifies with either trusted key, until the expiry.
        for key in [rsa_pub.clone(), dsa_pub.clone()] {
            let mut trust = MemoryTrust::default();
            trust.trust(&crate::bare("alice@example.org"), key.clone());
            let v = send::verify(&back, &crate::bare("alice@example.org/pda"), &trust, now + Duration::hours(hours) - Duration::seconds(1), Profile::Xep).unwrap();
            prop_assert_eq!(v.signer(), Some(&key));
            prop_assert_eq!(
                send::verify(&back, &crate::bare("alice@example.org"), &trust, now + Duration::hours(hours), Profile::Xep).err(),
                Some(Error::Refused(Check::OptionsExpired))
            );
        }
        // One character changed inside any signed value: refused (or no longer a form).
        let mut trust = MemoryTrust::default();
        trust.trust(&crate::bare("alice@example.org"), rsa_pub);
        trust.trust(&crate::bare("alice@example.org"), dsa_pub);
        let signs_at = text.find("var=\"signs\"").or_else(|| text.find("var='signs'")).unwrap();
        let values: Vec<usize> = text[..signs_at].match_indices("<value>").map(|(i, _)| i + 7).collect();
        let at = values[flip % values.len()];
        let mut b = text.clone().into_bytes();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(b).unwrap();
        if let Ok(e) = esession_forms::xml::parse(&changed) {
            let r = send::verify(&e, &crate::bare("alice@example.org"), &trust, now, Profile::Xep);
            prop_assert!(matches!(r, Err(Error::Refused(_))), "{:?}", r.map(|v| v.signer().cloned()));
        }
    }
}
