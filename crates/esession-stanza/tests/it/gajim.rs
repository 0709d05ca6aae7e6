//! `gajim-g4_none_modp5.json`: every XEP-0200 message decrypts and re-encrypts byte for byte
//! under `Profile::Gajim`, including the receiver's MAC over the 16-octet padded counter.

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

/// Issue 17.2: below 2^120 a Gajim receiver MACs the counter as 16 octets (its sender uses
/// minimal octets): in `Profile::Gajim` we send what its receiver checks, and accept both.
#[test]
fn gajim_sender_macs_what_a_gajim_receiver_checks() {
    let cipher =
        CtrCipher::new(&CryptAlg::Aes128Ctr, Profile::Gajim, &SecretBytes::new(vec![9; 32])).unwrap();
    let km = vec![7u8; 32];
    for counter in [5u128, (1 << 119) + 3, 1 << 126] {
        let (sealed, _) = seal_raw(
            Profile::Gajim,
            &HashAlg::Sha256,
            &cipher,
            &km,
            counter,
            Some(b"<body>x</body>"),
            None,
            None,
            vec![],
        )
        .unwrap();
        let gajim_receiver =
            HashAlg::Sha256.hmac(&km, &[&sealed.m_content(), &counter.to_be_bytes()]).unwrap();
        assert_eq!(sealed.mac, gajim_receiver, "counter {counter:#x}");
        verify(Profile::Gajim, &HashAlg::Sha256, &km, &sealed, counter).unwrap();
        // Xep sends minimal octets: different below 2^120.
        let (xep, _) = seal_raw(
            Profile::Xep,
            &HashAlg::Sha256,
            &cipher,
            &km,
            counter,
            Some(b"<body>x</body>"),
            None,
            None,
            vec![],
        )
        .unwrap();
        assert_eq!(xep.mac == sealed.mac, mpi::encode_u128(counter).len() == 16, "counter {counter:#x}");
        // A Gajim sender's minimal-octet MAC is accepted on receipt.
        let minimal = HashAlg::Sha256.hmac(&km, &[&sealed.m_content(), &mpi::encode_u128(counter)]).unwrap();
        let mut from_gajim = Encrypted::new(sealed.data.clone(), None, None, vec![]);
        from_gajim.set_mac(minimal);
        verify(Profile::Gajim, &HashAlg::Sha256, &km, &from_gajim, counter).unwrap();
    }
}

/// X116-6.1-03 in `Profile::Xep`: the counter in a_mac is minimal octets: below 2^120 a sender
/// MACs 15 octets or fewer, never a leading zero; computed here with the hmac crate.
#[test]
fn xep_mac_counter_is_minimal_octets() {
    use hmac::{KeyInit, Mac};
    let cipher = CtrCipher::new(&CryptAlg::Aes128Ctr, Profile::Xep, &SecretBytes::new(vec![9; 16])).unwrap();
    let km = [7u8; 32];
    for (counter, octets) in [
        (5u128, vec![5u8]),
        (0x0100, vec![1, 0]),
        ((1 << 119) + 3, {
            let mut v = vec![0x80];
            v.extend([0; 13]);
            v.push(3);
            v
        }),
        (u128::MAX, vec![0xff; 16]),
    ] {
        let (sealed, _) = seal_raw(
            Profile::Xep,
            &HashAlg::Sha256,
            &cipher,
            &km,
            counter,
            Some(b"<body>x</body>"),
            None,
            None,
            vec![],
        )
        .unwrap();
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&km).unwrap();
        m.update(&sealed.m_content());
        m.update(&octets);
        assert_eq!(sealed.mac, m.finalize().into_bytes().to_vec(), "counter {counter:#x}");
        verify(Profile::Xep, &HashAlg::Sha256, &km, &sealed, counter).unwrap();
    }
}
