//! Block ciphers in counter mode (`crypt_algs` wire names, XEP-0116 §8.1; XEP-0200 §6).
//!
//! The counter is n = 128 bits for every cipher (all have 128-bit blocks; `none` too, I7). The
//! keystream block j is E(KC, T_j) with T_j = (C + j - 1) mod 2^n in `Profile::Xep` (SP 800-38A,
//! A9) and T_j = (C + j) mod 2^n in `Profile::Gajim`; after L octets C advances by ceil(8L/n),
//! partial blocks counting. Gajim right-pads the plaintext with spaces to whole blocks.
//!
//! Twofish and Serpent need the feature `extra-ciphers` (on by default): without it their names
//! still parse (so a peer's offer is negotiated away, not rejected) but
//! [`CryptAlg::is_supported`] is false and [`CtrCipher::new`] refuses them.
//!
//! Performance note: twofish 0.8 recomputes key-dependent S-boxes per block and runs at a few
//! MB/s; it is correct and interoperable, but slow (see docs/performance.md).

use crate::Profile;
use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use aes::{Aes128, Aes192, Aes256};
use cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use core::fmt;
use core::str::FromStr;
use ctr::CtrCore;
use ctr::flavors::Ctr128BE;
#[cfg(feature = "extra-ciphers")]
use serpent::Serpent;
#[cfg(feature = "extra-ciphers")]
use twofish::Twofish;

use ctr::cipher;

/// Bytes per block for every cipher of XEP-0116 §8.1.
pub const BLOCK_LEN: usize = 16;

/// A `crypt_algs` option.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CryptAlg {
    /// AES-128 in CTR mode (MUST).
    Aes128Ctr,
    /// AES-192 in CTR mode.
    Aes192Ctr,
    /// AES-256 in CTR mode.
    Aes256Ctr,
    /// Twofish with a 128-bit key, CTR.
    Twofish128Ctr,
    /// Twofish with a 192-bit key, CTR.
    Twofish192Ctr,
    /// Twofish with a 256-bit key, CTR.
    Twofish256Ctr,
    /// Serpent with a 128-bit key, CTR (NESSIE byte order).
    Serpent128Ctr,
    /// Serpent with a 192-bit key, CTR.
    Serpent192Ctr,
    /// Serpent with a 256-bit key, CTR.
    Serpent256Ctr,
    /// No encryption, only MACs (XEP-0116 §7.5).
    None,
    /// Any other name.
    Unknown(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Aes,
    Twofish,
    Serpent,
}

impl CryptAlg {
    /// Every cipher this build implements, in our default preference order.
    #[cfg(feature = "extra-ciphers")]
    pub const SUPPORTED: [CryptAlg; 10] = [
        CryptAlg::Aes256Ctr,
        CryptAlg::Aes192Ctr,
        CryptAlg::Aes128Ctr,
        CryptAlg::Serpent256Ctr,
        CryptAlg::Twofish256Ctr,
        CryptAlg::Serpent192Ctr,
        CryptAlg::Twofish192Ctr,
        CryptAlg::Serpent128Ctr,
        CryptAlg::Twofish128Ctr,
        CryptAlg::None,
    ];

    /// Every cipher this build implements, in our default preference order (AES only: the
    /// feature `extra-ciphers` is off).
    #[cfg(not(feature = "extra-ciphers"))]
    pub const SUPPORTED: [CryptAlg; 4] =
        [CryptAlg::Aes256Ctr, CryptAlg::Aes192Ctr, CryptAlg::Aes128Ctr, CryptAlg::None];

    /// The wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            CryptAlg::Aes128Ctr => "aes128-ctr",
            CryptAlg::Aes192Ctr => "aes192-ctr",
            CryptAlg::Aes256Ctr => "aes256-ctr",
            CryptAlg::Twofish128Ctr => "twofish128-ctr",
            CryptAlg::Twofish192Ctr => "twofish192-ctr",
            CryptAlg::Twofish256Ctr => "twofish256-ctr",
            CryptAlg::Serpent128Ctr => "serpent128-ctr",
            CryptAlg::Serpent192Ctr => "serpent192-ctr",
            CryptAlg::Serpent256Ctr => "serpent256-ctr",
            CryptAlg::None => "none",
            CryptAlg::Unknown(s) => s,
        }
    }

    /// Whether this build implements the cipher (Twofish and Serpent: feature `extra-ciphers`).
    #[must_use]
    pub fn is_supported(&self) -> bool {
        match self.family() {
            Some(Family::Aes) => true,
            Some(Family::Twofish | Family::Serpent) => cfg!(feature = "extra-ciphers"),
            None => *self == CryptAlg::None,
        }
    }

    /// Key length k in octets (0 for `none`), or `None` if unknown.
    #[must_use]
    pub fn key_len(&self) -> Option<usize> {
        Some(match self {
            CryptAlg::Aes128Ctr | CryptAlg::Twofish128Ctr | CryptAlg::Serpent128Ctr => 16,
            CryptAlg::Aes192Ctr | CryptAlg::Twofish192Ctr | CryptAlg::Serpent192Ctr => 24,
            CryptAlg::Aes256Ctr | CryptAlg::Twofish256Ctr | CryptAlg::Serpent256Ctr => 32,
            CryptAlg::None => 0,
            CryptAlg::Unknown(_) => return None,
        })
    }

    /// Block size n in bits (128 for all, including `none`, I7).
    #[must_use]
    pub fn block_bits(&self) -> u32 {
        128
    }

    fn family(&self) -> Option<Family> {
        match self {
            CryptAlg::Aes128Ctr | CryptAlg::Aes192Ctr | CryptAlg::Aes256Ctr => Some(Family::Aes),
            CryptAlg::Twofish128Ctr | CryptAlg::Twofish192Ctr | CryptAlg::Twofish256Ctr => {
                Some(Family::Twofish)
            }
            CryptAlg::Serpent128Ctr | CryptAlg::Serpent192Ctr | CryptAlg::Serpent256Ctr => {
                Some(Family::Serpent)
            }
            _ => None,
        }
    }
}

impl FromStr for CryptAlg {
    type Err = core::convert::Infallible;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        Ok(match s {
            "aes128-ctr" => CryptAlg::Aes128Ctr,
            "aes192-ctr" => CryptAlg::Aes192Ctr,
            "aes256-ctr" => CryptAlg::Aes256Ctr,
            "twofish128-ctr" => CryptAlg::Twofish128Ctr,
            "twofish192-ctr" => CryptAlg::Twofish192Ctr,
            "twofish256-ctr" => CryptAlg::Twofish256Ctr,
            "serpent128-ctr" => CryptAlg::Serpent128Ctr,
            "serpent192-ctr" => CryptAlg::Serpent192Ctr,
            "serpent256-ctr" => CryptAlg::Serpent256Ctr,
            "none" => CryptAlg::None,
            other => CryptAlg::Unknown(other.to_owned()),
        })
    }
}

impl fmt::Display for CryptAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A keyed block cipher (the RustCrypto types zeroize their round keys on drop).
#[derive(Clone)]
enum Keyed {
    None,
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
    #[cfg(feature = "extra-ciphers")]
    Twofish(Twofish),
    #[cfg(feature = "extra-ciphers")]
    Serpent(Serpent),
}

/// One direction's cipher: the keyed block cipher, applied in CTR mode at a given counter.
///
/// The counter is not stored here: callers keep it (it belongs to the session state and enters
/// MACs), pass it in and receive the advanced value. Not `Clone`: a session's keys exist once.
pub struct CtrCipher {
    alg: CryptAlg,
    profile: Profile,
    keyed: Keyed,
}

impl fmt::Debug for CtrCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CtrCipher({}, {:?}, <key redacted>)", self.alg, self.profile)
    }
}

impl CtrCipher {
    /// Keys `alg` with `key` (the output of [`crate::kdf::cipher_key`]).
    ///
    /// In `Profile::Xep` the key must have the cipher's length. In `Profile::Gajim` the key length
    /// decides the key size (AES-256 for a 32-octet key whatever the negotiated AES variant).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for unknown ciphers (and Twofish/Serpent without `extra-ciphers`), [`Error::InvalidLength`] for bad key lengths.
    pub fn new(alg: &CryptAlg, profile: Profile, key: &SecretBytes) -> Result<Self> {
        let k = key.expose_secret();
        let expected = alg.key_len().ok_or(Error::Unsupported("cipher"))?;
        let bad = || Error::InvalidLength { what: "cipher key", got: k.len() };
        if profile == Profile::Xep && k.len() != expected {
            return Err(bad());
        }
        let keyed = match alg.family() {
            None => Keyed::None,
            Some(Family::Aes) => match k.len() {
                // X116-8.1-01: aes128-ctr (the mandatory cipher): AES-128 under a 16-octet key.
                16 => Keyed::Aes128(Aes128::new_from_slice(k).map_err(|_| bad())?),
                24 => Keyed::Aes192(Aes192::new_from_slice(k).map_err(|_| bad())?),
                32 => Keyed::Aes256(Aes256::new_from_slice(k).map_err(|_| bad())?),
                _ => return Err(bad()),
            },
            #[cfg(not(feature = "extra-ciphers"))]
            Some(Family::Twofish | Family::Serpent) => return Err(Error::Unsupported("cipher")),
            // twofish 0.8 declares a 32-octet key; new_from_slice takes 16, 24 or 32.
            #[cfg(feature = "extra-ciphers")]
            Some(Family::Twofish) => match k.len() {
                16 | 24 | 32 => Keyed::Twofish(Twofish::new_from_slice(k).map_err(|_| bad())?),
                _ => return Err(bad()),
            },
            // serpent 0.6 declares a 16-octet key; new_from_slice takes up to 32.
            #[cfg(feature = "extra-ciphers")]
            Some(Family::Serpent) => match k.len() {
                16 | 24 | 32 => Keyed::Serpent(Serpent::new_from_slice(k).map_err(|_| bad())?),
                _ => return Err(bad()),
            },
        };
        Ok(Self { alg: alg.clone(), profile, keyed })
    }

    /// The algorithm.
    #[must_use]
    pub fn alg(&self) -> &CryptAlg {
        &self.alg
    }

    /// Encrypts `data` in place starting at counter `c` and returns the counter after the last
    /// block. In `Profile::Gajim` the data is first right-padded with spaces to whole blocks.
    /// With `none` the data is untouched and C advances by 1 (XEP-0200 §6 step 3).
    #[must_use]
    pub fn encrypt(&self, c: u128, data: &mut Vec<u8>) -> u128 {
        if self.profile == Profile::Gajim && !matches!(self.keyed, Keyed::None) {
            let rem = data.len() % BLOCK_LEN;
            if rem != 0 {
                data.resize(data.len() + BLOCK_LEN - rem, b' ');
            }
        }
        self.apply(c, data)
    }

    /// Decrypts `data` in place starting at counter `c` and returns the counter after it.
    /// Gajim's padding spaces are left in place (they are XML whitespace).
    #[must_use]
    pub fn decrypt(&self, c: u128, data: &mut [u8]) -> u128 {
        self.apply(c, data)
    }

    fn apply(&self, c: u128, data: &mut [u8]) -> u128 {
        let first = match self.profile {
            Profile::Xep => c,
            Profile::Gajim => c.wrapping_add(1),
        };
        let iv = first.to_be_bytes();
        fn run<B: BlockCipherEncrypt<BlockSize = cipher::consts::U16> + Clone>(
            b: &B,
            iv: &[u8; 16],
            data: &mut [u8],
        ) {
            let core = CtrCore::<B, Ctr128BE>::inner_iv_init(b.clone(), iv.into());
            let mut stream = StreamCipherCoreWrapper::from_core(core);
            stream.apply_keystream(data);
        }
        match &self.keyed {
            // X200-6-04 X200-8-06: cipher none: no encryption or decryption, C + 1.
            Keyed::None => return c.wrapping_add(1),
            Keyed::Aes128(b) => run(b, &iv, data),
            Keyed::Aes192(b) => run(b, &iv, data),
            Keyed::Aes256(b) => run(b, &iv, data),
            #[cfg(feature = "extra-ciphers")]
            Keyed::Twofish(b) => run(b, &iv, data),
            #[cfg(feature = "extra-ciphers")]
            Keyed::Serpent(b) => run(b, &iv, data),
        }
        // X200-6-03 X200-8-05 X116-4.5.4-09 X116-4.6.2-02: C + 1 for each block, a partial last
        // block included (mod 2^n), for identities (ID_A, ID_B) as for stanzas.
        c.wrapping_add(blocks(data.len()))
    }
}

/// ceil(8L/n) for n = 128.
#[must_use]
pub fn blocks(len: usize) -> u128 {
    // X200-6-03: a partial block counts as one (ceil, not floor).
    len.div_ceil(BLOCK_LEN) as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for a in CryptAlg::SUPPORTED {
            assert_eq!(a.as_str().parse::<CryptAlg>().unwrap(), a);
        }
        let u: CryptAlg = "blowfish-cbc".parse().unwrap();
        assert_eq!(u, CryptAlg::Unknown("blowfish-cbc".into()));
        assert_eq!(u.to_string(), "blowfish-cbc");
        assert!(!u.is_supported());
    }

    #[test]
    fn counter_advances_by_partial_blocks() {
        let key = SecretBytes::new(vec![7; 16]);
        let c = CtrCipher::new(&CryptAlg::Aes128Ctr, Profile::Xep, &key).unwrap();
        for (len, adv) in [(0usize, 0u128), (1, 1), (15, 1), (16, 1), (17, 2), (32, 2), (33, 3)] {
            let mut d = vec![0u8; len];
            assert_eq!(c.encrypt(5, &mut d), 5 + adv, "len {len}");
            assert_eq!(d.len(), len, "no padding in Xep");
            // The receiver counts the same way (XEP-0200 §8 step 4).
            assert_eq!(c.decrypt(5, &mut d), 5 + adv, "decrypt, len {len}");
            assert_eq!(d, vec![0u8; len]);
        }
        assert_eq!(c.encrypt(u128::MAX, &mut vec![0; 17]), 1, "counter wraps mod 2^128");
    }

    #[test]
    fn none_cipher_leaves_data_and_counts_one() {
        let c = CtrCipher::new(&CryptAlg::None, Profile::Xep, &SecretBytes::new(vec![])).unwrap();
        let mut d = b"hello".to_vec();
        assert_eq!(c.encrypt(9, &mut d), 10);
        assert_eq!(d, b"hello");
    }

    #[test]
    fn gajim_pads_and_starts_at_c_plus_one() {
        let key = SecretBytes::new(vec![3; 32]);
        let g = CtrCipher::new(&CryptAlg::Aes128Ctr, Profile::Gajim, &key).unwrap();
        let x = CtrCipher::new(&CryptAlg::Aes256Ctr, Profile::Xep, &key).unwrap();
        let mut a = b"abc".to_vec();
        assert_eq!(g.encrypt(10, &mut a), 11);
        assert_eq!(a.len(), 16);
        let mut b = b"abc             ".to_vec();
        let _ = x.encrypt(11, &mut b);
        assert_eq!(a, b, "Gajim block 1 = Xep keystream at C+1 over space-padded text");
        assert!(CtrCipher::new(&CryptAlg::Aes128Ctr, Profile::Xep, &key).is_err(), "Xep needs 16 octets");
    }

    #[test]
    fn round_trip_every_cipher() {
        for a in CryptAlg::SUPPORTED {
            let key = SecretBytes::new((0..a.key_len().unwrap() as u8).collect());
            let c = CtrCipher::new(&a, Profile::Xep, &key).unwrap();
            let msg = b"<body>round trip across several blocks of text</body>".to_vec();
            let mut d = msg.clone();
            let after = c.encrypt(77, &mut d);
            if a != CryptAlg::None {
                assert_ne!(d, msg);
            }
            assert_eq!(c.decrypt(77, &mut d), after);
            assert_eq!(d, msg);
        }
    }
}
