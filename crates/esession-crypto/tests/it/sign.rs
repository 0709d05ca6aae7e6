//! Signatures with the vectors' identity keys: both profiles, round trips and negatives.

use crate::{hex, load, rng, s};
use esession_crypto::{Error, PrivateKey, Profile, PublicKey, SignAlg};

fn keys() -> (PrivateKey, PrivateKey) {
    let k = load("identity-keys.json");
    let r = &k["rsa"];
    let d = &k["dsa"];
    let rsa = PrivateKey::rsa_from_components(&hex(s(r, "n")), &hex(s(r, "e")), &hex(s(r, "d"))).unwrap();
    let dsa = PrivateKey::dsa_from_components(
        &hex(s(d, "p")),
        &hex(s(d, "q")),
        &hex(s(d, "g")),
        &hex(s(d, "y")),
        &hex(s(d, "x")),
    )
    .unwrap();
    (rsa, dsa)
}

#[test]
fn round_trips_and_every_flipped_bit_fails() {
    let (rsa, dsa) = keys();
    let mut r = rng();
    let msg = b"mac_A octets";
    for (key, alg, profile) in [
        (&rsa, SignAlg::RsaSha256, Profile::Xep),
        (&rsa, SignAlg::RsaSha256, Profile::Gajim),
        (&dsa, SignAlg::DsaSha256, Profile::Xep),
    ] {
        let sig = key.sign(profile, &alg, msg, &mut r).unwrap();
        let public = key.public_key();
        assert!(public.verify(profile, &alg, msg, &sig).is_ok());
        for bit in (0..sig.len() * 8).step_by(7) {
            let mut bad = sig.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(public.verify(profile, &alg, msg, &bad), Err(Error::Crypto), "{alg} bit {bit}");
        }
        assert_eq!(public.verify(profile, &alg, b"another message", &sig), Err(Error::Crypto));
        assert_eq!(public.verify(profile, &alg, msg, &sig[1..]), Err(Error::Crypto));
        assert_eq!(public.verify(profile, &alg, msg, &[]), Err(Error::Crypto));
    }
}

#[test]
fn deterministic_signatures() {
    // PKCS#1 v1.5 and RFC 6979 DSA are deterministic; DSA is r||s of len(q) = 32 octets each.
    let (rsa, dsa) = keys();
    let mut r = rng();
    let a = rsa.sign(Profile::Xep, &SignAlg::RsaSha256, b"x", &mut r).unwrap();
    assert_eq!(a, rsa.sign(Profile::Xep, &SignAlg::RsaSha256, b"x", &mut r).unwrap());
    assert_eq!(a.len(), 256);
    let b = dsa.sign(Profile::Xep, &SignAlg::DsaSha256, b"x", &mut r).unwrap();
    assert_eq!(b, dsa.sign(Profile::Xep, &SignAlg::DsaSha256, b"x", &mut r).unwrap());
    assert_eq!(b.len(), 64);
}

#[test]
fn profiles_and_algorithms_do_not_mix() {
    let (rsa, dsa) = keys();
    let mut r = rng();
    let xep = rsa.sign(Profile::Xep, &SignAlg::RsaSha256, b"m", &mut r).unwrap();
    let gajim = rsa.sign(Profile::Gajim, &SignAlg::RsaSha256, b"m", &mut r).unwrap();
    let pk = rsa.public_key();
    assert_eq!(pk.verify(Profile::Gajim, &SignAlg::RsaSha256, b"m", &xep), Err(Error::Crypto));
    assert_eq!(pk.verify(Profile::Xep, &SignAlg::RsaSha256, b"m", &gajim), Err(Error::Crypto));
    assert!(rsa.sign(Profile::Xep, &SignAlg::DsaSha256, b"m", &mut r).is_err());
    assert!(dsa.sign(Profile::Xep, &SignAlg::RsaSha256, b"m", &mut r).is_err());
    assert_eq!(pk.verify(Profile::Xep, &SignAlg::DsaSha256, b"m", &xep), Err(Error::Crypto));
    let unknown = SignAlg::Unknown("urn:x".into());
    assert!(rsa.sign(Profile::Xep, &unknown, b"m", &mut r).is_err());
}

#[test]
fn components_round_trip_and_debug_is_public_only() {
    let (rsa, dsa) = keys();
    for key in [&rsa, &dsa] {
        let public = key.public_key();
        let back = PublicKey::from_components(&public.components()).unwrap();
        assert_eq!(back, public);
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.to_lowercase().contains(&s(&load("identity-keys.json")["rsa"], "d")[..16]));
    }
    assert!(PublicKey::rsa(&[0x01, 0x00], &[3]).is_err(), "a 9-bit modulus is not a key");
    assert!(PublicKey::dsa(&[23], &[11], &[2], &[4]).is_err(), "toy DSA sizes are refused");
}

#[test]
fn generated_rsa_key_signs() {
    let mut r = rng();
    let key = PrivateKey::generate_rsa(&mut r, 1024).unwrap();
    let sig = key.sign(Profile::Xep, &SignAlg::RsaSha256, b"hello", &mut r).unwrap();
    assert!(key.public_key().verify(Profile::Xep, &SignAlg::RsaSha256, b"hello", &sig).is_ok());
}

/// Keys written by OpenSSL (`openssl genpkey`, PKCS#8 and SPKI PEM) load, match their public
/// halves, and sign and verify in both algorithms; other PEM is refused.
#[test]
fn pem_keys_from_openssl() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pem/");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).unwrap();
    for (name, alg) in [("rsa", SignAlg::RsaSha256), ("dsa", SignAlg::DsaSha256)] {
        let sk = PrivateKey::from_pkcs8_pem(&read(&format!("{name}.pem"))).unwrap();
        let pk = PublicKey::from_public_key_pem(&read(&format!("{name}.pub.pem"))).unwrap();
        assert!(pk == sk.public_key(), "{name}: the SPKI key is the private key's public half");
        assert_eq!(pk.alg(), alg);
        let sig = sk.sign(Profile::Xep, &alg, b"mac octets", &mut rng()).unwrap();
        pk.verify(Profile::Xep, &alg, b"mac octets", &sig).unwrap();
        assert!(pk.verify(Profile::Xep, &alg, b"mac octetz", &sig).is_err());
        // A public key is not a private key and vice versa.
        assert!(PrivateKey::from_pkcs8_pem(&read(&format!("{name}.pub.pem"))).is_err());
        assert!(PublicKey::from_public_key_pem(&read(&format!("{name}.pem"))).is_err());
        // Encoding: the SPKI text is OpenSSL's, octet for octet; PKCS#8 reads back as the same key.
        assert_eq!(pk.to_public_key_pem().unwrap(), read(&format!("{name}.pub.pem")), "{name}");
        let again = PrivateKey::from_pkcs8_pem(&sk.to_pkcs8_pem().unwrap()).unwrap();
        assert!(again.public_key() == pk, "{name}: PKCS#8 round trip");
        let sig = again.sign(Profile::Xep, &alg, b"m", &mut rng()).unwrap();
        pk.verify(Profile::Xep, &alg, b"m", &sig).unwrap();
    }
    assert!(
        PrivateKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
    );
    assert!(PublicKey::from_public_key_pem("").is_err());
}

/// X116-4.5.4-07, X116-8.2-01: sign_B = the rsa-sha256 signature (RSASSA-PKCS1-v1_5, SHA-256,
/// deterministic) of the HMAC result mac_B, octet for octet as the independent implementation
/// of `shared/vectors/xep-x3_key_rsa_modp5_aes128.json` computed it (values copied to
/// `tests/vectors/xep-x3-signatures.json`); the same for Alice's sign_A. Each verifies, and
/// not over another MAC.
#[test]
fn xep_vector_rsa_signatures_reproduced() {
    let v = load("xep-x3-signatures.json");
    let alg: SignAlg = s(&v, "alg").parse().unwrap();
    assert_eq!(alg, SignAlg::RsaSha256);
    for who in ["alice", "bob"] {
        let k = &v[who];
        let key = PrivateKey::rsa_from_components(&hex(s(k, "n")), &hex(s(k, "e")), &hex(s(k, "d"))).unwrap();
        let mac = hex(s(k, "mac"));
        let expected = hex(s(k, "sign"));
        assert_eq!(expected.len(), 256);
        let sig = key.sign(Profile::Xep, &alg, &mac, &mut rng()).unwrap();
        assert_eq!(sig, expected, "{who}: sign(mac) equals the vector's");
        let public = PublicKey::rsa(&hex(s(k, "n")), &hex(s(k, "e"))).unwrap();
        public.verify(Profile::Xep, &alg, &mac, &expected).unwrap();
        let mut other = mac.clone();
        other[0] ^= 1;
        assert_eq!(public.verify(Profile::Xep, &alg, &other, &expected), Err(Error::Crypto), "{who}");
    }
}

/// Key equality is equality of the components, whatever their encoding's padding: a key
/// equals itself rebuilt from zero-padded components, and differs from another key of the
/// same kind (one bit of the modulus changed) and from a key of the other kind.
#[test]
fn keys_are_equal_exactly_when_their_components_are() {
    use esession_crypto::KeyComponents;
    let (rsa, dsa) = keys();
    for k in [rsa.public_key(), dsa.public_key()] {
        let padded = match k.components() {
            KeyComponents::Rsa { n, e } => KeyComponents::Rsa {
                n: [vec![0, 0, 0, 0, 0, 0, 0, 0, 0], n].concat(),
                e: [vec![0; 17], e].concat(),
            },
            KeyComponents::Dsa { p, q, g, y } => KeyComponents::Dsa { p, q, g, y: [vec![0; 9], y].concat() },
        };
        assert!(PublicKey::from_components(&padded).unwrap() == k);
        // (Another DSA key of the same group would need a y of the subgroup: RSA only.)
        let KeyComponents::Rsa { mut n, e } = k.components() else { continue };
        *n.last_mut().unwrap() ^= 2;
        let other = PublicKey::from_components(&KeyComponents::Rsa { n, e }).unwrap();
        assert!(other != k);
        assert_eq!(other.components() == k.components(), other == k);
    }
    assert!(rsa.public_key() != dsa.public_key());
}
