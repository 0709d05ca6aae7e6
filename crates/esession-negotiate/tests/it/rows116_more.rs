//! XEP-0116 §4.5-§4.8 rows: the identities each side sends, recomputed here from the wire with
//! the `hmac`, `sha2`, `aes`/`ctr` and `rsa` crates (keys from the session's K, hazmat), and the
//! identity methods Bob chooses.

use crate::*;
use aes::cipher::{KeyIvInit, StreamCipher};
use esession_crypto::Profile;
use esession_forms::names::PubkeyMethod;

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn b64d(s: &str) -> Vec<u8> {
    esession_crypto::mpi::b64_decode(s).unwrap()
}

/// The single value of field `var`, Base64-decoded.
fn value(stanza: &Element, var: &str) -> Vec<u8> {
    let v = values(stanza, var).unwrap_or_else(|| panic!("no {var}"));
    assert_eq!(v.len(), 1, "{var}");
    b64d(&v[0])
}

/// The normalized content of a stanza's form without `identity` and `mac` (form_A2, form_B,
/// form_B2), or whole (form_A).
fn content(stanza: &Element, whole: bool) -> Vec<u8> {
    let skip: &[&str] = if whole { &[] } else { &["identity", "mac"] };
    esession_forms::normalize::form_content(Profile::Xep, form_x(stanza), skip).unwrap()
}

/// A counter as §6.1 octets: big-endian, no leading zero octets.
fn counter_octets(c: u128) -> Vec<u8> {
    let b = c.to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(15);
    b[first..].to_vec()
}

/// C_A as sent in Bob's response.
fn counter_a(resp: &Element) -> u128 {
    let c = value(resp, "counter");
    let mut full = [0u8; 16];
    full[16 - c.len()..].copy_from_slice(&c);
    u128::from_be_bytes(full)
}

/// One direction's keys from K: (KC, KM, KS) by HMAC-SHA-256 over the labels.
fn direction(k: &[u8], who: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let key = |what: &str| hmac256(k, &[format!("{who} {what} Key").as_bytes()]);
    (key("Cipher"), key("MAC"), key("SIGMA"))
}

/// AES-128-CTR from counter `c` (SP 800-38A, T_1 = C) keyed with the last 16 octets of KC.
fn decrypt(kc: &[u8], c: u128, data: &[u8]) -> Vec<u8> {
    let mut plain = data.to_vec();
    let mut ctr =
        ctr::Ctr128BE::<aes::Aes128>::new_from_slices(&kc[kc.len() - 16..], &c.to_be_bytes()).unwrap();
    ctr.apply_keystream(&mut plain);
    plain
}

/// The RSA public key of the tests' identity keys (both parties hold the same one).
fn rsa_public() -> rsa::PublicKey {
    let v: serde_json::Value = serde_json::from_str(include_str!("../vectors/identity-keys.json")).unwrap();
    let h = |f: &str| {
        let s = v["rsa"][f].as_str().unwrap();
        hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
    };
    rsa::PublicKey::new(
        crypto_bigint::BoxedUint::from_be_slice_vartime(&h("n")),
        crypto_bigint::BoxedUint::from_be_slice_vartime(&h("e")),
    )
    .unwrap()
}

/// Splits an identity plaintext `pubKey | <SignatureValue>b64</SignatureValue>` (Profile::Xep).
fn split_identity(plain: Vec<u8>) -> (String, Vec<u8>) {
    let text = String::from_utf8(plain).unwrap();
    let at = text.find("<SignatureValue>").expect("a signature");
    let (pubkey, sig) = text.split_at(at);
    let sig = b64d(sig.trim_start_matches("<SignatureValue>").trim_end_matches("</SignatureValue>"));
    (pubkey.to_owned(), sig)
}

fn verify_rsa(mac: &[u8], sig: &[u8]) {
    use sha2::Digest;
    rsa_public()
        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(mac), sig)
        .expect("a signature over the MAC");
}

/// X116-4.6.3-01 X116-4.6.3-02 X116-4.6.4-01: Alice's 3-message accept, recomputed from the
/// wire: it carries N_B in `nonce`, ID_A in `identity` and M_A in `mac`; M_A = HMAC(KM_A, C_A |
/// ID_A); ID_A decrypts (AES-128-CTR, KC_A, C_A) to her `<KeyValue/>` and a signature that
/// verifies (rsa crate) over mac_A = HMAC(KS_A, N_B | N_A | e | pubKey_A | form_A | form_A2):
/// the steps Bob performs for his identity, with the nonces in Alice's order and form_A2. Bob
/// verified it and holds her key.
#[test]
fn alices_3_message_identity_verified_independently() {
    let (ca, cb, mut a, mut b) = keyed_pair();
    let seen = run_recorded(
        Mode::Three,
        Initiator::new(Arc::new(ca), j(BOB), "t"),
        Responder::new(Arc::new(cb), j(ALICE), "t"),
        &mut a,
        &mut b,
    );
    assert_eq!(seen.len(), 3, "no error reply: {:?} {:?}", a.rejected, b.rejected);
    let (req, resp, accept) = (&seen[0].1, &seen[1].1, &seen[2].1);
    assert!(seen[2].0, "the accept is Alice's");
    assert_eq!(values(resp, "init_pubkey"), Some(vec!["key".to_owned()]));
    let (na, nb) = (value(req, "my_nonce"), value(resp, "my_nonce"));
    assert_eq!(value(accept, "nonce"), nb, "N_B in `nonce`");
    let (id_a, m_a) = (value(accept, "identity"), value(accept, "mac"));
    let k = a.established.as_ref().unwrap().k().expose_secret().to_vec();
    let (kc_a, km_a, ks_a) = direction(&k, "Initiator");
    let c_a = counter_a(resp);
    assert_eq!(hmac256(&km_a, &[&counter_octets(c_a), &id_a]), m_a, "M_A");
    let (pubkey_a, sign_a) = split_identity(decrypt(&kc_a, c_a, &id_a));
    assert!(pubkey_a.starts_with("<KeyValue><RSAKeyValue><Modulus>"), "{pubkey_a}");
    let e = value(req, "dhkeys");
    let mac_a =
        hmac256(&ks_a, &[&nb, &na, &e, pubkey_a.as_bytes(), &content(req, true), &content(accept, false)]);
    verify_rsa(&mac_a, &sign_a);
    let eb = b.established.as_ref().expect("Bob verified Alice's identity");
    assert_eq!(eb.peer_key(), Some(&keys().0.public_key()));
}

/// X116-4.7.4-01 X116-4.7.4-02 X116-4.7.4-05 X116-4.5.4-03 X116-4.6.2-03: Bob's 4-message
/// identity, recomputed from the wire with the final keys (from K_final): his form carries N_A
/// in `nonce`, ID_B and M_B; M_B = HMAC(KM_B, C_B | ID_B); ID_B decrypts (KC_B, C_B) to mac_B =
/// HMAC(KS_B, N_A | N_B | d | pubKey_B | form_B | form_B2), with form_B2 (his identity form
/// without `identity` and `mac`) included and pubKey_B the zero-length string for `none`; for
/// `key`, to his `<KeyValue/>` and a signature over that mac_B (rsa crate). Alice accepted it
/// (with pubKey_B empty for `none`, his key for `key`).
#[test]
fn bobs_4_message_identity_verified_independently() {
    for keyed in [false, true] {
        let (ca, cb, mut a, mut b) = if keyed {
            keyed_pair()
        } else {
            (small_cfg(Config::default()), small_cfg(Config::default()), Side::new(1), Side::new(2))
        };
        let seen = run_recorded(
            Mode::Four,
            Initiator::new(Arc::new(ca), j(BOB), "t"),
            Responder::new(Arc::new(cb), j(ALICE), "t"),
            &mut a,
            &mut b,
        );
        assert_eq!(seen.len(), 4, "keyed {keyed}, no error reply: {:?} {:?}", a.rejected, b.rejected);
        let (req, resp, ident) = (&seen[0].1, &seen[1].1, &seen[3].1);
        assert!(!seen[3].0, "the fourth message is Bob's");
        let method = if keyed { "key" } else { "none" };
        assert_eq!(values(resp, "resp_pubkey"), Some(vec![method.to_owned()]));
        let (na, nb, d) = (value(req, "my_nonce"), value(resp, "my_nonce"), value(resp, "dhkeys"));
        assert_eq!(value(ident, "nonce"), na, "N_A in `nonce`");
        let (id_b, m_b) = (value(ident, "identity"), value(ident, "mac"));
        let ea = a.established.as_ref().expect("Alice verified Bob's identity");
        let k_final = ea.k().expose_secret().to_vec();
        let (kc_b, km_b, ks_b) = direction(&k_final, "Responder");
        let c_b = counter_a(resp) ^ (1 << 127);
        assert_eq!(hmac256(&km_b, &[&counter_octets(c_b), &id_b]), m_b, "M_B");
        let plain = decrypt(&kc_b, c_b, &id_b);
        let (form_b, form_b2) = (content(resp, false), content(ident, false));
        assert!(!form_b2.is_empty());
        if keyed {
            let (pubkey_b, sign_b) = split_identity(plain);
            assert!(pubkey_b.starts_with("<KeyValue><RSAKeyValue><Modulus>"), "{pubkey_b}");
            let mac_b = hmac256(&ks_b, &[&na, &nb, &d, pubkey_b.as_bytes(), &form_b, &form_b2]);
            verify_rsa(&mac_b, &sign_b);
            assert_eq!(ea.peer_key(), Some(&keys().1.public_key()));
        } else {
            let mac_b = hmac256(&ks_b, &[&na, &nb, &d, b"", &form_b, &form_b2]);
            assert_eq!(plain, mac_b, "ID_B is mac_B with pubKey_B empty");
            assert_ne!(plain, hmac256(&ks_b, &[&na, &nb, &d, &form_b]), "form_B2 is in mac_B");
            assert!(ea.peer_key().is_none());
        }
        assert!(b.established.is_some());
    }
}

/// Runs a 4-message negotiation of `ca` and `cb` with the response (message 1) passed through
/// `edit`; returns the stanzas as sent (before `edit`).
fn run_editing_response(
    ca: Config,
    cb: Config,
    a: &mut Side,
    b: &mut Side,
    edit: &dyn Fn(Element) -> Element,
) -> Vec<Element> {
    let mut seen = Vec::new();
    negotiate(
        Mode::Four,
        Arc::new(ca),
        Arc::new(cb),
        a,
        b,
        Box::new(|i, _, s: Element| {
            seen.push(s.clone());
            Some(if i == 1 { edit(s) } else { s })
        }),
    );
    seen
}

fn refused_naming(side: &Side, var: &str) -> bool {
    matches!(&side.rejected, Some(Error::PeerMisbehaved { check: Check::Options, condition: Condition::NotAcceptable, fields }) if fields == &[var.to_owned()])
}

/// X116-4.5.2-02: Bob's response sets `init_pubkey` to the identification he requires: Alice
/// offers `none` then `key`; a Bob accepting only `key` answers `key` and ends up holding her
/// proven key, a Bob accepting `none` answers `none` and holds none. A response whose
/// `init_pubkey` is missing, or names a method Alice did not offer, is refused by Alice naming
/// `init_pubkey` before any MAC is checked.
#[test]
fn bob_sets_init_pubkey_to_what_he_requires() {
    for (accepts, answer) in
        [(vec![PubkeyMethod::Key], "key"), (vec![PubkeyMethod::None, PubkeyMethod::Key], "none")]
    {
        let (mut ca, mut cb, mut a, mut b) = keyed_pair();
        ca.init_pubkey = vec![PubkeyMethod::None, PubkeyMethod::Key];
        cb.support.init_pubkey = accepts;
        let seen = run_editing_response(ca, cb, &mut a, &mut b, &|s| s);
        assert_eq!(values(&seen[1], "init_pubkey"), Some(vec![answer.to_owned()]), "{answer}");
        let eb =
            b.established.as_ref().unwrap_or_else(|| panic!("{answer}: {:?} {:?}", a.rejected, b.rejected));
        assert_eq!(eb.peer_key().is_some(), answer == "key", "{answer}");
    }
    let edits: [&dyn Fn(Element) -> Element; 2] =
        [&|s| replace_field(&s, "init_pubkey", None), &|s| set_values(&s, "init_pubkey", &["hash"])];
    for (n, edit) in edits.iter().enumerate() {
        let (mut ca, cb, mut a, mut b) = keyed_pair();
        ca.init_pubkey = vec![PubkeyMethod::None, PubkeyMethod::Key];
        let seen = run_editing_response(ca, cb, &mut a, &mut b, edit);
        assert_eq!(seen.len(), 3, "case {n}: Alice answered with an error");
        assert!(refused_naming(&a, "init_pubkey"), "case {n}: {:?}", a.rejected);
        assert_eq!(error_fields(&seen[2]), (Some("not-acceptable".into()), vec!["init_pubkey".into()]));
    }
}

/// X116-4.5.4-02: Bob selects his identification among Alice's `resp_pubkey` values: offered
/// only `hash`, he answers `hash` (he could do `key`); offered `none` then `key`, `none`; offered
/// `key` then `hash`, `key`; Alice ends up with his key exactly when the method is not `none`. A
/// response naming a method Alice did not offer is refused by her naming `resp_pubkey`.
#[test]
fn bob_picks_resp_pubkey_among_alices_offers() {
    use PubkeyMethod::{Hash, Key, None as NoKey};
    for (offer, answer) in [(vec![Hash], "hash"), (vec![NoKey, Key], "none"), (vec![Key, Hash], "key")] {
        let (mut ca, cb, mut a, mut b) = keyed_pair();
        ca.resp_pubkey = offer;
        let seen = run_editing_response(ca, cb, &mut a, &mut b, &|s| s);
        assert_eq!(values(&seen[1], "resp_pubkey"), Some(vec![answer.to_owned()]), "{answer}");
        let ea =
            a.established.as_ref().unwrap_or_else(|| panic!("{answer}: {:?} {:?}", a.rejected, b.rejected));
        assert_eq!(ea.peer_key().is_some(), answer != "none", "{answer}");
    }
    for other in ["key", "none"] {
        let (mut ca, cb, mut a, mut b) = keyed_pair();
        ca.resp_pubkey = vec![Hash];
        let seen = run_editing_response(ca, cb, &mut a, &mut b, &|s| set_values(&s, "resp_pubkey", &[other]));
        assert_eq!(seen.len(), 3, "{other}: Alice answered with an error");
        assert!(refused_naming(&a, "resp_pubkey"), "{other}: {:?}", a.rejected);
    }
}
