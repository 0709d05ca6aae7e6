//! The one error type of this crate.

use core::fmt;

/// Everything that can go wrong in `esession-crypto`.
///
/// Cryptographic verification failures (a MAC, a signature, a peer's DH value out of range) are
/// deliberately one opaque variant, [`Error::Crypto`]: callers must not be able to tell which
/// check failed from the error alone, and the protocol answers all of them the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A MAC, signature or Diffie-Hellman range check failed.
    Crypto,
    /// An algorithm is known by name but not supported by this build (or never offered, such as
    /// MODP groups 3 and 4, `sha1`, `md5`).
    Unsupported(&'static str),
    /// An input had the wrong length (a key, a nonce, a counter).
    InvalidLength {
        /// What the value was.
        what: &'static str,
        /// How long it was.
        got: usize,
    },
    /// An encoded value could not be decoded (Base64, an integer, a sealed blob).
    Encoding(&'static str),
    /// A key (RSA or DSA components) is not a valid key.
    InvalidKey,
    /// The random number generator failed.
    Rng,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Crypto => f.write_str("cryptographic verification failed"),
            Error::Unsupported(what) => write!(f, "unsupported algorithm: {what}"),
            Error::InvalidLength { what, got } => write!(f, "invalid length for {what}: {got} octets"),
            Error::Encoding(what) => write!(f, "invalid encoding: {what}"),
            Error::InvalidKey => f.write_str("invalid key"),
            Error::Rng => f.write_str("random number generator failure"),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias of this crate.
pub type Result<T> = core::result::Result<T, Error>;
