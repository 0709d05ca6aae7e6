//! XEP-0200 §9: several re-keys in flight, `<new/>` counting, crossing re-keys, unique DH
//! values, and the re-key keys against an independent computation.

use crate::bigint::{modp1, modpow};
use crate::rules::{c_of, p, recv, rekey, send};
use crate::{TestRng, chat, pair, pair_with_keys};
use esession_crypto::{CryptAlg, CtrCipher, HashAlg, Profile, SecretBytes, mpi};
use esession_stanza::hazmat::{decrypt_raw, verify};
use esession_stanza::{EncryptOptions, Encrypted, NS, Session};
use hmac::{KeyInit, Mac};
use minidom::Element;
use rand_core::TryRng;

fn new_of(wire: &Element) -> Option<String> {
    c_of(wire).get_child("new", NS).map(Element::text)
}

/// X200-9.2-11, X200-6-06, X200-8-02 for n >= 2: two unanswered re-keys keep three sets; a
/// stanza Bob wrote before he had any key selects set 0; once he has both keys his next stanza
/// says `<new>2</new>` and Alice is left with one set. `<new/>` appears only when keys came
/// since the sender's last stanza.
#[test]
fn two_rekeys_in_flight_and_new_counts_both() {
    let (mut a, mut b) = pair(&p());
    let w1 = rekey(&mut a, Some("key 1"), 51);
    let w2 = rekey(&mut a, Some("key 2"), 52);
    assert_eq!(a.stored_sets(), 3, "{{KC_B KM_B x}} for the old keys and each unanswered re-key");
    // Bob has received nothing: no <new/>, old keys; Alice uses set 0 and keeps all three.
    let b0 = send(&mut b, "before any key");
    assert_eq!(new_of(&b0), None);
    assert_eq!(recv(&mut a, &b0).as_deref(), Some("before any key"));
    assert_eq!(a.stored_sets(), 3);
    // Bob receives both keys, then writes: <new>2</new>.
    assert!(recv(&mut b, &w1).is_some());
    assert!(recv(&mut b, &w2).is_some());
    let b1 = send(&mut b, "after both keys");
    assert_eq!(new_of(&b1).as_deref(), Some("2"), "two <key/>s since Bob's last stanza");
    assert_eq!(recv(&mut a, &b1).as_deref(), Some("after both keys"));
    assert_eq!(a.stored_sets(), 1, "the sets older than the selected one are destroyed");
    // No key since his last stanza: no <new/>.
    let b2 = send(&mut b, "again");
    assert_eq!(new_of(&b2), None);
    assert_eq!(recv(&mut a, &b2).as_deref(), Some("again"));
    let a1 = send(&mut a, "from alice");
    assert_eq!(new_of(&a1), None, "Alice received no key from Bob");
    assert!(recv(&mut b, &a1).is_some());

    // The keys answered one at a time: <new>1</new> twice, 3 -> 2 -> 1 sets.
    let (mut a, mut b) = pair(&p());
    let w1 = rekey(&mut a, Some("key 1"), 53);
    let w2 = rekey(&mut a, Some("key 2"), 54);
    assert!(recv(&mut b, &w1).is_some());
    let b1 = send(&mut b, "after key 1");
    assert_eq!(new_of(&b1).as_deref(), Some("1"));
    assert!(recv(&mut a, &b1).is_some());
    assert_eq!(a.stored_sets(), 2);
    assert!(recv(&mut b, &w2).is_some());
    let b2 = send(&mut b, "after key 2");
    assert_eq!(new_of(&b2).as_deref(), Some("1"), "one more key since Bob's last stanza");
    assert!(recv(&mut a, &b2).is_some());
    assert_eq!(a.stored_sets(), 1);
}

/// X200-9.3-03: after crossing re-keys, Bob writes under his new key before he has Alice's key
/// (no `<new/>`): Alice selects set 0, which must hold Bob's new keys too (the peer's keys are
/// replaced in every stored set, not only the newest).
#[test]
fn crossing_rekey_replaces_the_peer_keys_in_every_set() {
    let (mut a, mut b) = pair(&p());
    let wa = rekey(&mut a, Some("from alice"), 61);
    let wb = rekey(&mut b, Some("from bob"), 62);
    assert_eq!(recv(&mut a, &wb).as_deref(), Some("from bob"));
    assert_eq!(a.stored_sets(), 2);
    let b1 = send(&mut b, "new key, no <new/>");
    assert_eq!(new_of(&b1), None);
    assert_eq!(recv(&mut a, &b1).as_deref(), Some("new key, no <new/>"), "set 0 holds Bob's new keys");
    assert_eq!(a.stored_sets(), 2);
    assert!(recv(&mut b, &wa).is_some());
    let b2 = send(&mut b, "now with <new/>");
    assert_eq!(new_of(&b2).as_deref(), Some("1"));
    assert!(recv(&mut a, &b2).is_some());
    assert_eq!(a.stored_sets(), 1);
    let a1 = send(&mut a, "and back");
    assert!(recv(&mut b, &a1).is_some());
}

/// X200-11.3-01: every DH value is unique. One generator drives a whole session: three re-keys
/// by each side give six distinct `<key/>` values, all different from the negotiation's e and d.
#[test]
fn every_rekey_value_is_unique() {
    let prm = p();
    let mut rng = TestRng::new(4242);
    let x = esession_crypto::DhKeyPair::generate(prm.group, &mut rng).unwrap();
    let y = esession_crypto::DhKeyPair::generate(prm.group, &mut rng).unwrap();
    let mut seen = vec![x.public().to_vec(), y.public().to_vec()];
    let (mut a, mut b, _) = pair_with_keys(&prm, 4242);
    let mut round = |s: &mut Session, r: &mut Session, i: usize| {
        let opts = EncryptOptions { rekey: true, publish_old: false };
        let w = s.encrypt(&chat(&format!("k{i}")), opts, &mut rng).unwrap();
        let key = mpi::b64_decode(&c_of(&w).get_child("key", NS).unwrap().text()).unwrap();
        assert!(!seen.contains(&key), "a repeated DH value");
        seen.push(key);
        assert!(r.decrypt(&w).unwrap().1.rekeyed);
        let back = send(r, "ack");
        assert!(recv(s, &back).is_some());
    };
    for i in 0..3 {
        round(&mut a, &mut b, i);
        round(&mut b, &mut a, i);
    }
    assert_eq!(seen.len(), 8);
}

fn hmac_sha256(key: &[u8], label: &str) -> Vec<u8> {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(label.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The first 32 octets a seeded generator gives, top bit set: the 256-bit exponent
/// `DhKeyPair::generate` draws for MODP group 1.
fn exponents(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut r = TestRng::new(seed);
    (0..n)
        .map(|_| {
            let mut x = vec![0u8; 32];
            r.try_fill_bytes(&mut x).unwrap();
            x[0] |= 0x80;
            x
        })
        .collect()
}

fn parsed(w: &Element) -> Encrypted {
    Encrypted::parse(Profile::Xep, c_of(w)).unwrap()
}

fn aes128(key: &[u8]) -> CtrCipher {
    CtrCipher::new(&CryptAlg::Aes128Ctr, Profile::Xep, &SecretBytes::from_slice(key)).unwrap()
}

fn contains(plain: Option<Vec<u8>>, text: &str) -> bool {
    String::from_utf8_lossy(&plain.unwrap()).contains(text)
}

/// X200-9.2-01, X200-9.2-03, X200-9.2-07, X200-9.2-08 against an independent computation:
/// x' from the seeded generator, e' = g^x', K = d^x' (not hashed) by a schoolbook modpow,
/// KC = last 16 octets of HMAC-SHA256(K, "Rekey Initiator Crypt"), KM = HMAC-SHA256(K, "Rekey
/// Initiator MAC") with the hmac crate. The re-key stanza is sealed with the OLD keys and does
/// not verify with the new ones; Alice's next stanza is sealed with the new ones; Bob's reply
/// with the "Rekey Acceptor" keys.
#[test]
fn rekey_keys_match_an_independent_computation() {
    let prm = p();
    assert_eq!((prm.cipher.clone(), prm.hash.clone()), (CryptAlg::Aes128Ctr, HashAlg::Sha256));
    let pm = modp1();
    let (mut a, mut b, raw) = pair_with_keys(&prm, 90);
    // d = g^y with y the negotiation's second exponent of seed 90.
    let xy = exponents(90, 2);
    let d = modpow(&[2], &xy[1], &pm);
    let x_new = exponents(91, 1).remove(0);
    let e_new = modpow(&[2], &x_new, &pm);
    let k = modpow(&d, &x_new, &pm);
    assert!(k.len() <= 96 && k[0] != 0, "K as minimal octets (§6.1)");

    // The re-key stanza: <key/> = e', sealed with the old KC_A/KM_A at C_A.
    let c0 = a.send_counter().unwrap();
    assert_eq!(c0, raw.counter);
    let opts = EncryptOptions { rekey: true, publish_old: false };
    let w = a.encrypt(&chat("re-key"), opts, &mut TestRng::new(91)).unwrap();
    let c_w = parsed(&w);
    assert_eq!(c_w.key.as_deref(), Some(e_new.as_slice()), "e' = g^x'");
    let h = HashAlg::Sha256;
    verify(Profile::Xep, &h, raw.km.expose_secret(), &c_w, c0).unwrap();
    let km_init = hmac_sha256(&k, "Rekey Initiator MAC");
    assert!(verify(Profile::Xep, &h, &km_init, &c_w, c0).is_err(), "not with the new KM_A");
    let (plain, c1) = decrypt_raw(&raw.cipher, c0, &c_w);
    assert!(contains(plain, "re-key"), "encrypted with the old KC_A");
    assert_eq!(a.send_counter(), Some(c1));

    // Alice's next stanza: the new keys.
    let kc_init = hmac_sha256(&k, "Rekey Initiator Crypt");
    let w2 = send(&mut a, "after the re-key");
    let c_w2 = parsed(&w2);
    verify(Profile::Xep, &h, &km_init, &c_w2, c1).unwrap();
    assert!(verify(Profile::Xep, &h, raw.km.expose_secret(), &c_w2, c1).is_err());
    let (plain, _) = decrypt_raw(&aes128(&kc_init[16..]), c1, &c_w2);
    assert!(contains(plain, "after the re-key"), "KC_A = the last 16 octets of the HMAC");
    let (wrong, _) = decrypt_raw(&aes128(&kc_init[..16]), c1, &c_w2);
    assert!(!contains(wrong, "after the re-key"));

    // Bob accepts (one stored set): his keys become the acceptor's.
    assert!(b.decrypt(&w).unwrap().1.rekeyed);
    assert_eq!(recv(&mut b, &w2).as_deref(), Some("after the re-key"));
    let cb = b.send_counter().unwrap();
    let reply = send(&mut b, "acceptor keys");
    let c_r = parsed(&reply);
    let km_acc = hmac_sha256(&k, "Rekey Acceptor MAC");
    let kc_acc = hmac_sha256(&k, "Rekey Acceptor Crypt");
    verify(Profile::Xep, &h, &km_acc, &c_r, cb).unwrap();
    let (plain, _) = decrypt_raw(&aes128(&kc_acc[16..]), cb, &c_r);
    assert!(contains(plain, "acceptor keys"));
    assert_eq!(recv(&mut a, &reply).as_deref(), Some("acceptor keys"));
}
