//! Hash algorithms (`hash_algs` wire names) and HMAC (RFC 2104).

use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use core::fmt;
use core::str::FromStr;
use hmac::{KeyInit, Mac};
use sha2::Digest;

/// A `hash_algs` option (XEP-0116 §8.4).
///
/// `sha256` is mandatory, `whirlpool` recommended. `sha1` and `md5` are recognised by name so that
/// a peer offering them is negotiated away cleanly, but they are never offered nor accepted
/// (§8.4: "broken and therefore NOT RECOMMENDED").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlg {
    /// SHA-256 (FIPS 180-4). MUST.
    Sha256,
    /// Whirlpool (ISO/IEC 10118-3). SHOULD.
    Whirlpool,
    /// SHA-1: known, never used.
    Sha1,
    /// MD5: known, never used.
    Md5,
    /// Any other name, kept verbatim.
    Unknown(String),
}

impl HashAlg {
    /// The hashes this build implements, in our preference order.
    #[cfg(feature = "whirlpool")]
    pub const SUPPORTED: [HashAlg; 2] = [HashAlg::Sha256, HashAlg::Whirlpool];
    /// The hashes this build implements (sha256 only: the feature `whirlpool` is off).
    #[cfg(not(feature = "whirlpool"))]
    pub const SUPPORTED: [HashAlg; 1] = [HashAlg::Sha256];

    /// The wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Whirlpool => "whirlpool",
            HashAlg::Sha1 => "sha1",
            HashAlg::Md5 => "md5",
            HashAlg::Unknown(s) => s,
        }
    }

    /// Whether this build can use the algorithm (whirlpool: feature `whirlpool`).
    #[must_use]
    pub fn is_supported(&self) -> bool {
        *self == HashAlg::Sha256 || (cfg!(feature = "whirlpool") && *self == HashAlg::Whirlpool)
    }

    /// Output length in octets.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for algorithms this crate does not implement.
    pub fn output_len(&self) -> Result<usize> {
        match self {
            HashAlg::Sha256 => Ok(32),
            #[cfg(feature = "whirlpool")]
            HashAlg::Whirlpool => Ok(64),
            _ => Err(Error::Unsupported("hash algorithm")),
        }
    }

    /// HASH(concatenation of `parts`).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for algorithms this crate does not implement.
    pub fn digest(&self, parts: &[&[u8]]) -> Result<Vec<u8>> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            // X116-8.4-01: sha256, the mandatory hash (FIPS 180).
            HashAlg::Sha256 => Ok(run::<sha2::Sha256>(parts)),
            #[cfg(feature = "whirlpool")]
            HashAlg::Whirlpool => Ok(run::<whirlpool::Whirlpool>(parts)),
            _ => Err(Error::Unsupported("hash algorithm")),
        }
    }

    /// HMAC(HASH, key, concatenation of `parts`), a public tag.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for algorithms this crate does not implement.
    // X116-8-01: HMAC (RFC 2104) with the negotiated hash; the output keeps its full length
    // (a hash output is not an integer: X116-6.1-03 does not trim it).
    pub fn hmac(&self, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
            // HMAC accepts keys of every length (RFC 2104 §3), so this cannot fail.
            let mut m = <M as KeyInit>::new_from_slice(key)
                .map_err(|_| Error::InvalidLength { what: "HMAC key", got: key.len() })?;
            for p in parts {
                m.update(p);
            }
            Ok(m.finalize().into_bytes().to_vec())
        }
        match self {
            HashAlg::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, parts),
            #[cfg(feature = "whirlpool")]
            HashAlg::Whirlpool => run::<hmac::Hmac<whirlpool::Whirlpool>>(key, parts),
            _ => Err(Error::Unsupported("hash algorithm")),
        }
    }

    /// HMAC whose output is a secret (a derived key).
    ///
    /// # Errors
    /// As [`HashAlg::hmac`].
    pub fn hmac_secret(&self, key: &[u8], parts: &[&[u8]]) -> Result<SecretBytes> {
        self.hmac(key, parts).map(SecretBytes::new)
    }

    /// Verifies `tag` = HMAC(HASH, key, parts) in constant time.
    ///
    /// # Errors
    /// [`Error::Crypto`] on mismatch, [`Error::Unsupported`] for unknown algorithms.
    pub fn verify_hmac(&self, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<()> {
        let expected = self.hmac(key, parts)?;
        if crate::secret::ct_eq(&expected, tag) { Ok(()) } else { Err(Error::Crypto) }
    }
}

impl FromStr for HashAlg {
    type Err = core::convert::Infallible;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        Ok(match s {
            "sha256" => HashAlg::Sha256,
            "whirlpool" => HashAlg::Whirlpool,
            "sha1" => HashAlg::Sha1,
            "md5" => HashAlg::Md5,
            other => HashAlg::Unknown(other.to_owned()),
        })
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHA-256 of `data`, used where the spec fixes SHA-256 whatever HASH is (He, A4).
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for name in ["sha256", "whirlpool", "sha1", "md5", "sha3-256"] {
            let h: HashAlg = name.parse().unwrap();
            assert_eq!(h.to_string(), name);
        }
        assert_eq!("sha3-256".parse::<HashAlg>().ok(), Some(HashAlg::Unknown("sha3-256".into())));
        assert!(!HashAlg::Sha1.is_supported());
        assert!(HashAlg::Md5.digest(&[b"x"]).is_err());
    }

    #[test]
    fn verify_hmac_rejects_flipped_bits() {
        let tag = HashAlg::Sha256.hmac(b"key", &[b"msg"]).unwrap();
        assert!(HashAlg::Sha256.verify_hmac(b"key", &[b"m", b"sg"], &tag).is_ok());
        for i in 0..tag.len() * 8 {
            let mut t = tag.clone();
            t[i / 8] ^= 1 << (i % 8);
            assert_eq!(HashAlg::Sha256.verify_hmac(b"key", &[b"msg"], &t), Err(Error::Crypto));
        }
        assert_eq!(HashAlg::Sha256.verify_hmac(b"key", &[b"msg"], &tag[..31]), Err(Error::Crypto));
    }
}
