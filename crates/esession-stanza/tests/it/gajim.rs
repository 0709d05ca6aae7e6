//! `Profile::Gajim` stanza MACs: what a Gajim receiver checks (the recorded Gajim vector itself
//! is replayed by `tests/gajim_vector.rs`).

use esession_crypto::{CryptAlg, CtrCipher, HashAlg, Profile, SecretBytes, mpi};
use esession_stanza::Encrypted;
use esession_stanza::hazmat::{seal_raw, verify};

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
