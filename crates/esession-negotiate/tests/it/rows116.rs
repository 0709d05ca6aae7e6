//! XEP-0116 requirements, each with a test that fails when its enforcing code is broken.

use crate::*;
use esession_crypto::testing::TestRng;
use esession_forms::names::Disclosure;

/// Alice's request shaped to offer `disclosure` never and disabled (another implementation's
/// offer).
fn offering_disabled() -> Box<dyn Shaper> {
    Box::new(Shape(FormKind::Request, |x: Element| set_options(&x, "disclosure", &["never", "disabled"])))
}

/// X116-7.6-03: `disclosure` disabled is never negotiated. (b) A request rewritten in transit to
/// offer only `disabled`, to a Bob whose configuration accepts all three values: Bob refuses
/// with `<not-acceptable/>` naming exactly `disclosure`. (c) A Bob shaper writing `disabled`
/// (Alice offered it, Bob's configuration accepts it): Bob refuses to send (`Error::Config`).
/// (d) A response tampered to `disabled` (Alice offered it): Alice refuses naming `disclosure`
/// before any MAC is checked.
#[test]
fn disclosure_disabled_is_never_negotiated() {
    let all = vec![Disclosure::Disabled, Disclosure::Enabled, Disclosure::Never];
    let mut cb = small_cfg(Config::default());
    cb.support.disclosure = all;
    let cb = Arc::new(cb);
    let ca = Arc::new(small_cfg(Config::default()));
    // (b)
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let mut replies = Vec::new();
    negotiate(
        Mode::Four,
        ca.clone(),
        cb.clone(),
        &mut a,
        &mut b,
        Box::new(|i, from_alice, s: Element| {
            if !from_alice {
                replies.push(s.clone());
            }
            Some(if i == 0 { set_options(&s, "disclosure", &["disabled"]) } else { s })
        }),
    );
    assert_eq!(replies.len(), 1);
    assert_eq!(error_fields(&replies[0]), (Some("not-acceptable".into()), vec!["disclosure".into()]));
    assert!(b.established.is_none() && a.established.is_none());
    // (c)
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let alice = Initiator::new(ca.clone(), j(BOB), "t").with_shaper(offering_disabled());
    let bob = Responder::new(cb.clone(), j(ALICE), "t")
        .with_shaper(Box::new(Shape(FormKind::Response, |x: Element| {
            set_values(&x, "disclosure", &["disabled"])
        })));
    let seen = run_recorded(Mode::Four, alice, bob, &mut a, &mut b);
    assert_eq!(seen.len(), 1, "Bob sent nothing");
    assert!(matches!(b.rejected, Some(Error::Config(_))), "{:?}", b.rejected);
    // (d)
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let alice = Initiator::new(ca, j(BOB), "t").with_shaper(offering_disabled());
    let bob = Responder::new(cb, j(ALICE), "t");
    let mut answered = None;
    run_parties(
        Mode::Four,
        alice,
        bob,
        &mut a,
        &mut b,
        Box::new(|i, _, s: Element| {
            if i == 1 {
                answered = values(&s, "disclosure");
                return Some(set_values(&s, "disclosure", &["disabled"]));
            }
            Some(s)
        }),
    );
    assert_eq!(answered, Some(vec!["never".to_owned()]), "Bob chose never");
    assert!(
        matches!(&a.rejected, Some(Error::PeerMisbehaved { check: Check::Options, fields, .. }) if fields == &["disclosure".to_owned()]),
        "{:?}",
        a.rejected
    );
    let _ = TestRng::new(0);
}

/// Entropy with a fixed nonce and DH exponent of group 1 (the rest from a seeded generator).
fn scripted(nonce: Option<&[u8]>, x: Option<&[u8]>, seed: u64) -> hazmat::ScriptedEntropy<TestRng> {
    let mut e = hazmat::ScriptedEntropy::new(TestRng::new(seed));
    e.nonce = nonce.map(<[u8]>::to_vec);
    if let Some(x) = x {
        e.by_group.push((esession_crypto::ModpGroup::G1, x.to_vec()));
    }
    e
}

/// X116-4.5.2-05: Bob never returns Alice's N_A and e as his N_B and d. A generator that draws
/// them makes Bob fail before he sends anything (3- and 4-message: d compared with e, or its
/// SHA-256 with He); a response carrying Alice's own N_A or e is refused by her naming the field.
#[test]
fn alices_nonce_and_dh_value_are_never_returned() {
    let na = [5u8; 32];
    let x = [0x5a_u8; 40];
    let e = esession_crypto::DhKeyPair::from_exponent(esession_crypto::ModpGroup::G1, &x)
        .unwrap()
        .public()
        .to_vec();
    for mode in [Mode::Three, Mode::Four] {
        let (ca, cb, mut a, mut b) = keyed_pair();
        let (ca, cb) = (Arc::new(ca), Arc::new(cb));
        let start = |alice: &mut Initiator| {
            alice.start(mode, &mut scripted(Some(&na), Some(&x), 1)).unwrap();
            sent(&drain(alice)).remove(0)
        };
        let mut alice = Initiator::new(ca.clone(), j(BOB), "t");
        let req = start(&mut alice);
        // Bob's generator returns N_A, then Alice's exponent.
        for (nonce, exp) in [(Some(&na[..]), None), (None, Some(&x[..]))] {
            let mut bob = Responder::new(cb.clone(), j(ALICE), "t");
            let st = &mut Stores { trust: &mut b.trust, retained: &mut b.retained };
            let r = bob.handle(at(0), &req, &mut scripted(nonce, exp, 2), st);
            assert!(matches!(r, Err(Error::Crypto(esession_crypto::Error::Rng))), "{mode:?}: {r:?}");
            assert!(sent(&drain(&mut bob)).is_empty(), "{mode:?}: Bob sent nothing");
        }
        // Alice refuses her own values back.
        let mut bob = Responder::new(cb.clone(), j(ALICE), "t");
        to_bob(&mut bob, &mut b, &req).unwrap();
        let resp = sent(&drain(&mut bob)).remove(0);
        let b64 = esession_crypto::mpi::b64_encode;
        for (var, value) in [("my_nonce", b64(&na)), ("dhkeys", b64(&e))] {
            let mut alice = Initiator::new(ca.clone(), j(BOB), "t");
            assert_eq!(start(&mut alice), req);
            let r = to_alice(&mut alice, &mut a, &set_values(&resp, var, &[&value]));
            assert!(
                matches!(&r, Err(Error::PeerMisbehaved { condition: Condition::NotAcceptable, fields, .. }) if fields == &[var.to_owned()]),
                "{mode:?} {var}: {r:?}"
            );
            assert!(alice.is_done());
        }
    }
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn sha(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

fn b64d(s: &str) -> Vec<u8> {
    esession_crypto::mpi::b64_decode(s).unwrap()
}

fn value(stanza: &Element, var: &str) -> Vec<u8> {
    b64d(&values(stanza, var).unwrap()[0])
}

/// Alice's request (the first stanza she sends) with `cfg`, drawing from `seed`.
fn request_of(cfg: Config, mode: Mode, seed: u64) -> Result<Element> {
    let mut alice = Initiator::new(Arc::new(cfg), j(BOB), "t");
    alice.start(mode, &mut RngEntropy(&mut TestRng::new(seed)))?;
    Ok(sent(&drain(&mut alice)).remove(0))
}

/// X116-4.3-01 X116-4.3-11 (X155-4.1-05): Alice's request carries `accept`, `logging`,
/// `disclosure` and `security` (required), and every option list of her configuration in its
/// order; reversed configurations give reversed lists.
#[test]
fn the_request_offers_exactly_the_configuration() {
    use esession_crypto::{CryptAlg, HashAlg, ModpGroup};
    use esession_forms::dataform::DataForm;
    use esession_forms::esession::Request;
    use esession_forms::names::{Compress, Logging, PubkeyMethod, Security, StanzaType};
    for reverse in [false, true] {
        let (ra, _, _, _) = keys();
        let alg = ra.public_key().alg();
        let mut c = Config::with_identity(ra);
        c.support.crypto = esession_crypto::CryptoProvider::all();
        let mut lists = (
            vec![ModpGroup::G14, ModpGroup::G5, ModpGroup::G2],
            vec![CryptAlg::Aes128Ctr, CryptAlg::Aes256Ctr],
            vec![HashAlg::Whirlpool, HashAlg::Sha256],
            vec![Logging::MustNot, Logging::May],
            vec![Security::E2e, Security::C2s],
            vec![StanzaType::Iq, StanzaType::Message],
            vec![PubkeyMethod::Hash, PubkeyMethod::Key, PubkeyMethod::None],
        );
        if reverse {
            lists.0.reverse();
            lists.1.reverse();
            lists.2.reverse();
            lists.3.reverse();
            lists.4.reverse();
            lists.5.reverse();
            lists.6.reverse();
        }
        c.provider = esession_crypto::CryptoProvider {
            modp: lists.0.clone(),
            crypt_algs: lists.1.clone(),
            hash_algs: lists.2.clone(),
            ..esession_crypto::CryptoProvider::all()
        };
        c.logging = lists.3.clone();
        c.security = lists.4.clone();
        c.stanzas = lists.5.clone();
        c.init_pubkey = lists.6.clone();
        c.resp_pubkey = lists.6.iter().rev().cloned().collect();
        c.compress = vec![Compress::None];
        c.rekey_freq = 77;
        let sas = c.provider.sas_algs.clone();
        let req = request_of(c, Mode::Four, 1).unwrap();
        let r = Request::parse(&DataForm::parse(form_x(&req)).unwrap()).unwrap();
        assert!(r.accept);
        assert_eq!(r.offers.logging, lists.3);
        assert_eq!(r.offers.disclosure, vec![Disclosure::Never]);
        assert_eq!(r.offers.security, lists.4);
        assert_eq!(r.offers.modp, lists.0);
        assert_eq!(r.offers.crypt_algs, lists.1, "reverse {reverse}");
        assert_eq!(r.offers.hash_algs, lists.2);
        assert_eq!(r.offers.sign_algs, vec![alg], "the algorithm of our key");
        assert_eq!(r.offers.compress, vec![Compress::None]);
        assert_eq!(r.offers.stanzas, lists.5);
        assert_eq!(r.offers.ver, vec![esession_forms::names::Version::V1_0]);
        assert_eq!(r.offers.rekey_freq, 77);
        assert_eq!(r.init_pubkey, lists.6);
        assert_eq!(r.resp_pubkey, lists.6.iter().rev().cloned().collect::<Vec<_>>());
        assert_eq!(r.sas_algs, sas);
        for var in ["accept", "logging", "disclosure", "security"] {
            assert!(field(&req, var).unwrap().children().any(|c| c.name() == "required"), "{var}");
        }
    }
}

/// X116-4.3-06: Alice offers only `key`, `hash` or `none`: a configured method of another name
/// is left out (and alone gives `Error::Config`); a request offering only such a method gets
/// `<not-acceptable/>` naming `init_pubkey`.
#[test]
fn unknown_identity_methods_are_never_offered() {
    use esession_forms::names::PubkeyMethod;
    let x509 = PubkeyMethod::Unknown("x509".into());
    let mut c = small_cfg(Config::default());
    c.init_pubkey = vec![x509.clone(), PubkeyMethod::None];
    let req = request_of(c, Mode::Four, 1).unwrap();
    assert_eq!(options(&req, "init_pubkey"), Some(vec!["none".to_owned()]));
    let mut c = small_cfg(Config::default());
    c.init_pubkey = vec![x509];
    assert!(matches!(request_of(c, Mode::Four, 1), Err(Error::Config(_))));
    // Another implementation's request offering only x509.
    let req = request_of(small_cfg(Config::default()), Mode::Four, 1).unwrap();
    let mut bob = Responder::new(Arc::new(small_cfg(Config::default())), j(ALICE), "t");
    let r = to_bob(&mut bob, &mut Side::new(2), &set_options(&req, "init_pubkey", &["x509"]));
    assert!(r.is_err());
    assert_eq!(
        error_fields(&sent(&drain(&mut bob))[0]),
        (Some("not-acceptable".into()), vec!["init_pubkey".into()])
    );
}

/// X116-4.3-07: `none` is never offered in a 3-message request ([none, key] offers key; [none]
/// alone is `Error::Config`); a `Profile::Xep` Alice refuses a 3-message response that chose
/// `none` for Bob even when her (shaped) request offered it, naming `resp_pubkey`.
#[test]
fn three_message_requests_never_offer_none() {
    use esession_forms::names::PubkeyMethod;
    let (ra, ra2, _, _) = keys();
    let mut c = small_cfg(Config::with_identity(ra2));
    c.init_pubkey = vec![PubkeyMethod::None, PubkeyMethod::Key];
    c.resp_pubkey = vec![PubkeyMethod::None, PubkeyMethod::Key];
    let req = request_of(c, Mode::Three, 1).unwrap();
    assert_eq!(options(&req, "init_pubkey"), Some(vec!["key".to_owned()]));
    assert_eq!(options(&req, "resp_pubkey"), Some(vec!["key".to_owned()]));
    let mut c = small_cfg(Config::with_identity(ra));
    c.init_pubkey = vec![PubkeyMethod::None];
    assert!(matches!(request_of(c, Mode::Three, 1), Err(Error::Config(_))));
    // A response choosing none, to a request that (shaped) offered it.
    let (ca, cb, mut a, mut b) = keyed_pair();
    let offer = Shape(FormKind::Request, |x: Element| set_options(&x, "resp_pubkey", &["key", "none"]));
    let alice = Initiator::new(Arc::new(ca), j(BOB), "t").with_shaper(Box::new(offer));
    let bob = Responder::new(Arc::new(cb), j(ALICE), "t");
    run_parties(
        Mode::Three,
        alice,
        bob,
        &mut a,
        &mut b,
        Box::new(|i, _, s: Element| Some(if i == 1 { set_values(&s, "resp_pubkey", &["none"]) } else { s })),
    );
    assert!(
        matches!(&a.rejected, Some(Error::PeerMisbehaved { check: Check::Options, fields, .. }) if fields == &["resp_pubkey".to_owned()]),
        "{:?}",
        a.rejected
    );
}

/// X116-4.3-08 X116-4.3-09: one x, e and He per offered group, every He sent in the order of
/// the groups: Alice offers groups 14, 5 and 2, Bob supports only 5 (or only 2): the session is
/// established, the three commitments differ, and the one of the chosen group is SHA-256 of
/// the e Alice reveals in her accept. (The range of x: esession-crypto `exponent_bounds`.)
#[test]
fn one_dh_value_per_offered_group() {
    use esession_crypto::ModpGroup;
    for (chosen, idx) in [(ModpGroup::G5, 1usize), (ModpGroup::G2, 2)] {
        let mut ca = small_cfg(Config::default());
        ca.provider.modp = vec![ModpGroup::G14, ModpGroup::G5, ModpGroup::G2];
        let mut cb = small_cfg(Config::default());
        cb.support.crypto.modp = vec![chosen];
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        let seen = run_recorded(
            Mode::Four,
            Initiator::new(Arc::new(ca), j(BOB), "t"),
            Responder::new(Arc::new(cb), j(ALICE), "t"),
            &mut a,
            &mut b,
        );
        assert!(a.established.is_some() && b.established.is_some(), "{:?} {:?}", a.rejected, b.rejected);
        let he: Vec<Vec<u8>> = values(&seen[0].1, "dhhashes").unwrap().iter().map(|v| b64d(v)).collect();
        assert_eq!(he.len(), 3);
        assert!(he[0] != he[1] && he[1] != he[2] && he[0] != he[2]);
        assert_eq!(values(&seen[1].1, "modp"), Some(vec![chosen.to_string()]));
        let e = value(&seen[2].1, "dhkeys");
        assert_eq!(sha(&e), he[idx], "He of group {chosen} is SHA256(e)");
    }
}

/// X116-4.3-10: N_A is random: two generators give two different 32-octet nonces (I7).
#[test]
fn nonces_are_random_and_32_octets() {
    let n1 = value(&request_of(small_cfg(Config::default()), Mode::Four, 1).unwrap(), "my_nonce");
    let n2 = value(&request_of(small_cfg(Config::default()), Mode::Four, 2).unwrap(), "my_nonce");
    assert_eq!((n1.len(), n2.len()), (32, 32));
    assert_ne!(n1, n2);
}

/// X116-4.3-12: a 3-message request has `dhkeys` (e), no `dhhashes` and, in `Profile::Xep`, no
/// `sas_algs`; the deployed dialect (`Profile::Gajim`) sends `sas_algs` in it.
#[test]
fn three_message_request_shape() {
    let (ra, ra2, _, _) = keys();
    let req = request_of(small_cfg(Config::with_identity(ra2)), Mode::Three, 1).unwrap();
    assert!(field(&req, "dhkeys").is_some() && field(&req, "dhhashes").is_none());
    assert!(field(&req, "sas_algs").is_none());
    let four = request_of(small_cfg(Config::default()), Mode::Four, 1).unwrap();
    assert!(
        field(&four, "dhhashes").is_some()
            && field(&four, "dhkeys").is_none()
            && field(&four, "sas_algs").is_some()
    );
    let gajim = small_cfg(Config::new(esession_crypto::Profile::Gajim).identified_by(ra));
    let req = request_of(gajim, Mode::Three, 1).unwrap();
    assert!(field(&req, "dhkeys").is_some() && field(&req, "sas_algs").is_some(), "the dialect's exception");
}

/// X116-4.4-05: a failed negotiation discards what it learned: after refusing a tampered
/// message, the genuine one is not read (`ApiMisuse`) and nothing was stored (no retained
/// secret, no key association).
#[test]
fn a_refused_negotiation_keeps_nothing() {
    let (ca, cb, mut a, mut b) = keyed_pair();
    let (ca, cb) = (Arc::new(ca), Arc::new(cb));
    let trust_before = (a.trust.records().len(), b.trust.records().len());
    // Bob refuses Alice's 4-message accept with a flipped mac, then gets the genuine one.
    let mut alice = Initiator::new(ca.clone(), j(BOB), "t");
    let mut bob = Responder::new(cb.clone(), j(ALICE), "t");
    alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
    to_bob(&mut bob, &mut b, &sent(&drain(&mut alice)).remove(0)).unwrap();
    to_alice(&mut alice, &mut a, &sent(&drain(&mut bob)).remove(0)).unwrap();
    let accept = sent(&drain(&mut alice)).remove(0);
    let mut mac = value(&accept, "mac");
    mac[0] ^= 1;
    assert!(
        to_bob(&mut bob, &mut b, &set_values(&accept, "mac", &[&esession_crypto::mpi::b64_encode(&mac)]))
            .is_err()
    );
    assert!(matches!(to_bob(&mut bob, &mut b, &accept), Err(Error::ApiMisuse(_))));
    assert!(b.retained.all(at(0)).is_empty(), "no retained secret");
    // Alice refuses a response with a flipped counter... then gets the genuine one.
    let mut alice = Initiator::new(ca, j(BOB), "t");
    let mut bob = Responder::new(cb, j(ALICE), "t");
    alice.start(Mode::Three, &mut RngEntropy(&mut TestRng::new(2))).unwrap();
    to_bob(&mut bob, &mut b, &sent(&drain(&mut alice)).remove(0)).unwrap();
    let resp = sent(&drain(&mut bob)).remove(0);
    let mut id = value(&resp, "identity");
    id[0] ^= 1;
    assert!(
        to_alice(
            &mut alice,
            &mut a,
            &set_values(&resp, "identity", &[&esession_crypto::mpi::b64_encode(&id)])
        )
        .is_err()
    );
    assert!(matches!(to_alice(&mut alice, &mut a, &resp), Err(Error::ApiMisuse(_))));
    assert!(a.retained.all(at(0)).is_empty());
    assert_eq!((a.trust.records().len(), b.trust.records().len()), trust_before, "no key association");
}

/// X116-4.5.1-03: C_A is n = 128 random bits: 16 octets of the generator read big-endian
/// (`Profile::Xep`; the dialect keeps it at or above 2^126); it differs across generators.
#[test]
fn counter_is_128_random_bits() {
    use rand_core::Rng;
    let c = RngEntropy(&mut TestRng::new(9)).counter(esession_crypto::Profile::Xep);
    let mut raw = [0u8; 16];
    TestRng::new(9).fill_bytes(&mut raw);
    assert_eq!(c, u128::from_be_bytes(raw));
    let g = RngEntropy(&mut TestRng::new(9)).counter(esession_crypto::Profile::Gajim);
    assert_eq!(g, u128::from_be_bytes(raw) | 1 << 126);
    // In a negotiation, C_A differs with Bob's generator.
    let counters: Vec<Vec<u8>> = [2u64, 3]
        .iter()
        .map(|seed| {
            let cfg = Arc::new(small_cfg(Config::default()));
            let (mut a, mut b) = (Side::new(1), Side::new(*seed));
            let seen = run_recorded(
                Mode::Four,
                Initiator::new(cfg.clone(), j(BOB), "t"),
                Responder::new(cfg, j(ALICE), "t"),
                &mut a,
                &mut b,
            );
            value(&seen[1].1, "counter")
        })
        .collect();
    assert_ne!(counters[0], counters[1]);
}

/// X116-4.5.2-03: Bob's `rekey_freq` is at least Alice's: a response lowered in transit is
/// refused naming `rekey_freq`, before any MAC; 2^32 does not parse.
#[test]
fn rekey_freq_below_alices_is_refused() {
    for (value, check) in [("9", Check::Options), ("4294967296", Check::Form)] {
        let mut c = small_cfg(Config::default());
        c.rekey_freq = 10;
        let cfg = Arc::new(c);
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        let mut answered = None;
        run_parties(
            Mode::Four,
            Initiator::new(cfg.clone(), j(BOB), "t"),
            Responder::new(cfg, j(ALICE), "t"),
            &mut a,
            &mut b,
            Box::new(|i, _, s: Element| {
                if i == 1 {
                    answered = values(&s, "rekey_freq");
                    return Some(set_values(&s, "rekey_freq", &[value]));
                }
                Some(s)
            }),
        );
        assert_eq!(answered, Some(vec!["10".to_owned()]));
        assert!(
            matches!(&a.rejected, Some(Error::PeerMisbehaved { check: c, fields, .. }) if *c == check && fields == &["rekey_freq".to_owned()]),
            "{value}: {:?}",
            a.rejected
        );
    }
}

/// X116-4.5.2-04 X116-4.5.2-06: Bob's N_B and d are in `my_nonce` and `dhkeys` (not Alice's),
/// and `nonce` (N_A) then `counter` (C_A) are the last fields of his response, before
/// `identity` and `mac` in a 3-message one.
#[test]
fn nonce_and_counter_close_the_response() {
    for mode in [Mode::Three, Mode::Four] {
        let (ca, cb, mut a, mut b) = keyed_pair();
        let seen = run_recorded(
            mode,
            Initiator::new(Arc::new(ca), j(BOB), "t"),
            Responder::new(Arc::new(cb), j(ALICE), "t"),
            &mut a,
            &mut b,
        );
        let (req, resp) = (&seen[0].1, &seen[1].1);
        let order = vars(resp);
        let tail: Vec<&str> = order
            .iter()
            .rev()
            .take(if mode == Mode::Three { 4 } else { 2 })
            .rev()
            .map(String::as_str)
            .collect();
        let expected: &[&str] = if mode == Mode::Three {
            &["nonce", "counter", "identity", "mac"]
        } else {
            &["nonce", "counter"]
        };
        assert_eq!(tail, expected, "{mode:?}: {order:?}");
        assert_eq!(value(resp, "nonce"), value(req, "my_nonce"), "N_A echoed");
        assert_ne!(value(resp, "my_nonce"), value(req, "my_nonce"), "N_B is Bob's");
        assert_eq!(b.established.as_ref().map(|_| ()), a.established.as_ref().map(|_| ()));
        assert!(field(resp, "dhhashes").is_none());
    }
}

/// X116-4.5.4-06 X116-4.5.4-01: Bob's 3-message identity computed independently from what is on
/// the wire: M_B = HMAC(KM_B, C_B, ID_B); ID_B decrypted with AES-128-CTR under KC_B from C_B;
/// mac_B = HMAC(KS_B, N_A | N_B | d | pubKey_B | form_B); sign_B verified over mac_B with the
/// `rsa` crate (RSASSA-PKCS1-v1_5, SHA-256) and Bob's key components. Keys from K (hazmat), by
/// HMAC over the labels, the cipher key being the last 16 octets (A10).
#[test]
fn bobs_identity_verified_independently() {
    use aes::cipher::{KeyIvInit, StreamCipher};
    let (ca, cb, mut a, mut b) = keyed_pair();
    let seen = run_recorded(
        Mode::Three,
        Initiator::new(Arc::new(ca), j(BOB), "t"),
        Responder::new(Arc::new(cb), j(ALICE), "t"),
        &mut a,
        &mut b,
    );
    let (req, resp) = (&seen[0].1, &seen[1].1);
    let k = a.established.as_ref().unwrap().k().expose_secret().to_vec();
    let kc_b = hmac256(&k, &[b"Responder Cipher Key"]);
    let km_b = hmac256(&k, &[b"Responder MAC Key"]);
    let ks_b = hmac256(&k, &[b"Responder SIGMA Key"]);
    let ca_ = u128::from_be_bytes({
        let c = value(resp, "counter");
        let mut full = [0u8; 16];
        full[16 - c.len()..].copy_from_slice(&c);
        full
    });
    let cb_ = ca_ ^ (1 << 127);
    let id_b = value(resp, "identity");
    assert_eq!(hmac256(&km_b, &[&esession_crypto::mpi::encode_u128(cb_), &id_b]), value(resp, "mac"), "M_B");
    let mut plain = id_b.clone();
    let mut ctr = ctr::Ctr128BE::<aes::Aes128>::new_from_slices(&kc_b[16..], &cb_.to_be_bytes()).unwrap();
    ctr.apply_keystream(&mut plain);
    let text = String::from_utf8(plain).unwrap();
    let at = text.find("<SignatureValue>").unwrap();
    let (pubkey_b, sig) = text.split_at(at);
    let sig = b64d(sig.trim_start_matches("<SignatureValue>").trim_end_matches("</SignatureValue>"));
    assert!(pubkey_b.starts_with("<KeyValue><RSAKeyValue><Modulus>"), "{pubkey_b}");
    let form_b = esession_forms::normalize::form_content(
        esession_crypto::Profile::Xep,
        form_x(resp),
        &["identity", "mac"],
    )
    .unwrap();
    let mac_b = hmac256(
        &ks_b,
        &[
            &value(req, "my_nonce"),
            &value(resp, "my_nonce"),
            &value(resp, "dhkeys"),
            pubkey_b.as_bytes(),
            &form_b,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(include_str!("../vectors/identity-keys.json")).unwrap();
    let h = |f: &str| {
        let s = v["rsa"][f].as_str().unwrap();
        hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
    };
    let key = rsa::PublicKey::new(
        crypto_bigint::BoxedUint::from_be_slice_vartime(&h("n")),
        crypto_bigint::BoxedUint::from_be_slice_vartime(&h("e")),
    )
    .unwrap();
    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &sha(&mac_b), &sig).expect("sign_B over mac_B");
}

/// X116-4.6.1-01: Alice refuses d = 0, 1, p - 1 and p (group 1) with `<not-acceptable/>`
/// naming `dhkeys`.
#[test]
fn d_out_of_range_is_refused() {
    let p = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD\
             EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF";
    let p = hex::decode(p).unwrap();
    let mut p_1 = p.clone();
    *p_1.last_mut().unwrap() -= 1;
    for d in [vec![0u8], vec![1], p_1, p] {
        let cfg = Arc::new(small_cfg(Config::default()));
        let mut alice = Initiator::new(cfg.clone(), j(BOB), "t");
        let mut bob = Responder::new(cfg, j(ALICE), "t");
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(1))).unwrap();
        to_bob(&mut bob, &mut b, &sent(&drain(&mut alice)).remove(0)).unwrap();
        let resp = sent(&drain(&mut bob)).remove(0);
        let r = to_alice(
            &mut alice,
            &mut a,
            &set_values(&resp, "dhkeys", &[&esession_crypto::mpi::b64_encode(&d)]),
        );
        assert!(
            matches!(&r, Err(Error::PeerMisbehaved { check: Check::DRange, condition: Condition::NotAcceptable, fields }) if fields == &["dhkeys".to_owned()]),
            "{r:?}"
        );
    }
}

/// X116-4.6.4-04: `rshashes` holds the real HMAC(N_A, secret) first, then random decoys of the
/// hash's length, pairwise distinct and different with another generator.
#[test]
fn rshashes_real_first_then_random_decoys() {
    let mut decoy_sets = Vec::new();
    for seed in [1u64, 5] {
        let cfg = Arc::new(small_cfg(Config::default()));
        let (mut a, mut b) = (Side::new(seed), Side::new(seed + 1));
        negotiate(Mode::Four, cfg.clone(), cfg.clone(), &mut a, &mut b, no_tamper());
        let secret = a.retained.for_jid(&bare(BOB), at(0))[0].secret.expose_secret().to_vec();
        let seen = run_recorded(
            Mode::Four,
            Initiator::new(cfg.clone(), j(BOB), "t"),
            Responder::new(cfg, j(ALICE), "t"),
            &mut a,
            &mut b,
        );
        let na = value(&seen[0].1, "my_nonce");
        let rs: Vec<Vec<u8>> = values(&seen[2].1, "rshashes").unwrap().iter().map(|v| b64d(v)).collect();
        assert_eq!(rs.len(), 3, "one real value and two decoys");
        assert_eq!(rs[0], hmac256(&na, &[&secret]), "the real one first");
        assert!(rs.iter().all(|r| r.len() == 32));
        assert!(rs[0] != rs[1] && rs[1] != rs[2] && rs[0] != rs[2]);
        assert!(a.established.as_ref().unwrap().retained_secret_used());
        decoy_sets.push(rs[1..].to_vec());
    }
    assert_ne!(decoy_sets[0], decoy_sets[1]);
}

/// X116-4.7.1-01: Bob checks SHA256(e) against the committed He before anything else
/// (`HeCommitment`, even for an e in range and an accept otherwise well formed), then
/// 1 < e < p - 1 (`ERange` for e = 1 committed as He(1)); both `<feature-not-implemented/>`
/// naming `dhkeys`.
#[test]
fn he_commitment_and_e_range() {
    let other_e = esession_crypto::DhKeyPair::from_exponent(esession_crypto::ModpGroup::G1, &[0x77; 40])
        .unwrap()
        .public()
        .to_vec();
    let b64 = esession_crypto::mpi::b64_encode;
    for (he_of, e, check) in
        [(other_e.clone(), None, Check::HeCommitment), (vec![1u8], Some(vec![1u8]), Check::ERange)]
    {
        let cfg = Arc::new(small_cfg(Config::default()));
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        let mut bob_said = Vec::new();
        run_parties(
            Mode::Four,
            Initiator::new(cfg.clone(), j(BOB), "t"),
            Responder::new(cfg, j(ALICE), "t"),
            &mut a,
            &mut b,
            Box::new(|i, from_alice, s: Element| {
                if !from_alice {
                    bob_said.push(s.clone());
                }
                Some(match (i, &e) {
                    (0, _) => set_values(&s, "dhhashes", &[&b64(&sha(&he_of))]),
                    (2, Some(e)) => set_values(&s, "dhkeys", &[&b64(e)]),
                    _ => s,
                })
            }),
        );
        assert!(
            matches!(&b.rejected, Some(Error::PeerMisbehaved { check: c, condition: Condition::FeatureNotImplemented, fields }) if *c == check && fields == &["dhkeys".to_owned()]),
            "{check:?}: {:?}",
            b.rejected
        );
        assert_eq!(error_fields(bob_said.last().unwrap()).1, vec!["dhkeys".to_owned()]);
    }
}

/// X116-4.7.3-01 X116-4.8.1-01: retained secrets older than the store's limit are not used
/// (expiry checked by Bob when he matches `rshashes`, by Alice when she matches `srshash` and
/// builds `rshashes`): with a 60-second limit, a session at t = 60 uses the secret of the
/// session at t = 0, one at t = 61 does not (on Bob's side, on Alice's side).
#[test]
fn retained_secrets_expire() {
    for (alice_limit, bob_limit) in [(0u64, 60u64), (60, 0)] {
        for (t, used) in [(60i64, true), (61, false)] {
            let cfg = Arc::new(small_cfg(Config::default()));
            let (mut a, mut b) = (Side::new(1), Side::new(2));
            a.retained = MemoryRetained::new(alice_limit);
            b.retained = MemoryRetained::new(bob_limit);
            let run = |a: &mut Side, b: &mut Side, now| {
                let mut rs = None;
                run_parties_at(
                    now,
                    Mode::Four,
                    Initiator::new(cfg.clone(), j(BOB), "t"),
                    Responder::new(cfg.clone(), j(ALICE), "t"),
                    a,
                    b,
                    Box::new(|i, _, s: Element| {
                        if i == 2 {
                            rs = values(&s, "rshashes").map(|v| v.len());
                        }
                        Some(s)
                    }),
                );
                rs
            };
            run(&mut a, &mut b, at(0));
            a.established = None;
            b.established = None;
            let rs = run(&mut a, &mut b, at(t));
            let (ea, eb) = (a.established.as_ref().unwrap(), b.established.as_ref().unwrap());
            let what = format!("limits {alice_limit}/{bob_limit} at t = {t}");
            assert_eq!(ea.retained_secret_used(), used, "{what}");
            assert_eq!(eb.retained_secret_used(), used, "{what}");
            if alice_limit > 0 {
                assert_eq!(
                    rs,
                    Some(if used { 3 } else { 2 }),
                    "{what}: Alice sends no rshash of an expired secret"
                );
            }
        }
    }
}

/// X116-4.7.3-02 X116-4.7.3-03 (I31): Alice returns under another JID; Bob finds her secret by
/// the extended search across the other JIDs' secrets, newest first, within
/// `Config::extended_search`: found when it is within the bound, not when 300 newer secrets of
/// other contacts come first (default 256), nor with the search off.
#[test]
fn the_extended_search_finds_a_secret_of_another_jid_within_its_bound() {
    use esession_negotiate::RetainedStore;
    for (newer, bound, found) in [(0, 256, true), (300, 256, false), (300, usize::MAX, true), (0, 0, false)] {
        let cfg = Arc::new(small_cfg(Config::default()));
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        // A first session: each side keeps a secret for the other.
        negotiate(Mode::Four, cfg.clone(), cfg.clone(), &mut a, &mut b, no_tamper());
        for i in 0..newer {
            let other = j(&format!("c{i}@example.net")).to_bare();
            b.retained
                .replace(
                    &other,
                    None,
                    esession_crypto::SecretBytes::from_slice(&[7; 32]),
                    at(1 + i as i64),
                    false,
                )
                .unwrap();
        }
        let mut bob_cfg = small_cfg(Config::default());
        bob_cfg.extended_search = bound;
        // Alice comes back as carol@: nothing is retained for that JID at Bob.
        run_parties_at(
            at(1000),
            Mode::Four,
            Initiator::new(cfg.clone(), j(BOB), "t2"),
            Responder::new(Arc::new(bob_cfg), j("carol@example.org/pda"), "t2"),
            &mut a,
            &mut b,
            no_tamper(),
        );
        let what = format!("{newer} newer secrets, bound {bound}");
        assert_eq!(b.established.as_ref().unwrap().retained_secret_used(), found, "{what}");
        assert_eq!(a.established.as_ref().unwrap().retained_secret_used(), found, "{what}");
    }
}

/// X116-4.7.3-05 X116-4.8.1-04: the session keys come from K_final = HASH(K | SRS | OSS): a
/// stanza layer keyed independently from K_final (HMAC over the labels) reads what each side
/// sends, in a second session (retained secret and other shared secret both in K_final).
#[test]
fn session_keys_come_from_k_final() {
    use esession_stanza::{DirectionKeys, EncryptOptions, Params, Session};
    let mut c = small_cfg(Config::default());
    c.oss = Some(esession_crypto::SecretBytes::from_slice(b"shared password"));
    let cfg = Arc::new(c);
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    negotiate(Mode::Four, cfg.clone(), cfg.clone(), &mut a, &mut b, no_tamper());
    negotiate(Mode::Four, cfg.clone(), cfg, &mut a, &mut b, no_tamper());
    let (ea, eb) = (a.established.as_mut().unwrap(), b.established.as_mut().unwrap());
    assert!(ea.retained_secret_used());
    let k = ea.k().expose_secret().to_vec();
    let key = |label: &str| hmac256(&k, &[label.as_bytes()]);
    let reader = |est: &Established, initiator_sends: bool| {
        let p = est.session().params().clone();
        let own = esession_crypto::DhKeyPair::from_exponent(p.group, &[0x33; 40]).unwrap();
        let peer = own.public().to_vec();
        let (sender, other) =
            if initiator_sends { ("Initiator", "Responder") } else { ("Responder", "Initiator") };
        let dir = |who: &str, counter| DirectionKeys {
            cipher_key: esession_crypto::SecretBytes::new(key(&format!("{who} Cipher Key"))[16..].to_vec()),
            mac_key: esession_crypto::SecretBytes::new(key(&format!("{who} MAC Key"))),
            counter,
        };
        // Receives what `est` sends: `est`'s counters, its sending keys as our receiving ones.
        Session::new(
            Params { ..p },
            dir(other, 0),
            dir(sender, est.session().send_counter().unwrap()),
            own,
            peer,
        )
        .unwrap()
    };
    let mut r = TestRng::new(4);
    let mut from_alice = reader(ea, true);
    let w = ea.encrypt(&chat("from Alice"), EncryptOptions::default(), &mut r).unwrap();
    let (clear, _) = from_alice.decrypt(&w).unwrap();
    assert_eq!(clear.get_child("body", "jabber:client").unwrap().text(), "from Alice");
    let mut from_bob = reader(eb, false);
    let w = eb.encrypt(&chat("from Bob"), EncryptOptions::default(), &mut r).unwrap();
    let (clear, _) = from_bob.decrypt(&w).unwrap();
    assert_eq!(clear.get_child("body", "jabber:client").unwrap().text(), "from Bob");
}

/// X116-4.7.4-04: without a retained secret, `srshash` is random: 32 octets (SHA-256), other
/// with another generator.
#[test]
fn srshash_without_a_retained_secret_is_random() {
    let hashes: Vec<Vec<u8>> = [2u64, 3]
        .iter()
        .map(|seed| {
            let cfg = Arc::new(small_cfg(Config::default()));
            let (mut a, mut b) = (Side::new(1), Side::new(*seed));
            let seen = run_recorded(
                Mode::Four,
                Initiator::new(cfg.clone(), j(BOB), "t"),
                Responder::new(cfg, j(ALICE), "t"),
                &mut a,
                &mut b,
            );
            assert!(a.established.is_some());
            value(&seen[3].1, "srshash")
        })
        .collect();
    assert_eq!((hashes[0].len(), hashes[1].len()), (32, 32));
    assert_ne!(hashes[0], hashes[1]);
}

/// X116-4.7.4-07 X116-4.8.1-03: both sides store HMAC(HASH, K_final, "New Retained Secret") in
/// place of the secret they used, computed here independently.
#[test]
fn new_retained_secret_is_hmac_of_k_final() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    for round in 0..2 {
        negotiate(Mode::Four, cfg.clone(), cfg.clone(), &mut a, &mut b, no_tamper());
        let k = a.established.as_ref().unwrap().k().expose_secret().to_vec();
        let expected = hmac256(&k, &[b"New Retained Secret"]);
        for (who, store, jid) in [("Alice", &a.retained, BOB), ("Bob", &b.retained, ALICE)] {
            let kept: Vec<Vec<u8>> =
                store.for_jid(&bare(jid), at(0)).iter().map(|r| r.secret.expose_secret().to_vec()).collect();
            assert_eq!(kept, vec![expected.clone()], "{who}, round {round}: the used secret replaced");
        }
    }
}
