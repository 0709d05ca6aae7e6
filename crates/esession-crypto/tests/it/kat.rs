//! Known answers: SHA-256 (FIPS 180-2), HMAC-SHA-256 (RFC 4231), Whirlpool (ISO/IEC 10118-3),
//! AES-CTR (SP 800-38A F.5), Twofish (the paper's tables) and Serpent (NESSIE), the block
//! ciphers run through our CTR construction.

use crate::{hex, load, s};
use esession_crypto::{CryptAlg, CtrCipher, Error, HashAlg, Profile, SecretBytes};
use serde_json::Value;

fn message(c: &Value) -> Vec<u8> {
    if let Some(m) = c["msg_ascii"].as_str() {
        return m.as_bytes().to_vec();
    }
    let r = &c["msg_repeat"];
    s(r, "ascii").repeat(r["count"].as_u64().unwrap() as usize).into_bytes()
}

#[test]
fn sha256_fips180_examples() {
    let kat = load("kat.json");
    for c in kat["sha256"]["cases"].as_array().unwrap() {
        assert_eq!(HashAlg::Sha256.digest(&[&message(c)]).unwrap(), hex(s(c, "digest")));
    }
}

#[test]
fn whirlpool_iso_test_vectors() {
    let kat = load("kat.json");
    for c in kat["whirlpool"]["cases"].as_array().unwrap() {
        assert_eq!(HashAlg::Whirlpool.digest(&[&message(c)]).unwrap(), hex(s(c, "digest")), "{c}");
    }
}

#[test]
fn hmac_sha256_rfc4231() {
    let kat = load("kat.json");
    for c in kat["hmac_sha256"]["cases"].as_array().unwrap() {
        let (key, data, mac) = (hex(s(c, "key")), hex(s(c, "data")), hex(s(c, "mac")));
        let got = HashAlg::Sha256.hmac(&key, &[&data]).unwrap();
        assert_eq!(&got[..mac.len()], &mac[..]);
        // Negative: every flipped bit of the full tag and of the data is detected.
        assert!(HashAlg::Sha256.verify_hmac(&key, &[&data], &got).is_ok());
        for bit in 0..got.len() * 8 {
            let mut bad = got.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(HashAlg::Sha256.verify_hmac(&key, &[&data], &bad), Err(Error::Crypto));
        }
        let mut bad_data = data.clone();
        bad_data[0] ^= 1;
        assert_eq!(HashAlg::Sha256.verify_hmac(&key, &[&bad_data], &got), Err(Error::Crypto));
    }
}

#[test]
fn hmac_whirlpool_matches_rfc2104_construction() {
    // RFC 2104 built by hand from the (KAT-checked) Whirlpool: H(K^opad | H(K^ipad | m)).
    let h = HashAlg::Whirlpool;
    for key in [vec![0x0b; 20], vec![0xaa; 131]] {
        let data = b"Hi There";
        let mut k = if key.len() > 64 { h.digest(&[&key]).unwrap() } else { key.clone() };
        k.resize(64, 0);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = h.digest(&[&ipad, data]).unwrap();
        let expected = h.digest(&[&opad, &inner]).unwrap();
        assert_eq!(h.hmac(&key, &[data]).unwrap(), expected);
    }
}

fn ctr(alg: &CryptAlg, profile: Profile, key: &[u8]) -> CtrCipher {
    CtrCipher::new(alg, profile, &SecretBytes::from_slice(key)).unwrap()
}

#[test]
fn aes_ctr_sp800_38a_f5() {
    let kat = load("kat.json");
    let set = &kat["aes_ctr"];
    let counter = u128::from_be_bytes(hex(s(set, "counter")).try_into().unwrap());
    let pt = hex(s(set, "plaintext"));
    for c in set["cases"].as_array().unwrap() {
        let alg: CryptAlg = s(c, "alg").parse().unwrap();
        let key = hex(s(c, "key"));
        let ct = hex(s(c, "ciphertext"));
        // Profile::Xep: T1 = C (SP 800-38A).
        let x = ctr(&alg, Profile::Xep, &key);
        let mut data = pt.clone();
        assert_eq!(x.encrypt(counter, &mut data), counter.wrapping_add(4));
        assert_eq!(data, ct, "{alg}");
        // A partial last block uses the leading octets of its keystream block (SP 800-38A 6.5).
        let mut part = pt[..40].to_vec();
        assert_eq!(x.encrypt(counter, &mut part), counter.wrapping_add(3));
        assert_eq!(part, ct[..40]);
        // Decryption with a wrong counter does not give the plaintext back.
        let mut back = ct.clone();
        let _ = x.decrypt(counter.wrapping_add(1), &mut back);
        assert_ne!(back, pt);
        let mut back = ct.clone();
        let _ = x.decrypt(counter, &mut back);
        assert_eq!(back, pt);
        // Profile::Gajim starts at C + 1; its key is the full KC, so key it as AES-256 only when
        // the key has 32 octets: here the same key length selects the same AES variant.
        let g = ctr(&alg, Profile::Gajim, &key);
        let mut data = pt.clone();
        assert_eq!(g.encrypt(counter.wrapping_sub(1), &mut data), counter.wrapping_add(3));
        assert_eq!(data, ct);
    }
}

#[test]
fn twofish_paper_tables_through_ctr() {
    let kat = load("kat.json");
    let set = &kat["twofish"];
    let algs = |len: usize| match len {
        16 => CryptAlg::Twofish128Ctr,
        24 => CryptAlg::Twofish192Ctr,
        _ => CryptAlg::Twofish256Ctr,
    };
    // With an all-zero data block, CTR output at counter T is E(K, T): the ECB table.
    for table in set["iterated"].as_array().unwrap() {
        let key_len = table["key_len"].as_u64().unwrap() as usize;
        let expected = table["ct"].as_object().unwrap();
        let mut key = vec![0u8; key_len];
        let mut pt = [0u8; 16];
        for i in 1..=48 {
            let c = ctr(&algs(key_len), Profile::Xep, &key);
            let mut block = vec![0u8; 16];
            let _ = c.encrypt(u128::from_be_bytes(pt), &mut block);
            if let Some(e) = expected.get(&i.to_string()) {
                assert_eq!(block, hex(e.as_str().unwrap()), "key {key_len} I={i}");
            }
            // KEY(i+1) = PT(i) || first (len-16) octets of KEY(i); PT(i+1) = CT(i).
            let mut next = pt.to_vec();
            next.extend_from_slice(&key[..key_len - 16]);
            key = next;
            pt = block.try_into().unwrap();
        }
    }
    for c in set["fixed"].as_array().unwrap() {
        let key = hex(s(c, "key"));
        let pt = u128::from_be_bytes(hex(s(c, "pt")).try_into().unwrap());
        let mut block = vec![0u8; 16];
        let _ = ctr(&algs(key.len()), Profile::Xep, &key).encrypt(pt, &mut block);
        assert_eq!(block, hex(s(c, "ct")));
    }
}

#[test]
fn serpent_nessie_set1_through_ctr() {
    let kat = load("kat.json");
    for c in kat["serpent"]["cases"].as_array().unwrap() {
        let key = hex(s(c, "key"));
        let alg = match key.len() {
            16 => CryptAlg::Serpent128Ctr,
            24 => CryptAlg::Serpent192Ctr,
            _ => CryptAlg::Serpent256Ctr,
        };
        let pt = u128::from_be_bytes(hex(s(c, "pt")).try_into().unwrap());
        let mut block = vec![0u8; 16];
        let _ = ctr(&alg, Profile::Xep, &key).encrypt(pt, &mut block);
        assert_eq!(block, hex(s(c, "ct")), "{alg}");
    }
}
