//! Property tests: CTR round trips for every cipher and profile at arbitrary counters, the
//! counter arithmetic, and the §6.1 integer encoding.

use esession_crypto::cipher::blocks;
use esession_crypto::{CryptAlg, CtrCipher, Profile, SecretBytes, mpi};
use proptest::prelude::*;

fn alg() -> impl Strategy<Value = CryptAlg> {
    proptest::sample::select(CryptAlg::SUPPORTED.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ctr_round_trip(alg in alg(), gajim in any::<bool>(), c in any::<u128>(),
                      data in proptest::collection::vec(any::<u8>(), 0..300), key_seed in any::<u8>()) {
        let profile = if gajim { Profile::Gajim } else { Profile::Xep };
        let key = SecretBytes::new(vec![key_seed; alg.key_len().unwrap()]);
        let cipher = CtrCipher::new(&alg, profile, &key).unwrap();
        let mut buf = data.clone();
        let after = cipher.encrypt(c, &mut buf);
        if alg == CryptAlg::None {
            prop_assert_eq!(after, c.wrapping_add(1));
            prop_assert_eq!(&buf, &data);
        } else {
            prop_assert_eq!(after, c.wrapping_add(blocks(buf.len())));
            if profile == Profile::Xep { prop_assert_eq!(buf.len(), data.len()); }
            else { prop_assert_eq!(buf.len() % 16, 0); }
        }
        prop_assert_eq!(cipher.decrypt(c, &mut buf), after);
        prop_assert_eq!(&buf[..data.len()], &data[..]);
        prop_assert!(buf[data.len()..].iter().all(|&b| b == b' '));
    }

    #[test]
    fn mpi_round_trip(v in any::<u128>()) {
        let e = mpi::encode_u128(v);
        prop_assert!(e.len() == 1 || e[0] != 0);
        prop_assert_eq!(mpi::decode_u128(&e).unwrap(), v);
    }

    #[test]
    fn base64_round_trip(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        prop_assert_eq!(mpi::b64_decode(&mpi::b64_encode(&data)).unwrap(), data);
    }
}
