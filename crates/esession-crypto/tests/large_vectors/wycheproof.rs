//! Project Wycheproof: RSASSA-PKCS1-v1_5 2048/SHA-256 and DSA 2048/256/SHA-256 (r||s).
//! Every valid signature must verify and every invalid one must be rejected.

use crate::{hex, load, s};
use esession_crypto::{Profile, PublicKey, SignAlg};

#[test]
fn rsa_pkcs1v15_2048_sha256() {
    let v = load("wycheproof/rsa_signature_2048_sha256_test.json");
    let mut counted = (0, 0);
    for g in v["testGroups"].as_array().unwrap() {
        let pk = &g["publicKey"];
        let key = PublicKey::rsa(&hex(s(pk, "modulus")), &hex(s(pk, "publicExponent"))).unwrap();
        for t in g["tests"].as_array().unwrap() {
            let ok =
                key.verify(Profile::Xep, &SignAlg::RsaSha256, &hex(s(t, "msg")), &hex(s(t, "sig"))).is_ok();
            match s(t, "result") {
                "valid" => {
                    assert!(ok, "tcId {} must verify", t["tcId"]);
                    counted.0 += 1;
                }
                "invalid" => {
                    assert!(!ok, "tcId {} must be rejected: {}", t["tcId"], t["comment"]);
                    counted.1 += 1;
                }
                _ => {}
            }
        }
    }
    assert!(counted.0 >= 5 && counted.1 >= 200, "{counted:?}");
}

#[test]
fn dsa_2048_256_sha256_p1363() {
    let v = load("wycheproof/dsa_2048_256_sha256_p1363_test.json");
    let mut counted = (0, 0);
    for g in v["testGroups"].as_array().unwrap() {
        let pk = &g["publicKey"];
        let key =
            PublicKey::dsa(&hex(s(pk, "p")), &hex(s(pk, "q")), &hex(s(pk, "g")), &hex(s(pk, "y"))).unwrap();
        for t in g["tests"].as_array().unwrap() {
            let ok =
                key.verify(Profile::Xep, &SignAlg::DsaSha256, &hex(s(t, "msg")), &hex(s(t, "sig"))).is_ok();
            match s(t, "result") {
                "valid" => {
                    assert!(ok, "tcId {} must verify", t["tcId"]);
                    counted.0 += 1;
                }
                "invalid" => {
                    assert!(!ok, "tcId {} must be rejected: {}", t["tcId"], t["comment"]);
                    counted.1 += 1;
                }
                _ => {}
            }
        }
    }
    assert!(counted.0 >= 50 && counted.1 >= 50, "{counted:?}");
}
