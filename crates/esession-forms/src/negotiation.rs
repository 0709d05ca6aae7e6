//! Choosing among a peer's offers (XEP-0116 §4.5.1, I6): for each field, the first of the
//! offerer's options, in the offerer's preference order, that we support; and, when a field has
//! no acceptable option, the list of every such field for the `<not-acceptable/>` error (§4.4).
//! The request's other fields (XEP-0155: `language`, `xhtml-im`, `chatstates`, `presence`,
//! unknown ones) are answered or refused by [`answer_others`], never dropped silently.

use crate::dataform::Field;
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
    /// The wire profile, which decides which hash can key which cipher
    /// ([`esession_crypto::kdf::key_fits`]): only fitting pairs are chosen.
    pub profile: esession_crypto::Profile,
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
            profile,
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
    /// The answers to the request's other fields ([`answer_others`]).
    pub other: Vec<Field>,
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
            // X116-4.5.2-02: the response sets init_pubkey (and resp_pubkey) to the choice.
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
            other: self.other.clone(),
        }
    }
}

/// Why a request cannot be accepted, with the fields to name in the error (XEP-0155 §4.3,
/// XEP-0116 §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `<feature-not-implemented/>`: required fields whose feature is not implemented here
    /// (XEP-0155 §4.3, Example 5). Takes precedence over [`Refusal::NotAcceptable`].
    NotImplemented(Vec<String>),
    /// `<not-acceptable/>`: fields none of whose options is acceptable (XEP-0155 §4.3 Example 6,
    /// XEP-0116 §4.4), the ESession fields first, in request order.
    NotAcceptable(Vec<String>),
}

impl Refusal {
    /// The fields to name in the error.
    #[must_use]
    pub fn fields(&self) -> &[String] {
        match self {
            Refusal::NotImplemented(f) | Refusal::NotAcceptable(f) => f,
        }
    }
}

/// The XEP-0155 fields answered `mustnot` when the request offers it, else `may`: this
/// implementation sends no XHTML-IM, no chat states and shares no presence within a session.
pub const MAY_MUSTNOT_FIELDS: [&str; 3] =
    ["http://jabber.org/protocol/xhtml-im", "http://jabber.org/protocol/chatstates", "presence"];

/// Answers the request's fields outside the ESession set (XEP-0155 §4.2, §4.3): the fields of
/// [`MAY_MUSTNOT_FIELDS`] with `mustnot` when offered, else `may`; `language` with the first
/// language offered (a default first); any other field is left out, unless it is required:
/// then the request is refused with `<feature-not-implemented/>` naming it. A required field
/// none of whose options can be answered is refused with `<not-acceptable/>` naming it.
///
/// # Errors
/// The [`Refusal`] naming the fields.
pub fn answer_others(other: &[Field]) -> Result<Vec<Field>, Refusal> {
    let mut answers = Vec::new();
    let mut not_implemented = Vec::new();
    let mut unacceptable = Vec::new();
    for f in other {
        let var = f.var();
        if var.is_empty() {
            continue;
        }
        let offered = f.offered();
        // X155-4.2-04: a value we support is answered, whatever the default was.
        let answer = if MAY_MUSTNOT_FIELDS.contains(&var) {
            ["mustnot", "may"].into_iter().find(|v| offered.contains(v))
        } else if var == "language" {
            offered.first().copied()
        } else {
            // X155-4.3-09: a required feature we do not implement is refused by name, never
            // dropped silently; one that is not required is left out of the answer.
            if f.required {
                not_implemented.push(var.to_owned());
            }
            continue;
        };
        match answer {
            Some(v) => answers.push(Field::new(var).value(v)),
            // X155-4.3-10: a required field with no acceptable option.
            None if f.required => unacceptable.push(var.to_owned()),
            None => {}
        }
    }
    if !not_implemented.is_empty() {
        return Err(Refusal::NotImplemented(not_implemented));
    }
    if !unacceptable.is_empty() {
        return Err(Refusal::NotAcceptable(unacceptable));
    }
    Ok(answers)
}

/// The `disclosure` to answer: the first offered value we accept, never `disabled`.
#[must_use]
pub fn choose_disclosure(offered: &[Disclosure], support: &Support) -> Option<Disclosure> {
    // X116-7.6-03 X155-11.3-01: `disabled` is never negotiated (this implementation has nothing
    // to disclose, so nothing it would be illegal to divulge), whatever the configuration
    // accepts.
    offered.iter().find(|d| **d != Disclosure::Disabled && support.disclosure.contains(d)).cloned()
}

/// Chooses one option per field of a request and answers its other fields ([`answer_others`]),
/// or names every field without an acceptable option (the ESession fields in the request's
/// field order, then the other fields).
///
/// # Errors
/// The [`Refusal`]: `NotImplemented` for a required field we do not implement, else
/// `NotAcceptable` naming every unacceptable field.
pub fn choose(req: &Request, support: &Support) -> Result<Choices, Refusal> {
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
    let disclosure = choose_disclosure(&o.disclosure, support);
    if disclosure.is_none() {
        bad.push("disclosure");
    }
    let security = pick!("security", &o.security, &support.security);
    // X116-4.5.1-01: one option of each field (`pick!` above and below), among them one group
    // with its position, which names Alice's corresponding He or e.
    let modp = o.modp.iter().enumerate().find(|(_, g)| p.modp.contains(g)).map(|(i, g)| (*g, i));
    if modp.is_none() {
        bad.push("modp");
    }
    let crypt_alg = pick!("crypt_algs", &o.crypt_algs, &p.crypt_algs);
    // The first offered hash that keys the chosen cipher in our profile (a pair that does not
    // fit would fail after both sides committed to it).
    let fits = |h: &HashAlg| {
        crypt_alg.as_ref().is_none_or(|c| esession_crypto::kdf::key_fits(support.profile, c, h))
    };
    let hash_alg = o.hash_algs.iter().find(|h| p.hash_algs.contains(h) && fits(h)).cloned();
    if hash_alg.is_none() {
        bad.push("hash_algs");
    }
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
    // X116-4.5.2-02: the identification Bob requires from Alice: the first of her offered
    // methods that he accepts (`Support::init_pubkey`), set in the response below.
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
    // X116-4.5.4-02: one method from Alice's resp_pubkey values, one Bob can provide.
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
    // X116-4.5.2-03: at least Alice's value (a `u32`: below 2^32).
    let rekey_freq = o.rekey_freq.max(support.rekey_freq_min);
    let other = match answer_others(&req.other) {
        Ok(a) => a,
        Err(Refusal::NotImplemented(f)) => return Err(Refusal::NotImplemented(f)),
        Err(Refusal::NotAcceptable(f)) => {
            let mut all: Vec<String> = bad.iter().map(|b| (*b).to_owned()).collect();
            all.extend(f);
            return Err(Refusal::NotAcceptable(all));
        }
    };
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
            other,
        }),
        _ => Err(Refusal::NotAcceptable(bad.iter().map(|b| (*b).to_owned()).collect())),
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
            other: Vec::new(),
        }
    }

    fn not_acceptable(fields: &[&str]) -> Refusal {
        Refusal::NotAcceptable(fields.iter().map(|f| (*f).to_owned()).collect())
    }

    /// The Gajim dialect keys the cipher with the whole hash output: Whirlpool's 64 octets key
    /// no cipher, so a Gajim responder never chooses it, even when it is offered first and
    /// accepted (it chose it, and both sides then failed after committing); Xep does.
    #[test]
    fn only_a_hash_that_keys_the_cipher_is_chosen() {
        let mut req = request(true);
        req.offers.hash_algs = vec![HashAlg::Whirlpool, HashAlg::Sha256];
        let mut s = Support { own_keys: vec![SignAlg::RsaSha256], ..Support::default() };
        s.crypto.hash_algs = vec![HashAlg::Whirlpool, HashAlg::Sha256];
        assert_eq!(choose(&req, &s).unwrap().hash_alg, HashAlg::Whirlpool, "Xep: the offerer's first");
        s.profile = esession_crypto::Profile::Gajim;
        assert_eq!(choose(&req, &s).unwrap().hash_alg, HashAlg::Sha256, "Gajim: the first that fits");
        req.offers.hash_algs = vec![HashAlg::Whirlpool];
        assert_eq!(choose(&req, &s).unwrap_err(), not_acceptable(&["hash_algs"]));
        // The profile's default never accepts it in the first place.
        assert!(
            !Support::for_profile(esession_crypto::Profile::Gajim)
                .crypto
                .hash_algs
                .contains(&HashAlg::Whirlpool)
        );
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
        assert_eq!(
            choose(&request(false), &Support::default()).unwrap_err(),
            not_acceptable(&["resp_pubkey"])
        );
    }

    #[test]
    fn every_unacceptable_field_is_named() {
        let mut r = request(true);
        r.offers.modp = vec![ModpGroup::Ec2n4];
        r.offers.ver = vec![Version::Unknown("1.3".into())];
        r.offers.disclosure = vec![Disclosure::Enabled];
        let s = Support { rekey_freq_min: 50, ..Support::default() };
        assert_eq!(choose(&r, &s).unwrap_err(), not_acceptable(&["disclosure", "modp", "ver"]));
        let s = Support { three_message: false, ..Support::default() };
        let err = choose(&request(false), &s).unwrap_err();
        assert!(err.fields().contains(&"dhkeys".to_owned()));
        let c = choose(&request(true), &Support { rekey_freq_min: 50, ..Support::default() }).unwrap();
        assert_eq!(c.rekey_freq, 50);
    }

    /// X116-7.6-03: `disabled` is never negotiated, even when the configuration accepts it: a
    /// request offering only `disabled` is refused naming `disclosure`; with `never` offered
    /// too, `never` is chosen.
    #[test]
    fn disclosure_disabled_is_never_negotiated() {
        let s = Support {
            disclosure: vec![Disclosure::Disabled, Disclosure::Enabled, Disclosure::Never],
            ..Support::default()
        };
        let mut r = request(true);
        r.offers.disclosure = vec![Disclosure::Disabled];
        assert_eq!(choose(&r, &s).unwrap_err(), not_acceptable(&["disclosure"]));
        r.offers.disclosure = vec![Disclosure::Disabled, Disclosure::Never];
        assert_eq!(choose(&r, &s).unwrap().disclosure, Disclosure::Never);
        r.offers.disclosure = vec![Disclosure::Disabled, Disclosure::Enabled];
        assert_eq!(choose(&r, &s).unwrap().disclosure, Disclosure::Enabled);
    }

    fn parse_request(extra: &str) -> Request {
        let he = esession_crypto::mpi::b64_encode(&[7; 32]);
        let x = format!(
            "<x xmlns='jabber:x:data' type='form'>\
             <field type='hidden' var='FORM_TYPE'><value>urn:xmpp:ssn</value></field>\
             <field type='boolean' var='accept'><value>1</value><required/></field>\
             <field type='list-single' var='disclosure'><option><value>never</value></option></field>\
             <field type='list-single' var='security'><option><value>e2e</value></option></field>\
             <field type='list-single' var='modp'><option><value>14</value></option></field>\
             <field type='list-single' var='crypt_algs'><option><value>aes128-ctr</value></option></field>\
             <field type='list-single' var='hash_algs'><option><value>sha256</value></option></field>\
             <field type='list-single' var='compress'><option><value>none</value></option></field>\
             <field type='list-multi' var='stanzas'><option><value>message</value></option></field>\
             <field type='list-single' var='init_pubkey'><option><value>none</value></option></field>\
             <field type='list-single' var='resp_pubkey'><option><value>none</value></option></field>\
             <field type='list-single' var='ver'><option><value>1.0</value></option></field>\
             <field type='text-single' var='rekey_freq'><value>1</value></field>\
             <field type='hidden' var='my_nonce'><value>AAECAwQFBgcICQoLDA0ODw==</value></field>\
             <field type='list-single' var='sas_algs'><option><value>sas28x5</value></option></field>\
             <field type='hidden' var='dhhashes'><value>{he}</value></field>{extra}</x>"
        );
        Request::parse(&crate::dataform::DataForm::parse(&crate::xml::parse(&x).unwrap()).unwrap()).unwrap()
    }

    /// X155-4.2-04: a list field's default `<value/>` is the offerer's preference (XEP-0155
    /// Example 1: `logging` default mustnot, options may and mustnot): Bob answers mustnot.
    #[test]
    fn a_default_value_is_the_first_choice() {
        let logging = "<field type='list-single' var='logging'><value>mustnot</value>\
             <option><value>may</value></option><option><value>mustnot</value></option><required/></field>";
        let r = parse_request(logging);
        assert_eq!(r.offers.logging, vec![Logging::MustNot, Logging::May]);
        assert_eq!(choose(&r, &Support::default()).unwrap().logging, Logging::MustNot);
        // A default that is not among the options changes nothing.
        let r = parse_request(&logging.replacen("<value>mustnot</value>", "<value>sometimes</value>", 1));
        assert_eq!(choose(&r, &Support::default()).unwrap().logging, Logging::May);
    }

    /// X155-4.2-04 / X155-4.3-09 / X155-4.3-10: the request's other fields are answered with a
    /// value we support, refused by name when required and not implemented (or without an
    /// acceptable option), and left out when neither.
    #[test]
    fn other_fields_are_answered_or_refused_by_name() {
        let logging = "<field type='list-single' var='logging'><option><value>may</value></option></field>";
        let xhtml = "<field type='list-single' var='http://jabber.org/protocol/xhtml-im'><value>may</value>\
             <option><value>may</value></option><option><value>mustnot</value></option><required/></field>";
        let chat = "<field type='list-single' var='http://jabber.org/protocol/chatstates'>\
             <option><value>may</value></option></field>";
        let lang = "<field type='list-single' var='language'><value>it</value>\
             <option><value>en</value></option><option><value>it</value></option></field>";
        let unknown = "<field type='boolean' var='urn:example:x'><value>1</value></field>";
        let r = parse_request(&format!("{logging}{xhtml}{chat}{lang}{unknown}"));
        assert_eq!(r.other.len(), 4, "every other field is kept");
        let c = choose(&r, &Support::default()).unwrap();
        let answers: Vec<(String, Vec<String>)> =
            c.other.iter().map(|f| (f.var().to_owned(), f.values.clone())).collect();
        assert_eq!(
            answers,
            vec![
                ("http://jabber.org/protocol/xhtml-im".to_owned(), vec!["mustnot".to_owned()]),
                ("http://jabber.org/protocol/chatstates".to_owned(), vec!["may".to_owned()]),
                ("language".to_owned(), vec!["it".to_owned()]),
            ],
            "an unknown field that is not required is left out"
        );
        assert_eq!(c.response(vec![], vec![], vec![], 0).other, c.other, "carried into the response");
        // A required unknown field: feature-not-implemented naming it.
        let required = "<field type='boolean' var='urn:example:x'><value>1</value><required/></field>";
        let r = parse_request(&format!("{logging}{xhtml}{required}"));
        assert_eq!(
            choose(&r, &Support::default()).unwrap_err(),
            Refusal::NotImplemented(vec!["urn:example:x".into()])
        );
        // A required registry field whose options we cannot answer: not-acceptable naming it,
        // after the ESession fields.
        let odd = "<field type='list-single' var='presence'><option><value>always</value></option><required/></field>";
        let mut r = parse_request(&format!("{logging}{odd}"));
        assert_eq!(choose(&r, &Support::default()).unwrap_err(), not_acceptable(&["presence"]));
        r.offers.ver = vec![Version::Unknown("1.3".into())];
        assert_eq!(choose(&r, &Support::default()).unwrap_err(), not_acceptable(&["ver", "presence"]));
    }
}
