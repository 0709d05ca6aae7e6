//! The one check of a response's choices (XEP-0116 §4.6.1 step 1, XEP-0187 §3.4): Alice's of
//! Bob's response (online) and of an offline start, and Bob's of the response he is about to
//! send (a shaper's free choices must still be ones he could have made).

use esession_crypto::Profile;
use esession_forms::dataform::Field;
use esession_forms::esession::{MIN_NONCE_LEN, Offers, Request, Response, SsnAnswer};
use esession_forms::names::{Disclosure, PubkeyMethod, Security, Version};
use esession_forms::negotiation::Support;

/// Which flow a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// A 3-message request (SIGMA-I).
    Three,
    /// A 4-message request (SIGMA-R).
    Four,
    /// Options published for offline sessions (XEP-0187): no `accept`, no identity fields,
    /// Bob identifies with a key.
    Published,
}

/// What was offered: a request's options and identity methods, or published options.
pub(crate) struct Offered<'a> {
    pub(crate) flow: Flow,
    pub(crate) offers: &'a Offers,
    pub(crate) init_pubkey: &'a [PubkeyMethod],
    pub(crate) resp_pubkey: &'a [PubkeyMethod],
    pub(crate) sas_algs: &'a [esession_crypto::SasAlg],
    /// The deployed dialect's `none` in 3-message negotiations (`Support::none_in_three_message`).
    pub(crate) none_in_three: bool,
    /// Our wire profile: which hash can key which cipher ([`esession_crypto::kdf::key_fits`]).
    pub(crate) profile: Profile,
}

/// The shortest ESession ID (N_A, N_B) a party of `profile` accepts from a peer. The texts
/// give no length: the deployed dialect sends 8 octets (forms refuse anything shorter,
/// [`MIN_NONCE_LEN`]), our `Profile::Xep` parties 32 (I7), and a `Profile::Xep` peer must send
/// at least 16.
pub(crate) fn min_nonce_len(profile: Profile) -> usize {
    match profile {
        Profile::Xep => 16,
        Profile::Gajim => MIN_NONCE_LEN,
    }
}

/// The order of the request's fields, in which unacceptable fields are named.
const ORDER: [&str; 15] = [
    "accept",
    "logging",
    "disclosure",
    "security",
    "modp",
    "crypt_algs",
    "hash_algs",
    "sign_algs",
    "compress",
    "stanzas",
    "init_pubkey",
    "resp_pubkey",
    "ver",
    "rekey_freq",
    "sas_algs",
];

/// The fields of `r` that cannot be stood by, in request field order: a value that was not
/// offered, that this build does not implement, that `local` (our own acceptance, when given)
/// does not accept, or an identity choice the flow forbids. Empty when `r` is acceptable.
pub(crate) fn unacceptable(o: &Offered<'_>, local: Option<&Support>, r: &Response) -> Vec<&'static str> {
    let implemented = match local {
        Some(s) => s.crypto.sanitized(),
        None => esession_crypto::CryptoProvider::all(),
    };
    let mut bad: Vec<&'static str> = Vec::new();
    let mut need = |ok: bool, var: &'static str| {
        if !ok {
            bad.push(var);
        }
    };
    // X155-13-02: `accept` is required (true) in an online response; absent only offline (A1).
    need(r.accept != Some(false) && (o.flow == Flow::Published || r.accept.is_some()), "accept");
    need(
        o.offers.logging.contains(&r.logging) && local.is_none_or(|s| s.logging.contains(&r.logging)),
        "logging",
    );
    // X116-7.6-03: `disabled` is never negotiated, whoever chose it.
    need(
        r.disclosure != Disclosure::Disabled
            && o.offers.disclosure.contains(&r.disclosure)
            && local.is_none_or(|s| s.disclosure.contains(&r.disclosure)),
        "disclosure",
    );
    need(
        r.security == Security::E2e
            && o.offers.security.contains(&r.security)
            && local.is_none_or(|s| s.security.contains(&r.security)),
        "security",
    );
    need(o.offers.modp.contains(&r.modp) && implemented.modp.contains(&r.modp), "modp");
    need(
        o.offers.crypt_algs.contains(&r.crypt_alg) && implemented.crypt_algs.contains(&r.crypt_alg),
        "crypt_algs",
    );
    // A hash that cannot key the chosen cipher here would fail the derivation after both
    // sides committed (Whirlpool in the Gajim dialect): refused now, with an answer.
    need(
        o.offers.hash_algs.contains(&r.hash_alg)
            && implemented.hash_algs.contains(&r.hash_alg)
            && esession_crypto::kdf::key_fits(o.profile, &r.crypt_alg, &r.hash_alg),
        "hash_algs",
    );
    let signs = |m: &Option<PubkeyMethod>| !matches!(m, Some(PubkeyMethod::None));
    let sign_needed = match o.flow {
        Flow::Published => true,
        Flow::Three | Flow::Four => signs(&r.init_pubkey) || signs(&r.resp_pubkey),
    };
    need(
        match &r.sign_alg {
            Some(a) => o.offers.sign_algs.contains(a) && implemented.sign_algs.contains(a),
            None => !sign_needed,
        },
        "sign_algs",
    );
    need(
        o.offers.compress.contains(&r.compress)
            && esession_stanza::compress::supported(&r.compress)
            && local.is_none_or(|s| s.compress.contains(&r.compress)),
        "compress",
    );
    need(
        !r.stanzas.is_empty()
            && r.stanzas
                .iter()
                .all(|t| o.offers.stanzas.contains(t) && local.is_none_or(|s| s.stanzas.contains(t))),
        "stanzas",
    );
    let method_ok = |m: &Option<PubkeyMethod>, offered: &[PubkeyMethod]| match o.flow {
        // Offline: the fields are absent (A1); Bob's identity is a key.
        Flow::Published => m.as_ref().is_none_or(|m| *m == PubkeyMethod::Key),
        Flow::Four => m.as_ref().is_some_and(|m| offered.contains(m)),
        // X116-4.3-07: never `none` in 3-message (the dialect's offer aside).
        Flow::Three => {
            m.as_ref().is_some_and(|m| offered.contains(m) && (*m != PubkeyMethod::None || o.none_in_three))
        }
    };
    // X116-4.5.2-02: an online response sets init_pubkey, to one of Alice's methods.
    need(method_ok(&r.init_pubkey, o.init_pubkey), "init_pubkey");
    // X116-4.5.4-02: Bob's identification is one of Alice's resp_pubkey values.
    need(method_ok(&r.resp_pubkey, o.resp_pubkey), "resp_pubkey");
    need(
        r.ver == Version::V1_0
            && o.offers.ver.contains(&r.ver)
            && local.is_none_or(|s| s.ver.contains(&r.ver)),
        "ver",
    );
    // X116-4.5.2-03: at least the value Alice offered (below 2^32: a `u32`, parsed strictly).
    need(
        r.rekey_freq >= o.offers.rekey_freq && local.is_none_or(|s| r.rekey_freq >= s.rekey_freq_min),
        "rekey_freq",
    );
    need(
        match (&r.sas_alg, o.flow) {
            (Some(a), Flow::Four) => o.sas_algs.contains(a),
            (None, Flow::Four) => false,
            // A 3-message answer may echo sas_algs when the request offered it (the dialect's
            // requests do); it is not used.
            (Some(a), Flow::Three) => o.sas_algs.contains(a),
            (None, Flow::Three | Flow::Published) => true,
            (Some(_), Flow::Published) => false,
        },
        "sas_algs",
    );
    bad.sort_by_key(|f| ORDER.iter().position(|o| o == f));
    bad.dedup();
    bad
}

/// The request's other fields (XEP-0155: `language`, `xhtml-im`...) that `answers` does not
/// answer acceptably: an answer that is not among what the field offered, or a required field
/// left unanswered. Answers to fields that were not asked are ignored.
pub(crate) fn other_answers(offered: &[Field], answers: &[Field]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in offered {
        let var = f.var();
        match answers.iter().find(|a| a.var() == var) {
            Some(a) => {
                let offers = f.offered();
                if a.values.len() != 1 || !offers.contains(&a.values[0].as_str()) {
                    bad.push(var.to_owned());
                }
            }
            None if f.required => bad.push(var.to_owned()),
            None => {}
        }
    }
    bad
}

/// The fields of Bob's plain stanza-session answer that Alice cannot complete with (XEP-0155
/// §4.4, XEP-0116 §4.4): `security` must be `c2s` or `none` and offered; `logging` and
/// `disclosure`, when answered, among her offers (`disclosure` never `disabled`); her other
/// fields answered acceptably; every field her request marked required answered.
pub(crate) fn ssn_unacceptable(request: &Request, required: &[String], a: &SsnAnswer) -> Vec<String> {
    let o = &request.offers;
    let mut bad: Vec<String> = Vec::new();
    if a.logging.as_ref().is_some_and(|l| !o.logging.contains(l)) {
        bad.push("logging".into());
    }
    // X116-7.6-03: `disabled` is never negotiated, in a plain stanza session either.
    if a.disclosure.as_ref().is_some_and(|d| *d == Disclosure::Disabled || !o.disclosure.contains(d)) {
        bad.push("disclosure".into());
    }
    if !a
        .security
        .as_ref()
        .is_some_and(|s| matches!(s, Security::C2s | Security::None) && o.security.contains(s))
    {
        bad.push("security".into());
    }
    bad.extend(other_answers(&request.other, &a.other));
    for var in required {
        if !a.answers(var) && !bad.contains(var) {
            bad.push(var.clone());
        }
    }
    bad
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Every condition of [`unacceptable`], one at a time: an acceptable response, then each
    //! field moved to a value one rule refuses, which must name that field and no other.

    use super::*;
    use esession_crypto::{CryptAlg, HashAlg, ModpGroup, SasAlg, SignAlg};
    use esession_forms::names::{Compress, Logging, StanzaType};

    fn offers() -> Offers {
        Offers {
            logging: vec![Logging::May, Logging::MustNot],
            disclosure: vec![Disclosure::Never, Disclosure::Enabled],
            security: vec![Security::E2e, Security::C2s],
            modp: vec![ModpGroup::G14, ModpGroup::G5],
            crypt_algs: vec![CryptAlg::Aes128Ctr, CryptAlg::Aes256Ctr],
            hash_algs: vec![HashAlg::Sha256],
            sign_algs: vec![SignAlg::RsaSha256],
            compress: vec![Compress::None, Compress::Zlib],
            stanzas: vec![StanzaType::Message, StanzaType::Iq],
            ver: vec![Version::V1_0, Version::Unknown("2.0".into())],
            rekey_freq: 50,
        }
    }

    const KEYS: [PubkeyMethod; 2] = [PubkeyMethod::Key, PubkeyMethod::None];
    const SAS: [SasAlg; 1] = [SasAlg::Sas28x5];

    fn offered(flow: Flow, o: &Offers) -> Offered<'_> {
        Offered {
            flow,
            offers: o,
            init_pubkey: &KEYS,
            resp_pubkey: &KEYS,
            sas_algs: &SAS,
            none_in_three: false,
            profile: Profile::Xep,
        }
    }

    /// An acceptable answer to [`offers`] in `flow`.
    fn response(flow: Flow) -> Response {
        let online = flow != Flow::Published;
        Response {
            accept: online.then_some(true),
            logging: Logging::May,
            disclosure: Disclosure::Never,
            security: Security::E2e,
            modp: ModpGroup::G14,
            crypt_alg: CryptAlg::Aes128Ctr,
            hash_alg: HashAlg::Sha256,
            sign_alg: Some(SignAlg::RsaSha256),
            compress: Compress::None,
            stanzas: vec![StanzaType::Message],
            init_pubkey: online.then_some(PubkeyMethod::Key),
            resp_pubkey: online.then_some(PubkeyMethod::Key),
            ver: Version::V1_0,
            rekey_freq: 50,
            my_nonce: vec![1; 32],
            sas_alg: (flow == Flow::Four).then_some(SasAlg::Sas28x5),
            d: vec![2; 16],
            nonce: vec![3; 32],
            counter: 0,
            terminate: false,
            identity: None,
            mac: None,
            other: Vec::new(),
        }
    }

    /// What `unacceptable` names for the acceptable response changed by `change`.
    fn named(flow: Flow, local: Option<&Support>, change: impl FnOnce(&mut Response)) -> Vec<&'static str> {
        let o = offers();
        let mut r = response(flow);
        change(&mut r);
        unacceptable(&offered(flow, &o), local, &r)
    }

    /// Our own acceptance: everything offered above, except what a test takes away.
    fn local() -> Support {
        Support {
            logging: vec![Logging::May, Logging::MustNot],
            disclosure: vec![Disclosure::Never, Disclosure::Enabled, Disclosure::Disabled],
            security: vec![Security::E2e, Security::C2s],
            compress: vec![Compress::None, Compress::Zlib],
            stanzas: vec![StanzaType::Message, StanzaType::Iq],
            ver: vec![Version::V1_0, Version::Unknown("2.0".into())],
            rekey_freq_min: 1,
            ..Support::default()
        }
    }

    #[test]
    fn the_acceptable_response_is_accepted_in_every_flow() {
        for flow in [Flow::Four, Flow::Three, Flow::Published] {
            assert!(named(flow, None, |_| {}).is_empty(), "{flow:?}");
            assert!(named(flow, Some(&local()), |_| {}).is_empty(), "{flow:?} with our acceptance");
        }
    }

    // X155-13-02: `accept` true online; absent only offline.
    #[test]
    fn accept_is_required_online_and_never_false() {
        for flow in [Flow::Four, Flow::Three] {
            assert_eq!(named(flow, None, |r| r.accept = None), ["accept"], "{flow:?}");
            assert_eq!(named(flow, None, |r| r.accept = Some(false)), ["accept"], "{flow:?}");
        }
        assert_eq!(named(Flow::Published, None, |r| r.accept = Some(false)), ["accept"]);
        assert!(named(Flow::Published, None, |r| r.accept = None).is_empty());
    }

    #[test]
    fn each_option_must_be_offered_and_ours() {
        let f = Flow::Four;
        assert_eq!(named(f, None, |r| r.logging = Logging::Unknown("x".into())), ["logging"]);
        let no_mustnot = Support { logging: vec![Logging::May], ..local() };
        assert_eq!(named(f, Some(&no_mustnot), |r| r.logging = Logging::MustNot), ["logging"]);
        assert_eq!(named(f, None, |r| r.disclosure = Disclosure::Unknown("x".into())), ["disclosure"]);
        let no_enabled = Support { disclosure: vec![Disclosure::Never], ..local() };
        assert_eq!(named(f, Some(&no_enabled), |r| r.disclosure = Disclosure::Enabled), ["disclosure"]);
        assert!(named(f, Some(&local()), |r| r.disclosure = Disclosure::Enabled).is_empty());
        // `c2s` is offered and ours: still not an encrypted session.
        assert_eq!(named(f, Some(&local()), |r| r.security = Security::C2s), ["security"]);
        assert_eq!(named(f, None, |r| r.security = Security::None), ["security"]);
        let no_e2e = Support { security: vec![Security::C2s], ..local() };
        assert_eq!(named(f, Some(&no_e2e), |_| {}), ["security"]);
        assert_eq!(named(f, None, |r| r.modp = ModpGroup::G2), ["modp"]);
        let only_14 = Support {
            crypto: esession_crypto::CryptoProvider { modp: vec![ModpGroup::G14], ..local().crypto },
            ..local()
        };
        assert_eq!(named(f, Some(&only_14), |r| r.modp = ModpGroup::G5), ["modp"]);
        assert!(named(f, Some(&only_14), |_| {}).is_empty());
        assert_eq!(named(f, None, |r| r.crypt_alg = CryptAlg::Aes192Ctr), ["crypt_algs"]);
        // A cipher nobody knows keys with no hash either.
        assert_eq!(
            named(f, None, |r| r.crypt_alg = CryptAlg::Unknown("x".into())),
            ["crypt_algs", "hash_algs"]
        );
        let only_256 = Support {
            crypto: esession_crypto::CryptoProvider {
                crypt_algs: vec![CryptAlg::Aes256Ctr],
                ..local().crypto
            },
            ..local()
        };
        assert_eq!(named(f, Some(&only_256), |_| {}), ["crypt_algs"]);
        assert_eq!(named(f, None, |r| r.hash_alg = HashAlg::Unknown("x".into())), ["hash_algs"]);
        let no_hash = Support {
            crypto: esession_crypto::CryptoProvider { hash_algs: Vec::new(), ..local().crypto },
            ..local()
        };
        assert_eq!(named(f, Some(&no_hash), |_| {}), ["hash_algs"]);
        assert_eq!(named(f, None, |r| r.compress = Compress::Lzw), ["compress"]);
        let no_zlib = Support { compress: vec![Compress::None], ..local() };
        assert_eq!(named(f, Some(&no_zlib), |r| r.compress = Compress::Zlib), ["compress"]);
        assert!(named(f, Some(&local()), |r| r.compress = Compress::Zlib).is_empty());
        assert_eq!(named(f, None, |r| r.ver = Version::Unknown("2.0".into())), ["ver"]);
        assert_eq!(named(f, None, |r| r.ver = Version::Unknown("3.0".into())), ["ver"]);
        let no_ver = Support { ver: Vec::new(), ..local() };
        assert_eq!(named(f, Some(&no_ver), |_| {}), ["ver"]);
    }

    #[test]
    fn stanzas_must_be_offered_ours_and_not_none() {
        let f = Flow::Four;
        assert_eq!(named(f, None, |r| r.stanzas.clear()), ["stanzas"]);
        assert_eq!(named(f, None, |r| r.stanzas.push(StanzaType::Presence)), ["stanzas"]);
        assert!(named(f, None, |r| r.stanzas.push(StanzaType::Iq)).is_empty());
        let no_iq = Support { stanzas: vec![StanzaType::Message], ..local() };
        assert_eq!(named(f, Some(&no_iq), |r| r.stanzas.push(StanzaType::Iq)), ["stanzas"]);
    }

    // X116-4.5.2-03: at least the offered value and our minimum
    #[test]
    fn rekey_freq_is_at_least_the_offer_and_our_minimum() {
        let f = Flow::Four;
        assert_eq!(named(f, None, |r| r.rekey_freq = 49), ["rekey_freq"]);
        assert!(named(f, None, |r| r.rekey_freq = 51).is_empty());
        let min = Support { rekey_freq_min: 60, ..local() };
        assert_eq!(named(f, Some(&min), |_| {}), ["rekey_freq"]);
        assert!(named(f, Some(&min), |r| r.rekey_freq = 60).is_empty());
    }

    // X116-4.5.2-02 X116-4.5.4-02 X116-4.3-07: the identity methods of each flow
    #[test]
    fn identity_methods_follow_the_flow() {
        for flow in [Flow::Four, Flow::Three] {
            assert_eq!(named(flow, None, |r| r.init_pubkey = None), ["init_pubkey"], "{flow:?}");
            assert_eq!(named(flow, None, |r| r.resp_pubkey = None), ["resp_pubkey"], "{flow:?}");
            let hash = Some(PubkeyMethod::Hash);
            assert_eq!(named(flow, None, |r| r.init_pubkey = hash.clone()), ["init_pubkey"], "{flow:?}");
            assert_eq!(named(flow, None, |r| r.resp_pubkey = hash), ["resp_pubkey"], "{flow:?}");
        }
        let none = Some(PubkeyMethod::None);
        assert!(named(Flow::Four, None, |r| r.resp_pubkey = none.clone()).is_empty());
        assert_eq!(named(Flow::Three, None, |r| r.resp_pubkey = none.clone()), ["resp_pubkey"]);
        // The deployed dialect's `none` in 3-message.
        let o = offers();
        let mut r = response(Flow::Three);
        r.resp_pubkey = none.clone();
        assert!(
            unacceptable(&Offered { none_in_three: true, ..offered(Flow::Three, &o) }, None, &r).is_empty()
        );
        // Offline: absent, or `key`.
        assert!(named(Flow::Published, None, |r| r.resp_pubkey = Some(PubkeyMethod::Key)).is_empty());
        assert_eq!(named(Flow::Published, None, |r| r.resp_pubkey = none.clone()), ["resp_pubkey"]);
        assert_eq!(named(Flow::Published, None, |r| r.init_pubkey = none), ["init_pubkey"]);
    }

    #[test]
    fn a_signature_algorithm_is_needed_exactly_when_someone_signs() {
        assert_eq!(named(Flow::Four, None, |r| r.sign_alg = None), ["sign_algs"]);
        assert_eq!(named(Flow::Published, None, |r| r.sign_alg = None), ["sign_algs"]);
        assert_eq!(named(Flow::Four, None, |r| r.sign_alg = Some(SignAlg::DsaSha256)), ["sign_algs"]);
        // Both identities `none`: no signature, and none needed.
        let unsigned = |r: &mut Response| {
            r.init_pubkey = Some(PubkeyMethod::None);
            r.resp_pubkey = Some(PubkeyMethod::None);
            r.sign_alg = None;
        };
        assert!(named(Flow::Four, None, unsigned).is_empty());
        // One of them signs: needed.
        assert_eq!(
            named(Flow::Four, None, |r| {
                r.init_pubkey = Some(PubkeyMethod::None);
                r.sign_alg = None;
            }),
            ["sign_algs"]
        );
        let no_rsa = Support {
            crypto: esession_crypto::CryptoProvider { sign_algs: Vec::new(), ..local().crypto },
            ..local()
        };
        assert_eq!(named(Flow::Four, Some(&no_rsa), |_| {}), ["sign_algs"]);
    }

    #[test]
    fn the_sas_algorithm_follows_the_flow() {
        assert_eq!(named(Flow::Four, None, |r| r.sas_alg = None), ["sas_algs"]);
        let other = Some(SasAlg::Unknown("x".into()));
        assert_eq!(named(Flow::Four, None, |r| r.sas_alg = other.clone()), ["sas_algs"]);
        assert!(named(Flow::Three, None, |r| r.sas_alg = Some(SasAlg::Sas28x5)).is_empty());
        assert_eq!(named(Flow::Three, None, |r| r.sas_alg = other), ["sas_algs"]);
        assert_eq!(named(Flow::Published, None, |r| r.sas_alg = Some(SasAlg::Sas28x5)), ["sas_algs"]);
    }

    #[test]
    fn several_fields_are_named_once_each_in_request_order() {
        let bad = named(Flow::Four, None, |r| {
            r.sas_alg = None;
            r.accept = Some(false);
            r.modp = ModpGroup::G2;
        });
        assert_eq!(bad, ["accept", "modp", "sas_algs"]);
    }

    fn field(var: &str, required: bool, options: &[&str], values: &[&str]) -> Field {
        let mut f = Field::new(var);
        f.required = required;
        f.options = options.iter().map(|o| esession_forms::dataform::FormOption::new(*o)).collect();
        f.values = values.iter().map(|v| (*v).to_owned()).collect();
        f
    }

    // X155-4.2-03 X155-4.2-04: other fields answered with one offered value; a required field
    // left unanswered is refused, an optional one is not.
    #[test]
    fn other_fields_are_answered_with_one_offered_value() {
        let offered =
            [field("language", true, &["en", "de"], &[]), field("xhtml-im", false, &["0", "1"], &[])];
        assert!(other_answers(&offered, &[field("language", false, &[], &["de"])]).is_empty());
        assert_eq!(other_answers(&offered, &[]), ["language"]);
        assert_eq!(other_answers(&offered, &[field("language", false, &[], &["fr"])]), ["language"]);
        assert_eq!(other_answers(&offered, &[field("language", false, &[], &["en", "de"])]), ["language"]);
        assert_eq!(other_answers(&offered, &[field("language", false, &[], &[])]), ["language"]);
        // An answer to a field nobody asked is ignored.
        let answers = [field("language", false, &[], &["en"]), field("other", false, &[], &["x"])];
        assert!(other_answers(&offered, &answers).is_empty());
    }

    // X116-4.4: a plain stanza session answer.
    #[test]
    fn a_plain_session_answer_keeps_to_the_offers() {
        let request = Request {
            accept: true,
            offers: offers(),
            init_pubkey: KEYS.to_vec(),
            resp_pubkey: KEYS.to_vec(),
            my_nonce: vec![1; 32],
            sas_algs: SAS.to_vec(),
            dh: esession_forms::esession::DhOffer::Hashes(vec![vec![0; 32]; 2]),
            other: vec![field("language", true, &["en"], &[])],
        };
        let good = SsnAnswer {
            accept: true,
            logging: Some(Logging::May),
            disclosure: Some(Disclosure::Never),
            security: Some(Security::C2s),
            other: vec![field("language", false, &[], &["en"])],
        };
        assert!(ssn_unacceptable(&request, &[], &good).is_empty());
        let with = |change: &dyn Fn(&mut SsnAnswer)| {
            let mut a = good.clone();
            change(&mut a);
            ssn_unacceptable(&request, &[], &a)
        };
        assert_eq!(with(&|a| a.security = Some(Security::E2e)), ["security"]);
        assert_eq!(with(&|a| a.security = None), ["security"]);
        assert_eq!(with(&|a| a.logging = Some(Logging::Unknown("x".into()))), ["logging"]);
        assert_eq!(with(&|a| a.disclosure = Some(Disclosure::Disabled)), ["disclosure"]);
        assert_eq!(with(&|a| a.other.clear()), ["language"]);
        // A field the request marked required (XEP-0155 §4.2) that was not answered.
        assert_eq!(
            ssn_unacceptable(&request, &["logging".to_owned()], &SsnAnswer { logging: None, ..good.clone() }),
            ["logging"]
        );
    }
}
