//! Choosing among a peer's offers (XEP-0116 §4.5.1, I6): for each field, the first of the
//! offerer's options, in the offerer's preference order, that we support; and, when a field has
//! no acceptable option, the list of every such field for the `<not-acceptable/>` error (§4.4).

use crate::esession::{Offers, Request, Response};
use crate::names::{
    Compress, CryptAlg, Disclosure, HashAlg, Logging, ModpGroup, PubkeyMethod, SasAlg, Security, SignAlg,
    StanzaType, Version,
};
use esession_crypto::CryptoProvider;

/// The first option of `offer` (offerer's order) that `supported` contains.
#[must_use]
pub fn first_supported<T: PartialEq + Clone>(offer: &[T], supported: &[T]) -> Option<T> {
    offer.iter().find(|o| supported.contains(o)).cloned()
}

/// Every option of `offer` (offerer's order) that `supported` contains.
#[must_use]
pub fn all_supported<T: PartialEq + Clone>(offer: &[T], supported: &[T]) -> Vec<T> {
    offer.iter().filter(|o| supported.contains(o)).cloned().collect()
}

/// What a responder accepts. [`Support::default`] is everything this build implements that is
/// safe in `Profile::Xep` (see [`CryptoProvider::default`]); [`Support::for_profile`] the same
/// for a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// Algorithms.
    pub crypto: CryptoProvider,
    /// `logging` values accepted.
    pub logging: Vec<Logging>,
    /// `disclosure` values accepted (`never` only: this implementation has no back door, §7.6).
    pub disclosure: Vec<Disclosure>,
    /// `security` values accepted for an ESession (`e2e`).
    pub security: Vec<Security>,
    /// `compress`.
    pub compress: Vec<Compress>,
    /// `stanzas`.
    pub stanzas: Vec<StanzaType>,
    /// `ver`.
    pub ver: Vec<Version>,
    /// How we accept the initiator to identify (`init_pubkey`).
    pub init_pubkey: Vec<PubkeyMethod>,
    /// Which signature algorithms we hold a key for, to identify ourselves (`resp_pubkey` key or
    /// hash); empty when we have no identity key.
    pub own_keys: Vec<SignAlg>,
    /// Whether we may identify ourselves with `none`.
    pub resp_none: bool,
    /// The smallest `rekey_freq` we accept.
    pub rekey_freq_min: u32,
    /// Whether we accept 3-message negotiations.
    pub three_message: bool,
    /// Whether a 3-message request may offer the identity method `none`, which XEP-0116 §4.3
    /// forbids but the deployed dialect (`Profile::Gajim`: Gajim and the esession testsuite)
    /// offers; a real method is still chosen whenever one is offered. Off in `Profile::Xep`.
    pub none_in_three_message: bool,
}

impl Default for Support {
    fn default() -> Self {
        Self::for_profile(esession_crypto::Profile::Xep)
    }
}

impl Support {
    /// The safe default of a profile ([`CryptoProvider::for_profile`]).
    #[must_use]
    pub fn for_profile(profile: esession_crypto::Profile) -> Self {
        Self {
            crypto: CryptoProvider::for_profile(profile),
            logging: vec![Logging::May, Logging::MustNot],
            disclosure: vec![Disclosure::Never],
            security: vec![Security::E2e],
            compress: vec![Compress::None],
            stanzas: vec![StanzaType::Message, StanzaType::Presence, StanzaType::Iq],
            ver: vec![Version::V1_0],
            init_pubkey: vec![PubkeyMethod::Key, PubkeyMethod::Hash, PubkeyMethod::None],
            own_keys: Vec::new(),
            resp_none: true,
            rekey_freq_min: 1,
            three_message: true,
            none_in_three_message: profile == esession_crypto::Profile::Gajim,
        }
    }
}

/// The responder's choice, one value per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    /// `logging`.
    pub logging: Logging,
    /// `disclosure`.
    pub disclosure: Disclosure,
    /// `security`.
    pub security: Security,
    /// `modp`, with its position among the offered groups (which He/e goes with it).
    pub modp: (ModpGroup, usize),
    /// `crypt_algs`.
    pub crypt_alg: CryptAlg,
    /// `hash_algs`.
    pub hash_alg: HashAlg,
    /// `sign_algs` (None when both identities are `none`).
    pub sign_alg: Option<SignAlg>,
    /// `compress`.
    pub compress: Compress,
    /// `stanzas`: every offered type we support.
    pub stanzas: Vec<StanzaType>,
    /// `ver`.
    pub ver: Version,
    /// `init_pubkey`.
    pub init_pubkey: PubkeyMethod,
    /// `resp_pubkey`.
    pub resp_pubkey: PubkeyMethod,
    /// `sas_algs` (4-message).
    pub sas_alg: Option<SasAlg>,
    /// `rekey_freq` = max(offered, our minimum).
    pub rekey_freq: u32,
}

impl Choices {
    /// Bob's response form for these choices (XEP-0116 §4.5, XEP-0187 §3.3): N_B, d, the
    /// echoed `nonce` (N_A) and the counter C_A; `identity` and `mac` are filled in later.
    /// `accept` is `Some(true)` online and absent offline (set it with struct update).
    #[must_use]
    pub fn response(&self, my_nonce: Vec<u8>, d: Vec<u8>, nonce: Vec<u8>, counter: u128) -> Response {
        Response {
            accept: Some(true),
            logging: self.logging.clone(),
            disclosure: self.disclosure.clone(),
            security: self.security.clone(),
            modp: self.modp.0,
            crypt_alg: self.crypt_alg.clone(),
            hash_alg: self.hash_alg.clone(),
            sign_alg: self.sign_alg.clone(),
            compress: self.compress.clone(),
            stanzas: self.stanzas.clone(),
            init_pubkey: Some(self.init_pubkey.clone()),
            resp_pubkey: Some(self.resp_pubkey.clone()),
            ver: self.ver.clone(),
            rekey_freq: self.rekey_freq,
            my_nonce,
            sas_alg: self.sas_alg.clone(),
            d,
            nonce,
            counter,
            terminate: false,
            identity: None,
            mac: None,
        }
    }
}

/// Chooses one option per field of a request, or names every field without an acceptable
/// option (in the request's field order).
///
/// # Errors
/// The names of the unacceptable fields.
pub fn choose(req: &Request, support: &Support) -> Result<Choices, Vec<&'static str>> {
    let four = req.is_four_message();
    let mut bad: Vec<&'static str> = Vec::new();
    let o: &Offers = &req.offers;
    let p = support.crypto.sanitized();
    macro_rules! pick {
        ($var:literal, $offer:expr, $sup:expr) => {{
            let v = first_supported($offer, $sup);
            if v.is_none() {
                bad.push($var);
            }
            v
        }};
    }
    let logging = pick!("logging", &o.logging, &support.logging);
    // X116-7.6-03: `disabled` is never negotiated (this implementation has nothing to disclose,
    // so nothing it would be illegal to divulge), whatever the configuration accepts.
    let disclosure =
        o.disclosure.iter().find(|d| **d != Disclosure::Disabled && support.disclosure.contains(d)).cloned();
    if disclosure.is_none() {
        bad.push("disclosure");
    }
    let security = pick!("security", &o.security, &support.security);
    let modp = o.modp.iter().enumerate().find(|(_, g)| p.modp.contains(g)).map(|(i, g)| (*g, i));
    if modp.is_none() {
        bad.push("modp");
    }
    let crypt_alg = pick!("crypt_algs", &o.crypt_algs, &p.crypt_algs);
    let hash_alg = pick!("hash_algs", &o.hash_algs, &p.hash_algs);
    let compress = pick!("compress", &o.compress, &support.compress);
    let stanzas = all_supported(&o.stanzas, &support.stanzas);
    if stanzas.is_empty() {
        bad.push("stanzas");
    }
    // 'none' MUST NOT be used with a 3-message negotiation (§4.3 item 9).
    // X116-4.3-07: never none with 3-message (the deployed dialect offers it: then a real
    // method is chosen whenever one is offered, `none` only when nothing else is).
    let allowed = |m: &PubkeyMethod| four || *m != PubkeyMethod::None;
    let dialect = !four && support.none_in_three_message;
    let pick_method = |offered: &[PubkeyMethod], ok: &dyn Fn(&PubkeyMethod) -> bool| {
        offered
            .iter()
            .find(|m| allowed(m) && ok(m))
            .or_else(|| offered.iter().find(|m| dialect && **m == PubkeyMethod::None && ok(m)))
            .cloned()
    };
    let init_pubkey = pick_method(&req.init_pubkey, &|m| support.init_pubkey.contains(m));
    if init_pubkey.is_none() {
        bad.push("init_pubkey");
    }
    // resp_pubkey: the first of Alice's methods we can provide; key/hash need a key of an
    // offered algorithm (I6).
    let usable_sign: Vec<SignAlg> = o
        .sign_algs
        .iter()
        .filter(|a| p.sign_algs.contains(a) && support.own_keys.contains(a))
        .cloned()
        .collect();
    let resp_pubkey = pick_method(&req.resp_pubkey, &|m| match m {
        PubkeyMethod::None => support.resp_none,
        PubkeyMethod::Key | PubkeyMethod::Hash => !usable_sign.is_empty(),
        PubkeyMethod::Unknown(_) => false,
    });
    if resp_pubkey.is_none() {
        bad.push("resp_pubkey");
    }
    let needs_sign = |m: &Option<PubkeyMethod>| matches!(m, Some(PubkeyMethod::Key | PubkeyMethod::Hash));
    let sign_alg = if needs_sign(&resp_pubkey) {
        usable_sign.first().cloned()
    } else if needs_sign(&init_pubkey) {
        let v = first_supported(&o.sign_algs, &p.sign_algs);
        if v.is_none() {
            bad.push("sign_algs");
        }
        v
    } else {
        None
    };
    let ver = pick!("ver", &o.ver, &support.ver);
    let sas_alg = if four { pick!("sas_algs", &req.sas_algs, &p.sas_algs) } else { None };
    if !four && !support.three_message {
        bad.push("dhkeys");
    }
    let rekey_freq = o.rekey_freq.max(support.rekey_freq_min);
    match (logging, disclosure, security, modp, crypt_alg, hash_alg, compress, init_pubkey, resp_pubkey, ver)
    {
        (
            Some(logging),
            Some(disclosure),
            Some(security),
            Some(modp),
            Some(crypt_alg),
            Some(hash_alg),
            Some(compress),
            Some(init_pubkey),
            Some(resp_pubkey),
            Some(ver),
        ) if bad.is_empty() => Ok(Choices {
            logging,
            disclosure,
            security,
            modp,
            crypt_alg,
            hash_alg,
            sign_alg,
            compress,
            stanzas,
            ver,
            init_pubkey,
            resp_pubkey,
            sas_alg,
            rekey_freq,
        }),
        _ => Err(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esession::DhOffer;

    fn request(four: bool) -> Request {
        Request {
            accept: true,
            offers: Offers {
                logging: vec![Logging::MustNot, Logging::May],
                disclosure: vec![Disclosure::Never],
                security: vec![Security::E2e, Security::C2s],
                modp: vec![ModpGroup::Ec2n3, ModpGroup::G14, ModpGroup::G5],
                crypt_algs: vec![CryptAlg::Unknown("blowfish".into()), CryptAlg::Aes128Ctr],
                hash_algs: vec![HashAlg::Sha1, HashAlg::Sha256],
                sign_algs: vec![SignAlg::DsaSha256, SignAlg::RsaSha256],
                compress: vec![Compress::Zlib, Compress::None],
                stanzas: vec![StanzaType::Message, StanzaType::Unknown("x".into()), StanzaType::Iq],
                ver: vec![Version::Unknown("1.3".into()), Version::V1_0],
                rekey_freq: 10,
            },
            init_pubkey: vec![PubkeyMethod::None, PubkeyMethod::Key],
            resp_pubkey: vec![PubkeyMethod::Key, PubkeyMethod::None],
            my_nonce: vec![1; 32],
            sas_algs: if four { vec![SasAlg::Sas28x5] } else { vec![] },
            dh: if four { DhOffer::Hashes(vec![vec![0; 32]; 3]) } else { DhOffer::Keys(vec![vec![2]; 3]) },
        }
    }

    #[test]
    fn offerer_preference_order_wins() {
        let s = Support { own_keys: vec![SignAlg::RsaSha256], ..Support::default() };
        let c = choose(&request(true), &s).unwrap();
        assert_eq!(c.logging, Logging::MustNot);
        assert_eq!(c.modp, (ModpGroup::G14, 1), "group 3 is never selected (A13)");
        assert_eq!(c.crypt_alg, CryptAlg::Aes128Ctr);
        assert_eq!(c.hash_alg, HashAlg::Sha256, "sha1 is never accepted");
        assert_eq!(c.compress, Compress::None);
        assert_eq!(c.stanzas, vec![StanzaType::Message, StanzaType::Iq]);
        assert_eq!(c.ver, Version::V1_0);
        assert_eq!(c.resp_pubkey, PubkeyMethod::Key);
        assert_eq!(c.sign_alg, Some(SignAlg::RsaSha256), "the algorithm of our key");
        assert_eq!(c.init_pubkey, PubkeyMethod::None);
        assert_eq!(c.rekey_freq, 10);
        assert_eq!(c.sas_alg, Some(SasAlg::Sas28x5));
    }

    #[test]
    fn three_message_never_uses_none() {
        let c =
            choose(&request(false), &Support { own_keys: vec![SignAlg::RsaSha256], ..Support::default() })
                .unwrap();
        assert_eq!(c.init_pubkey, PubkeyMethod::Key);
        assert_eq!(c.resp_pubkey, PubkeyMethod::Key);
        assert_eq!(c.sas_alg, None);
        // Without a key Bob cannot answer a 3-message request.
        assert_eq!(choose(&request(false), &Support::default()).unwrap_err(), vec!["resp_pubkey"]);
    }

    #[test]
    fn every_unacceptable_field_is_named() {
        let mut r = request(true);
        r.offers.modp = vec![ModpGroup::Ec2n4];
        r.offers.ver = vec![Version::Unknown("1.3".into())];
        r.offers.disclosure = vec![Disclosure::Enabled];
        let s = Support { rekey_freq_min: 50, ..Support::default() };
        assert_eq!(choose(&r, &s).unwrap_err(), vec!["disclosure", "modp", "ver"]);
        let s = Support { three_message: false, ..Support::default() };
        let err = choose(&request(false), &s).unwrap_err();
        assert!(err.contains(&"dhkeys"));
        let c = choose(&request(true), &Support { rekey_freq_min: 50, ..Support::default() }).unwrap();
        assert_eq!(c.rekey_freq, 50);
    }
}
