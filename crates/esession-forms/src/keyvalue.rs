//! XML-DSig pieces of XEP-0116: `<KeyValue/>` (`<RSAKeyValue/>` MUST, `<DSAKeyValue/>` SHOULD),
//! `<SignatureValue/>` and `<fingerprint/>`, converted to and from esession-crypto key types,
//! and the normalized octets (pubKey) that MACs cover.

use crate::error::{Error, Result};
use crate::normalize;
use esession_crypto::{HashAlg, KeyComponents, Profile, PublicKey, mpi};
use minidom::Element;

/// The XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

fn b64_child(parent: &Element, name: &'static str) -> Result<Vec<u8>> {
    let c = parent.children().find(|c| c.name() == name).ok_or(Error::MissingField(name))?;
    let text = crate::xml::leaf_text(c)?;
    // CryptoBinary values are base64; tolerate the line breaks some serializers insert.
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    mpi::b64_decode(&compact).map_err(|_| Error::Base64 { var: name.to_owned() })
}

fn text_el(name: &str, ns: &str, value: &[u8]) -> Element {
    Element::builder(name, ns).append(mpi::b64_encode(mpi::trim(value))).build()
}

/// The key's value element: `<RSAKeyValue/>` or `<DSAKeyValue/>` in the XML-DSig namespace.
#[must_use]
pub fn key_value_inner(key: &PublicKey) -> Element {
    match key.components() {
        // X116-8.3-01: <RSAKeyValue/> (Modulus, Exponent) is the mandatory key format.
        KeyComponents::Rsa { n, e } => Element::builder("RSAKeyValue", DSIG_NS)
            .append(text_el("Modulus", DSIG_NS, &n))
            .append(text_el("Exponent", DSIG_NS, &e))
            .build(),
        KeyComponents::Dsa { p, q, g, y } => Element::builder("DSAKeyValue", DSIG_NS)
            .append(text_el("P", DSIG_NS, &p))
            .append(text_el("Q", DSIG_NS, &q))
            .append(text_el("G", DSIG_NS, &g))
            .append(text_el("Y", DSIG_NS, &y))
            .build(),
    }
}

/// `<KeyValue xmlns='http://www.w3.org/2000/09/xmldsig#'>` around the key's value element.
#[must_use]
pub fn key_value(key: &PublicKey) -> Element {
    Element::builder("KeyValue", DSIG_NS).append(key_value_inner(key)).build()
}

/// The element a profile sends as pubKey: `<KeyValue/>` (`Xep`) or the bare `<RSAKeyValue/>`
/// (`Gajim`, which has no `<KeyValue/>` wrapper).
#[must_use]
pub fn pubkey_element(profile: Profile, key: &PublicKey) -> Element {
    match profile {
        Profile::Xep => key_value(key),
        Profile::Gajim => key_value_inner(key),
    }
}

/// pubKey: the normalized octets of [`pubkey_element`] (what mac_A/mac_B and fingerprints cover).
///
/// # Errors
/// Normalization limits only.
pub fn pubkey_octets(profile: Profile, key: &PublicKey) -> Result<Vec<u8>> {
    normalized_pubkey(profile, &pubkey_element(profile, key))
}

/// The normalized octets of a received pubKey element.
///
/// # Errors
/// Normalization limits only.
pub fn normalized_pubkey(profile: Profile, e: &Element) -> Result<Vec<u8>> {
    let s = match profile {
        Profile::Xep => normalize::element(profile, e)?,
        Profile::Gajim => normalize::element_with_root_ns(profile, e)?,
    };
    Ok(s.into_bytes())
}

/// Reads a public key from `<KeyValue/>` (with an RSA or DSA child), or from a bare
/// `<RSAKeyValue/>`/`<DSAKeyValue/>` (Gajim).
///
/// # Errors
/// A missing component, invalid Base64, or components that do not form a key.
pub fn parse_key_value(e: &Element) -> Result<PublicKey> {
    let inner = if e.name() == "KeyValue" {
        let mut kids = e.children();
        let inner = kids.next().ok_or(Error::UnexpectedContent("empty <KeyValue/>"))?;
        if kids.next().is_some() {
            return Err(Error::UnexpectedContent("several keys in <KeyValue/>"));
        }
        inner
    } else {
        e
    };
    match inner.name() {
        // X116-8.3-01: <RSAKeyValue/> read as well as written.
        "RSAKeyValue" => Ok(PublicKey::rsa(&b64_child(inner, "Modulus")?, &b64_child(inner, "Exponent")?)?),
        "DSAKeyValue" => Ok(PublicKey::dsa(
            &b64_child(inner, "P")?,
            &b64_child(inner, "Q")?,
            &b64_child(inner, "G")?,
            &b64_child(inner, "Y")?,
        )?),
        _ => Err(Error::UnexpectedElement { expected: "RSAKeyValue or DSAKeyValue" }),
    }
}

/// sign_X as it goes into an identity: `<SignatureValue>` + Base64(sig) + `</SignatureValue>`
/// (`Profile::Xep`, ARCHITECTURE.md); `Profile::Gajim` puts the XML-DSig namespace on it, as
/// Gajim and the esession testsuite send it and look it up.
#[must_use]
pub fn signature_value(profile: Profile, sig: &[u8]) -> String {
    match profile {
        Profile::Xep => format!("<SignatureValue>{}</SignatureValue>", mpi::b64_encode(sig)),
        Profile::Gajim => {
            format!("<SignatureValue xmlns=\"{DSIG_NS}\">{}</SignatureValue>", mpi::b64_encode(sig))
        }
    }
}

/// `<fingerprint>` + Base64(HASH(pubKey)) + `</fingerprint>` (A12).
///
/// # Errors
/// An unsupported hash.
pub fn fingerprint(hash: &HashAlg, pubkey: &[u8]) -> Result<String> {
    Ok(format!("<fingerprint>{}</fingerprint>", mpi::b64_encode(&hash.digest(&[pubkey])?)))
}

/// What an identity (ID_X decrypted) proves, before its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityClaim {
    /// The full key, with its normalized octets as received.
    Key {
        /// The key.
        key: PublicKey,
        /// pubKey as received and normalized (the MAC input).
        pubkey: Vec<u8>,
    },
    /// A fingerprint: HASH(pubKey) of a key the receiver must already know.
    Fingerprint(Vec<u8>),
}

/// Splits a decrypted identity `pubKey | sign` (a `<KeyValue/>` or `<fingerprint/>` followed by
/// `<SignatureValue/>`) into the claim and the signature octets.
///
/// # Errors
/// Anything that is not exactly those two well-formed elements.
pub fn parse_identity(profile: Profile, plaintext: &[u8]) -> Result<(IdentityClaim, Vec<u8>)> {
    let text = core::str::from_utf8(plaintext).map_err(|_| Error::Xml("identity is not UTF-8".into()))?;
    // Gajim pads with spaces; XML whitespace around the elements is not content.
    let wrapped = format!("<identity xmlns='{DSIG_NS}'>{}</identity>", text.trim_end_matches(' '));
    let root = crate::xml::parse_with(&wrapped, crate::xml::Limits::NEGOTIATION)?;
    crate::xml::no_text(&root, "text in identity")?;
    let kids: Vec<&Element> = root.children().collect();
    let [claim, sig] = kids[..] else {
        return Err(Error::UnexpectedContent("identity must be a key or fingerprint and a signature"));
    };
    // With or without its own xmlns it is in the XML-DSig namespace (the wrapper's default).
    if !sig.is("SignatureValue", DSIG_NS) {
        return Err(Error::UnexpectedElement { expected: "SignatureValue" });
    }
    let sig_text: String = crate::xml::leaf_text(sig)?.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let sig = mpi::b64_decode(&sig_text).map_err(|_| Error::Base64 { var: "SignatureValue".into() })?;
    let claim = match claim.name() {
        "fingerprint" => {
            let t = crate::xml::leaf_text(claim)?;
            IdentityClaim::Fingerprint(
                mpi::b64_decode(&t).map_err(|_| Error::Base64 { var: "fingerprint".into() })?,
            )
        }
        _ => {
            let key = parse_key_value(claim)?;
            IdentityClaim::Key { key, pubkey: normalized_pubkey(profile, claim)? }
        }
    };
    Ok((claim, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa() -> PublicKey {
        let mut n = vec![0xc5u8; 256];
        n[255] = 0x01;
        PublicKey::rsa(&n, &[1, 0, 1]).unwrap()
    }

    #[test]
    fn rsa_key_value_round_trip_and_normal_form() {
        let k = rsa();
        let e = key_value(&k);
        assert_eq!(parse_key_value(&e).unwrap(), k);
        let octets = String::from_utf8(pubkey_octets(Profile::Xep, &k).unwrap()).unwrap();
        assert!(octets.starts_with("<KeyValue><RSAKeyValue><Modulus>xcXF"), "{octets}");
        assert!(octets.ends_with("</Modulus><Exponent>AQAB</Exponent></RSAKeyValue></KeyValue>"));
        let gajim = String::from_utf8(pubkey_octets(Profile::Gajim, &k).unwrap()).unwrap();
        assert!(
            gajim.starts_with(r#"<RSAKeyValue xmlns="http://www.w3.org/2000/09/xmldsig#"><Modulus>"#),
            "{gajim}"
        );
        assert_eq!(parse_key_value(&pubkey_element(Profile::Gajim, &k)).unwrap(), k);
    }

    #[test]
    fn dsa_key_value_round_trip() {
        // A DSA 2048/256 key of shared/vectors (the crypto crate's test data).
        let keys: &str = include_str!("../tests/vectors/identity-keys.json");
        let field = |k: &str| {
            let start = keys.find(&format!("\"{k}\": \"")).unwrap() + k.len() + 5;
            let end = start + keys[start..].find('"').unwrap();
            let h = &keys[start..end];
            let h = if h.len() % 2 == 1 { format!("0{h}") } else { h.to_owned() };
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let k = PublicKey::dsa(&field("p"), &field("q"), &field("g"), &field("y")).unwrap();
        let e = key_value(&k);
        assert_eq!(parse_key_value(&e).unwrap(), k);
        let s = String::from_utf8(pubkey_octets(Profile::Xep, &k).unwrap()).unwrap();
        assert!(
            s.starts_with("<KeyValue><DSAKeyValue><P>") && s.contains("</P><Q>") && s.contains("</G><Y>"),
            "{s}"
        );
    }

    /// Issue 17.1: in Gajim's dialect the signature carries the XML-DSig namespace, as Gajim and
    /// the esession testsuite look it up; the identity Gajim sends (no KeyValue wrapper,
    /// space padding) is read back.
    #[test]
    fn gajim_signature_value_has_the_dsig_namespace() {
        assert_eq!(
            signature_value(Profile::Gajim, &[1, 2, 3]),
            format!("<SignatureValue xmlns=\"{DSIG_NS}\">AQID</SignatureValue>")
        );
        assert_eq!(signature_value(Profile::Xep, &[1, 2, 3]), "<SignatureValue>AQID</SignatureValue>");
        let k = rsa();
        let plain = format!(
            "{}{}    ",
            String::from_utf8(pubkey_octets(Profile::Gajim, &k).unwrap()).unwrap(),
            signature_value(Profile::Gajim, &[7, 7])
        );
        let (claim, sig) = parse_identity(Profile::Gajim, plain.as_bytes()).unwrap();
        assert_eq!(sig, vec![7, 7]);
        assert!(matches!(claim, IdentityClaim::Key { key, .. } if key == k));
        // A SignatureValue in another namespace is not the signature.
        let other = format!(
            "{}<SignatureValue xmlns='urn:other'>Bwc=</SignatureValue>",
            String::from_utf8(pubkey_octets(Profile::Gajim, &k).unwrap()).unwrap()
        );
        assert!(parse_identity(Profile::Gajim, other.as_bytes()).is_err());
    }

    #[test]
    fn identity_split() {
        let k = rsa();
        let plain = format!(
            "{}{}",
            String::from_utf8(pubkey_octets(Profile::Xep, &k).unwrap()).unwrap(),
            signature_value(Profile::Xep, &[1, 2, 3])
        );
        let (claim, sig) = parse_identity(Profile::Xep, plain.as_bytes()).unwrap();
        assert_eq!(sig, vec![1, 2, 3]);
        match claim {
            IdentityClaim::Key { key, pubkey } => {
                assert_eq!(key, k);
                assert_eq!(pubkey, pubkey_octets(Profile::Xep, &k).unwrap());
            }
            IdentityClaim::Fingerprint(_) => panic!("expected a key"),
        }
        let fp = fingerprint(&HashAlg::Sha256, b"x").unwrap();
        let (claim, _) =
            parse_identity(Profile::Xep, format!("{fp}{}", signature_value(Profile::Xep, &[9])).as_bytes())
                .unwrap();
        assert_eq!(claim, IdentityClaim::Fingerprint(HashAlg::Sha256.digest(&[b"x"]).unwrap()));
        for bad in [
            "",
            "<SignatureValue>AQ==</SignatureValue>",
            "<fingerprint>AQ==</fingerprint>",
            "garbage",
            "<a/><b/><c/>",
        ] {
            assert!(parse_identity(Profile::Xep, bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn broken_keys_are_rejected() {
        let e = crate::xml::parse(&format!("<KeyValue xmlns='{DSIG_NS}'><RSAKeyValue><Modulus>!!</Modulus><Exponent>AQAB</Exponent></RSAKeyValue></KeyValue>")).unwrap();
        assert!(matches!(parse_key_value(&e), Err(Error::Base64 { .. })));
        let e = crate::xml::parse(&format!(
            "<KeyValue xmlns='{DSIG_NS}'><RSAKeyValue><Exponent>AQAB</Exponent></RSAKeyValue></KeyValue>"
        ))
        .unwrap();
        assert!(matches!(parse_key_value(&e), Err(Error::MissingField("Modulus"))));
        let e = crate::xml::parse(&format!("<KeyValue xmlns='{DSIG_NS}'><RSAKeyValue><Modulus>AQ==</Modulus><Exponent>AQAB</Exponent></RSAKeyValue></KeyValue>")).unwrap();
        assert!(matches!(parse_key_value(&e), Err(Error::Crypto(_))));
        let e = crate::xml::parse(&format!("<KeyValue xmlns='{DSIG_NS}'><ECKeyValue/></KeyValue>")).unwrap();
        assert!(parse_key_value(&e).is_err());
    }
}
