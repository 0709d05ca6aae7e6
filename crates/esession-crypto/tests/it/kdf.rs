//! The key derivation formulas of XEP-0116 against values computed here, independently, with
//! the `hmac`, `sha2` and `whirlpool` crates; the §6.1 integer encoding where it applies (DH
//! values, counters) and where it does not (hash outputs); unique DH values (XEP-0200 §11.3).

use crate::rng;
use esession_crypto::kdf::{self, SessionKeys, cipher_key};
use esession_crypto::{CryptAlg, DhKeyPair, Error, HashAlg, ModpGroup, Profile, SecretBytes};
use hmac::{KeyInit, Mac};
use sha2::Digest;

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn hmac_whirlpool(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<whirlpool::Whirlpool> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn independent_hmac(h: &HashAlg, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match h {
        HashAlg::Sha256 => hmac_sha256(key, msg),
        HashAlg::Whirlpool => hmac_whirlpool(key, msg),
        other => panic!("{other}"),
    }
}

fn independent_hash(h: &HashAlg, data: &[u8]) -> Vec<u8> {
    match h {
        HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
        HashAlg::Whirlpool => whirlpool::Whirlpool::digest(data).to_vec(),
        other => panic!("{other}"),
    }
}

const K: &[u8] = b"a shared secret K, any octets will do for a key derivation";

/// X116-4.5.3-02 (and XEP-0200 §9.2 for re-keys, X200-9.2-03): the cipher key is the LEAST
/// significant octets of KC, i.e. its last k octets: kc[16..], kc[8..] and kc for AES-128,
/// -192, -256 from a 32-octet SHA-256 KC; kc[48..] for AES-128 from a 64-octet Whirlpool KC.
/// `Profile::Gajim` keys the cipher with the whole KC.
#[test]
fn cipher_key_is_the_last_octets_of_kc() {
    for h in HashAlg::SUPPORTED {
        let keys = SessionKeys::derive(&h, &SecretBytes::from_slice(K)).unwrap();
        let kc = independent_hmac(&h, K, b"Initiator Cipher Key");
        assert_eq!(keys.initiator.kc.expose_secret(), kc.as_slice(), "{h}: KC_A = HMAC(K, label)");
        assert_eq!(keys.responder.kc.expose_secret(), independent_hmac(&h, K, b"Responder Cipher Key"));
        for (alg, k) in [(CryptAlg::Aes128Ctr, 16), (CryptAlg::Aes192Ctr, 24), (CryptAlg::Aes256Ctr, 32)] {
            let got = cipher_key(Profile::Xep, &alg, &keys.initiator.kc).unwrap();
            assert_eq!(got.expose_secret(), &kc[kc.len() - k..], "{h} {alg}");
            if k < kc.len() {
                assert_ne!(got.expose_secret(), &kc[..k], "{h} {alg}: not the first octets");
            }
        }
        let gajim = cipher_key(Profile::Gajim, &CryptAlg::Aes128Ctr, &keys.initiator.kc).unwrap();
        assert_eq!(gajim.expose_secret(), kc.as_slice());
    }
    let kc = SecretBytes::new(hmac_sha256(K, b"Initiator Cipher Key"));
    assert_eq!(
        cipher_key(Profile::Xep, &CryptAlg::Aes128Ctr, &kc).unwrap().expose_secret(),
        &kc.expose_secret()[16..]
    );
    assert!(cipher_key(Profile::Xep, &CryptAlg::None, &kc).unwrap().is_empty());
}

/// X116-4.5.3-03: every supported hash gives at least as many octets as every supported cipher
/// needs, and a KC shorter than the key is an error, never a shorter key.
#[test]
fn hash_output_covers_every_cipher_key() {
    for h in HashAlg::SUPPORTED {
        let keys = SessionKeys::derive(&h, &SecretBytes::from_slice(K)).unwrap();
        for alg in CryptAlg::SUPPORTED {
            let k = alg.key_len().unwrap();
            assert!(h.output_len().unwrap() >= k, "{h} {alg}");
            assert_eq!(cipher_key(Profile::Xep, &alg, &keys.responder.kc).unwrap().len(), k, "{h} {alg}");
            if k > 0 {
                let short = SecretBytes::new(vec![7; k - 1]);
                for profile in [Profile::Xep, Profile::Gajim] {
                    assert!(
                        matches!(cipher_key(profile, &alg, &short), Err(Error::InvalidLength { .. })),
                        "{h} {alg} {profile:?}"
                    );
                }
            }
        }
    }
}

/// X116-4.7.4-03: srshash = HMAC(HASH, SRS, "Shared Retained Secret"), SRS the key.
#[test]
fn srshash_known_answer() {
    let srs = SecretBytes::from_slice(b"the retained secret of the last session, 32 octets!");
    for h in HashAlg::SUPPORTED {
        let expected = independent_hmac(&h, srs.expose_secret(), b"Shared Retained Secret");
        assert_eq!(kdf::srshash(&h, &srs).unwrap(), expected, "{h}");
    }
}

/// X116-4.6.4-03: each rshash is HMAC(HASH, N_A, RS), the nonce N_A being the key.
#[test]
fn rshash_known_answer() {
    let na = [0x5a; 32];
    let rs = SecretBytes::from_slice(b"a retained secret");
    for h in HashAlg::SUPPORTED {
        let expected = independent_hmac(&h, &na, rs.expose_secret());
        assert_eq!(kdf::rshash(&h, &na, &rs).unwrap(), expected, "{h}");
        assert_ne!(expected, independent_hmac(&h, rs.expose_secret(), &na), "the order matters");
    }
}

/// X116-4.7.3-04 and X116-4.8.1-02: K = HASH(K | SRS | OSS), SRS only if one was found, OSS
/// only if one exists; always hashed. Leaving out SRS or OSS changes the key.
#[test]
fn final_k_hashes_k_then_srs_then_oss() {
    let k = SecretBytes::from_slice(b"K = HASH(Z)");
    let srs = SecretBytes::from_slice(b"SRS");
    let oss = SecretBytes::from_slice(b"OSS, e.g. a password");
    for h in HashAlg::SUPPORTED {
        let all = kdf::final_k(&h, &k, Some(&srs), Some(&oss)).unwrap();
        assert_eq!(all.expose_secret(), independent_hash(&h, b"K = HASH(Z)SRSOSS, e.g. a password"), "{h}");
        let no_srs = kdf::final_k(&h, &k, None, Some(&oss)).unwrap();
        assert_eq!(no_srs.expose_secret(), independent_hash(&h, b"K = HASH(Z)OSS, e.g. a password"));
        let no_oss = kdf::final_k(&h, &k, Some(&srs), None).unwrap();
        assert_eq!(no_oss.expose_secret(), independent_hash(&h, b"K = HASH(Z)SRS"));
        let neither = kdf::final_k(&h, &k, None, None).unwrap();
        assert_eq!(neither.expose_secret(), independent_hash(&h, b"K = HASH(Z)"), "hashed even alone");
        let swapped = independent_hash(&h, b"K = HASH(Z)OSS, e.g. a passwordSRS");
        assert_ne!(all.expose_secret(), swapped.as_slice(), "SRS before OSS");
    }
}

/// X116-6.1-03: leading zero octets are removed from integers: a public value g^x and a shared
/// value Z below 2^760 in the 768-bit group are 95 octets, not 96 (exponents found by search,
/// checked here against the group's length). X116-6.1-01: big-endian.
#[test]
fn dh_values_are_minimal_octets() {
    let x_hex = "800000000000000000000000000000000000000000000000000000e00000000e";
    let x = DhKeyPair::from_exponent(ModpGroup::G1, &hex::decode(x_hex).unwrap()).unwrap();
    assert_eq!(x.public().len(), 95, "g^x < 2^760 has a leading zero octet at 96 octets");
    assert_ne!(x.public()[0], 0);
    let a = "800000000000000000000000000000000000000000000000000000000123456c";
    let b = "800000000000000000000000000000000000000000000000000000000765adfd";
    let a = DhKeyPair::from_exponent(ModpGroup::G1, &hex::decode(a).unwrap()).unwrap();
    let b = DhKeyPair::from_exponent(ModpGroup::G1, &hex::decode(b).unwrap()).unwrap();
    assert_eq!((a.public().len(), b.public().len()), (96, 96));
    let z = a.agree_reusable(b.public()).unwrap();
    assert_eq!(z.expose_secret().len(), 95, "Z < 2^760");
    assert_ne!(z.expose_secret()[0], 0);
    assert_eq!(z.expose_secret(), b.agree_reusable(a.public()).unwrap().expose_secret());
    // The re-key K (XEP-0200 §9.2) is Z itself, the same minimal octets.
    assert_eq!(z.into_rekey_secret().len(), 95);
    // Big-endian, leading zeros tolerated on input: the peer value 00 02 is 2, so Z = 2^x = e.
    let p = ModpGroup::G1.params().unwrap();
    assert!(p.check_public(&[0x00, 0x02]).is_ok());
    assert_eq!(
        a.agree_reusable(&[0x00, 0x02]).unwrap().expose_secret(),
        a.public(),
        "2^x: the peer value 0x0002 is read big-endian as 2"
    );
}

/// X116-6.1-03 applies to integers only: a hash or HMAC output keeps its length when it starts
/// with 0x00 (HMAC-SHA256("key", 00000043) and SHA-256(00000243) do).
#[test]
fn hash_outputs_keep_their_leading_zero_octets() {
    let tag = HashAlg::Sha256.hmac(b"key", &[&[0, 0, 0, 0x43]]).unwrap();
    assert_eq!(tag.len(), 32);
    assert_eq!(tag, hmac_sha256(b"key", &[0, 0, 0, 0x43]));
    assert_eq!(tag[0], 0);
    let digest = HashAlg::Sha256.digest(&[&[0, 0, 2, 0x43]]).unwrap();
    assert_eq!((digest.len(), digest[0]), (32, 0));
    assert_eq!(esession_crypto::hash::sha256(&[0, 0, 2, 0x43]).to_vec(), digest, "He");
    let derived = HashAlg::Sha256.hmac_secret(b"key", &[&[0, 0, 0, 0x43]]).unwrap();
    assert_eq!(derived.len(), 32, "a derived key keeps its length");
}

/// X200-11.3-01: every generated x is fresh: 32 key pairs per group give 32 distinct public
/// values (a generator that ignored its randomness would repeat them).
#[test]
fn generated_key_pairs_are_unique() {
    let mut r = rng();
    for g in ModpGroup::SUPPORTED {
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for _ in 0..32 {
            let pair = DhKeyPair::generate(g, &mut r).unwrap();
            assert!(!seen.iter().any(|s| s == pair.public()), "modp {g}: a repeated public value");
            seen.push(pair.public().to_vec());
        }
    }
}
