//! `gajim-g4_none_modp5.json`, validated against the original Gajim 0.15.4 code: from its x, y,
//! C_A and nonces, reproduce e, d, K, every key, K_final, the SIGMA MACs, ID_A/ID_B, M_A/M_B,
//! the SAS and every XEP-0200 ciphertext and MAC, under `Profile::Gajim`.

use crate::{hex, load, s};
use esession_crypto::kdf::{self, SessionKeys, cipher_key};
use esession_crypto::{CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, Profile, SecretBytes, mpi, sas};

#[test]
fn gajim_4_message_modp5_reproduced() {
    let v = load("gajim-g4_none_modp5.json");
    let val = &v["values"];
    let h = |k: &str| hex(s(val, k));
    let hash = HashAlg::Sha256;
    let alg = CryptAlg::Aes128Ctr;
    let p = Profile::Gajim;
    assert_eq!(s(&v, "profile"), "gajim");

    // Alice offered groups 5 and 14 (one e each); Bob chose 5.
    let rec = &v["alice_record"];
    for g in ["5", "14"] {
        let x = hex(s(rec, &format!("x_modp{g}")));
        let pair = DhKeyPair::from_exponent(g.parse::<ModpGroup>().unwrap(), &x).unwrap();
        assert_eq!(pair.public(), hex(s(rec, &format!("e_modp{g}"))));
        assert_eq!(
            esession_crypto::hash::sha256(pair.public()).to_vec(),
            hex(s(rec, &format!("He_modp{g}")))
        );
    }
    let alice = DhKeyPair::from_exponent(ModpGroup::G5, &h("x")).unwrap();
    let bob = DhKeyPair::from_exponent(ModpGroup::G5, &h("y")).unwrap();
    assert_eq!(alice.public(), h("e"));
    assert_eq!(bob.public(), h("d"));
    let za = alice.agree(&h("d")).unwrap();
    let zb = bob.agree(&h("e")).unwrap();
    assert_eq!(za.expose_secret(), zb.expose_secret());
    assert_eq!(za.expose_secret(), hex(s(rec, "dh_shared_Z")));
    let k = za.session_key(&hash).unwrap();
    assert_eq!(k.expose_secret(), h("K"));

    // Provisory keys (Alice's identity), then K_final = SHA256(K) with no SRS and no OSS.
    let prov = SessionKeys::derive(&hash, &k).unwrap();
    assert_eq!(prov.initiator.kc.expose_secret(), h("KCA_provisory"));
    assert_eq!(prov.initiator.km.expose_secret(), h("KMA_provisory"));
    assert_eq!(prov.initiator.ks.expose_secret(), h("KSA_provisory"));
    let k_final = kdf::final_k(&hash, &k, None, None).unwrap();
    assert_eq!(k_final.expose_secret(), h("K_final"));
    let fin = SessionKeys::derive(&hash, &k_final).unwrap();
    for (name, key) in [
        ("KCA_final", &fin.initiator.kc),
        ("KMA_final", &fin.initiator.km),
        ("KSA_final", &fin.initiator.ks),
        ("KCB_final", &fin.responder.kc),
        ("KMB_final", &fin.responder.km),
        ("KSB_final", &fin.responder.ks),
    ] {
        assert_eq!(key.expose_secret(), h(name), "{name}");
    }
    // Gajim keys AES with the whole 32-octet KC although aes128-ctr was negotiated.
    let cka = cipher_key(p, &alg, &fin.initiator.kc).unwrap();
    assert_eq!(cka.expose_secret(), h("KCA_final_cipher_key"));
    assert_eq!(cka.len(), 32);
    assert_eq!(kdf::new_retained_secret(&hash, &k_final).unwrap().expose_secret(), h("new_retained_secret"));

    // mac_A (provisory KS_A) and mac_B (final KS_B) from their parts; none identities.
    let (na, nb) = (h("NA"), h("NB"));
    let mac_a_in = [nb.clone(), na.clone(), h("e"), h("formA"), h("formA2")].concat();
    assert_eq!(mac_a_in, h("macA_input"));
    let mac_a = hash.hmac(prov.initiator.ks.expose_secret(), &[&mac_a_in]).unwrap();
    assert_eq!(mac_a, h("macA"));
    let mac_b_in = [na, nb, h("d"), h("formB"), h("formB2")].concat();
    assert_eq!(mac_b_in, h("macB_input"));
    let mac_b = hash.hmac(fin.responder.ks.expose_secret(), &[&mac_b_in]).unwrap();
    assert_eq!(mac_b, h("macB"));

    // ID_A = CTR(KC_A provisory, C_A, mac_A) with Gajim's C+1 first block; M_A over C_A | ID_A.
    let ca = u128::from_str_radix(s(val, "CA"), 16).unwrap();
    let cb = u128::from_str_radix(s(val, "CB"), 16).unwrap();
    assert_eq!(cb, ca ^ (1 << 127));
    let enc_a = CtrCipher::new(&alg, p, &cipher_key(p, &alg, &prov.initiator.kc).unwrap()).unwrap();
    let mut ida = mac_a.clone();
    let ca_after = enc_a.encrypt(ca, &mut ida);
    assert_eq!(ida, h("IDA"));
    assert_eq!(ca_after, u128::from_str_radix(s(rec, "CA_after_identity"), 16).unwrap());
    let ma_in = [mpi::encode_u128(ca), ida].concat();
    assert_eq!(ma_in, h("MA_input"));
    let ma = hash.hmac(prov.initiator.km.expose_secret(), &[&ma_in]).unwrap();
    assert_eq!(ma, h("MA"));

    let enc_b = CtrCipher::new(&alg, p, &cipher_key(p, &alg, &fin.responder.kc).unwrap()).unwrap();
    let mut idb = mac_b.clone();
    let _ = enc_b.encrypt(cb, &mut idb);
    assert_eq!(idb, h("IDB"));
    let mb_in = [mpi::encode_u128(cb), idb].concat();
    assert_eq!(mb_in, h("MB_input"));
    assert_eq!(hash.hmac(fin.responder.km.expose_secret(), &[&mb_in]).unwrap(), h("MB"));

    // SAS from M_A and form_B.
    let sas = sas::sas28x5(p, &hash, &ma, &h("formB")).unwrap();
    assert_eq!(sas.as_str(), s(val, "SAS"));

    // Every XEP-0200 message: ciphertext (space-padded, C+1 first block) and the sender's MAC.
    let msgs = v["xep0200"].as_array().unwrap();
    assert!(msgs.len() >= 5);
    for m in msgs {
        let send = &m["send"];
        let c = u128::from_str_radix(s(send, "counter_before"), 16).unwrap();
        let key = SecretBytes::new(hex(s(send, "cipher_key")));
        let cipher = CtrCipher::new(&alg, p, &key).unwrap();
        let mut data = hex(s(send, "m"));
        let after = cipher.encrypt(c, &mut data);
        assert_eq!(data, hex(s(send, "m_final")));
        assert_eq!(after, u128::from_str_radix(s(send, "counter_after"), 16).unwrap());
        assert_eq!(mpi::b64_encode(&data), s(send, "data_b64"));
        let mac =
            hash.hmac(&hex(s(send, "mac_key")), &[&hex(s(send, "m_content")), &mpi::encode_u128(c)]).unwrap();
        assert_eq!(mac, hex(s(send, "a_mac")));
        // The receiver decrypts back to the padded plaintext.
        let _ = cipher.decrypt(c, &mut data);
        assert_eq!(data, hex(s(send, "m_padded")));
    }
}
