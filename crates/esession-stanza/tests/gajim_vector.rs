//! `gajim-g4_none_modp5.json` (esession-crypto's `tests/vectors/`, validated against the original
//! Gajim 0.15.4 code): every XEP-0200 message decrypts and re-encrypts byte for byte under
//! `Profile::Gajim`, including the receiver's MAC over the 16-octet padded counter.
//!
//! It reads the vector from the repository (esession-crypto's directory), so it runs in the
//! repository only: the published package leaves it out (`exclude` in Cargo.toml).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use esession_crypto::{CryptAlg, CtrCipher, HashAlg, Profile, SecretBytes, mpi};
use esession_stanza::hazmat::{decrypt_raw, seal_raw, verify};
use esession_stanza::{Encrypted, NS};
use serde_json::Value;

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() };
    hex::decode(s).unwrap()
}

fn int(v: &Value) -> u128 {
    u128::from_str_radix(v.as_str().unwrap(), 16).unwrap()
}

#[test]
fn gajim_xep0200_messages_byte_for_byte() {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../esession-crypto/tests/vectors/gajim-g4_none_modp5.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let entries = v["xep0200"].as_array().unwrap();
    assert!(entries.len() >= 5);
    for e in entries {
        let (send, recv) = (&e["send"], &e["recv"]);
        let cipher =
            CtrCipher::new(&CryptAlg::Aes128Ctr, Profile::Gajim, &SecretBytes::new(hex(&send["cipher_key"])))
                .unwrap();
        let km = hex(&send["mac_key"]);
        // The sender: re-encrypt m (space-padded by the Gajim profile). Gajim's sender MACs the
        // minimal counter, ours the 16-octet one: the same octets at these counters (>= 2^120).
        assert_eq!(mpi::encode_u128(int(&send["counter_before"])).len(), 16);
        let (sealed, after) = seal_raw(
            Profile::Gajim,
            &HashAlg::Sha256,
            &cipher,
            &km,
            int(&send["counter_before"]),
            Some(&hex(&send["m"])),
            None,
            None,
            vec![],
        )
        .unwrap();
        assert_eq!(sealed.data.as_deref(), Some(hex(&send["m_final"]).as_slice()));
        assert_eq!(sealed.mac, hex(&send["a_mac"]));
        assert_eq!(sealed.m_content(), hex(&send["m_content"]));
        assert_eq!(after, int(&send["counter_after"]));
        // X200-7-01: the <c/> we build is the one on the wire, element for element.
        let wire = esession_forms::xml::parse(e["wire"].as_str().unwrap()).unwrap();
        assert_eq!(&sealed.to_element(), wire.get_child("c", NS).unwrap());
        // The receiver: parse the wire <c/>, verify (Gajim's receiver MACs the padded counter),
        // decrypt back to the padded m.
        let wire = esession_forms::xml::parse(e["wire"].as_str().unwrap()).unwrap();
        let c = Encrypted::parse(Profile::Gajim, wire.get_child("c", NS).unwrap()).unwrap();
        assert_eq!(c.m_content(), hex(&recv["m_content"]));
        let rc = int(&recv["counter_before"]);
        let b_mac = HashAlg::Sha256.hmac(&km, &[&c.m_content(), &hex(&recv["mac_counter_bytes"])]).unwrap();
        assert_eq!(b_mac, hex(&recv["b_mac"]));
        verify(Profile::Gajim, &HashAlg::Sha256, &km, &c, rc).unwrap();
        assert!(
            verify(Profile::Xep, &HashAlg::Sha256, &km, &c, rc).is_ok(),
            "the sender used the minimal counter"
        );
        assert!(verify(Profile::Gajim, &HashAlg::Sha256, &km, &c, rc + 1).is_err());
        let (m, after) = decrypt_raw(&cipher, rc, &c);
        assert_eq!(m.unwrap(), hex(&send["m_padded"]));
        assert_eq!(after, int(&recv["counter_after"]));
        let children = esession_stanza::content::parse("jabber:client", &hex(&send["m_padded"])).unwrap();
        let body = children.iter().find(|c| c.name() == "body").map(minidom::Element::text);
        assert_eq!(body.as_deref(), recv["body"].as_str());
        // A MAC over the 16-octet counter is what a Gajim receiver checks; we accept it too.
        let padded_mac = HashAlg::Sha256.hmac(&km, &[&c.m_content(), &rc.to_be_bytes()]).unwrap();
        let mut padded = Encrypted::new(c.data.clone(), None, None, vec![]);
        padded.set_mac(padded_mac);
        verify(Profile::Gajim, &HashAlg::Sha256, &km, &padded, rc).unwrap();
        assert!(
            verify(Profile::Xep, &HashAlg::Sha256, &km, &padded, rc).is_err()
                || mpi::encode_u128(rc).len() == 16
        );
    }
}
