//! # esession-crypto
//!
//! The cryptographic primitives of XMPP Encrypted Sessions (XEP-0116 online negotiation,
//! XEP-0187 offline sessions, XEP-0200 stanza encryption), with no XML anywhere:
//!
//! * [`modp`]: the MODP groups 1, 2, 5, 14-18 ([`ModpGroup`]); 3 and 4 are known but never used;
//! * [`dh`]: constant-time Diffie-Hellman with range checks on every peer value ([`DhKeyPair`]);
//! * [`pool`]: pre-generated key pairs, refilled off the critical path ([`DhPool`]);
//! * [`mpi`]: the §6.1 integer encoding and strict Base64;
//! * [`hash`]: `sha256`, `whirlpool` and HMAC ([`HashAlg`]);
//! * [`kdf`]: the six session keys, the retained-secret formulas and the re-key keys;
//! * [`cipher`]: AES, Twofish and Serpent in CTR mode with the protocol's counter ([`CtrCipher`]);
//! * [`sign`]: RSA (PKCS#1 v1.5, SHA-256) and DSA (SHA-256, r||s) on raw key components;
//! * [`sas`]: sas28x5 short authentication strings;
//! * [`secret`]: zeroizing secret types and constant-time comparison;
//! * [`seal`]: AEAD sealing of secrets at rest, with passphrase derivation;
//! * [`provider`]: which algorithms this build supports, in preference order.
//!
//! Two wire profiles exist ([`Profile`]): `Xep`, the specifications as written, and `Gajim`, the
//! dialect of the only deployed implementation. They differ in a few byte-level choices (the
//! repository's `docs/profiles.md` lists them).
//!
//! ## Example: one Diffie-Hellman agreement and the session keys
//!
//! ```
//! use esession_crypto::{CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, Profile};
//! use esession_crypto::kdf::{SessionKeys, cipher_key};
//!
//! # fn main() -> Result<(), esession_crypto::Error> {
//! let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
//! let alice = DhKeyPair::generate(ModpGroup::G14, &mut rng)?;
//! let bob = DhKeyPair::generate(ModpGroup::G14, &mut rng)?;
//! let e = alice.public().to_vec();
//! let d = bob.public().to_vec();
//!
//! // Each side checks 1 < peer < p - 1 and uses its exponent once.
//! let k_alice = alice.agree(&d)?.session_key(&HashAlg::Sha256)?;
//! let k_bob = bob.agree(&e)?.session_key(&HashAlg::Sha256)?;
//!
//! let keys_a = SessionKeys::derive(&HashAlg::Sha256, &k_alice)?;
//! let keys_b = SessionKeys::derive(&HashAlg::Sha256, &k_bob)?;
//! let alg = CryptAlg::Aes128Ctr;
//! let enc = CtrCipher::new(&alg, Profile::Xep, &cipher_key(Profile::Xep, &alg, &keys_a.initiator.kc)?)?;
//! let dec = CtrCipher::new(&alg, Profile::Xep, &cipher_key(Profile::Xep, &alg, &keys_b.initiator.kc)?)?;
//!
//! let mut data = b"<body>hello</body>".to_vec();
//! let c_after = enc.encrypt(7, &mut data);
//! assert_eq!(dec.decrypt(7, &mut data), c_after);
//! assert_eq!(data, b"<body>hello</body>");
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `seal` | yes | [`seal`]: AES-256-GCM sealing of stored secrets, Argon2id passphrases (`aes-gcm`, `argon2`) |
//! | `dsa` | yes | `dsa-sha256` signatures and DSA keys (`dsa`, `rfc6979`) |
//! | `extra-ciphers` | yes | Twofish and Serpent in CTR mode (`twofish`, `serpent`) |
//! | `whirlpool` | yes | the `whirlpool` hash (`whirlpool`) |
//! | `testing` | no | deterministic randomness for tests and vector replays; never in production |
//!
//! Without a feature the wire names of its algorithms still parse (a peer's offer is negotiated
//! away, not rejected), `is_supported()` is false for them and the `SUPPORTED` lists leave them
//! out. The mandatory algorithms (AES-128-CTR, SHA-256, RSA-SHA256, sas28x5) are always there.
//!
//! ## What this crate does not protect
//! Secrets are wiped when their owners drop them, but copies made by the operating system (swap,
//! core dumps) and intermediate values inside the big-integer library are outside its reach.
//! `twofish` and `dsa` are slow (the repository's `docs/performance.md` has the figures).
//!
//! IDs in the documentation such as `A11` (a resolution of an ambiguity of the specifications),
//! `I27` (an interpretation) or `X116-4.5.1-03` (a normative sentence) are defined in the
//! repository's `docs/resolutions.md` and `docs/conformance.md`.

pub mod cipher;
mod comb;
pub mod dh;
pub mod error;
pub mod hash;
pub mod kdf;
pub mod modp;
mod modp_primes;
mod monty;
pub mod mpi;
pub mod pool;
pub mod provider;
pub mod sas;
#[cfg(feature = "seal")]
pub mod seal;
pub mod secret;
pub mod sign;
#[cfg(feature = "testing")]
pub mod testing;

// The crates whose types appear in this crate's signatures (`ModpParams::p`, every `rng`
// parameter), re-exported so that users name the same versions.
pub use crypto_bigint;
pub use rand_core;

pub use cipher::{CryptAlg, CtrCipher};
pub use dh::{DhKeyPair, SharedSecret};
pub use error::{Error, Result};
pub use hash::HashAlg;
pub use kdf::Role;
pub use modp::ModpGroup;
pub use pool::DhPool;
pub use provider::CryptoProvider;
pub use sas::{Sas, SasAlg};
#[cfg(feature = "seal")]
pub use seal::SealingKey;
pub use secret::SecretBytes;
pub use sign::{KeyComponents, PrivateKey, PublicKey, SignAlg};

/// The byte-level reading of the specifications a party uses (ARCHITECTURE.md "Wire profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// The specifications as written, with the resolutions of the ambiguities (default).
    #[default]
    Xep,
    /// Bit-compatible with Gajim 0.11-0.16, the only deployed implementation.
    Gajim,
}

impl Profile {
    /// The profile's name as the CLI and the vector files spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Xep => "xep",
            Profile::Gajim => "gajim",
        }
    }
}

impl core::str::FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "xep" => Ok(Profile::Xep),
            "gajim" => Ok(Profile::Gajim),
            _ => Err(Error::Encoding("profile name")),
        }
    }
}
