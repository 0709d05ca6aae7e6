//! # esession-stanza
//!
//! XEP-0200 stanza encryption for an established encrypted session: the
//! `<c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'/>` element ([`element`]), which
//! children are encrypted ([`content`]), compression ([`compress`]), and the [`Session`] that
//! keeps per-direction keys and counters, verifies MACs in constant time before decrypting,
//! runs the re-key exchange with its stored key sets, counts `<new/>`, publishes old MAC keys
//! and terminates on any failure.
//!
//! ```
//! use esession_crypto::{CryptAlg, DhKeyPair, HashAlg, ModpGroup, Profile, SecretBytes};
//! use esession_forms::names::{Compress, StanzaType};
//! use esession_stanza::{DirectionKeys, EncryptOptions, Params, Session};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
//! let params = Params {
//!     profile: Profile::Xep, hash: HashAlg::Sha256, cipher: CryptAlg::Aes128Ctr, compress: Compress::None,
//!     stanzas: vec![StanzaType::Message], rekey_freq: 1, group: ModpGroup::G5,
//!     max_blocks: esession_stanza::DEFAULT_MAX_BLOCKS,
//! };
//! // Keys as a negotiation would hand them over (here fixed for the example).
//! let keys = |k: u8, c: u128| DirectionKeys { cipher_key: SecretBytes::new(vec![k; 16]), mac_key: SecretBytes::new(vec![k + 1; 32]), counter: c };
//! let (x, y) = (DhKeyPair::generate(ModpGroup::G5, &mut rng)?, DhKeyPair::generate(ModpGroup::G5, &mut rng)?);
//! let (e, d) = (x.public().to_vec(), y.public().to_vec());
//! let mut alice = Session::new(params.clone(), keys(1, 7), keys(3, 7 ^ 1 << 127), x, d)?;
//! let mut bob = Session::new(params, keys(3, 7 ^ 1 << 127), keys(1, 7), y, e)?;
//!
//! let msg = esession_forms::xml::parse("<message xmlns='jabber:client' type='chat'><thread>t1</thread><body>Hi</body></message>")?;
//! let wire = alice.encrypt(&msg, EncryptOptions::default(), &mut rng)?;
//! assert!(!String::from(&wire).contains("Hi"));
//! let (clear, _) = bob.decrypt(&wire)?;
//! assert_eq!(clear.get_child("body", "jabber:client").map(|b| b.text()), Some("Hi".to_owned()));
//! // A replay fails the MAC (the counter moved on) and terminates the session.
//! assert!(bob.decrypt(&wire).is_err());
//! assert!(bob.is_closed());
//! # Ok(()) }
//! ```
//!
//! IDs in the documentation such as `A11` (a resolution of an ambiguity of the specifications),
//! `I27` (an interpretation) or `X116-4.5.1-03` (a normative sentence) are defined in the
//! repository's `docs/resolutions.md` and `docs/conformance.md`.

pub mod compress;
pub mod content;
pub mod element;
mod error;
mod fast_content;
pub mod kept;
pub mod session;

/// The raw XEP-0200 operations under the session (feature `hazmat`): for known-answer checks
/// such as the vector checker. They keep no state and apply none of the session's rules
/// (counters, termination on failure, re-key limits); an application never needs them.
#[cfg(feature = "hazmat")]
pub mod hazmat {
    use crate::element::Encrypted;
    use crate::error::Result;
    use esession_crypto::{CtrCipher, HashAlg, Profile};

    /// a_mac = HMAC(HASH, KM, m_content | C) with C as the octets given.
    ///
    /// # Errors
    /// An unsupported hash.
    pub fn mac(hash: &HashAlg, km: &[u8], m_content: &[u8], counter_octets: &[u8]) -> Result<Vec<u8>> {
        crate::session::mac(hash, km, m_content, counter_octets)
    }

    /// The counter octets a sender of `profile` MACs (minimal octets; 16 octets in Gajim).
    #[must_use]
    pub fn sender_counter(profile: Profile, counter: u128) -> Vec<u8> {
        crate::session::sender_counter(profile, counter)
    }

    /// Verifies a `<c/>`'s MAC at `counter` as a receiver of `profile` does.
    ///
    /// # Errors
    /// [`crate::Error::Terminated`] on a mismatch.
    pub fn verify(profile: Profile, hash: &HashAlg, km: &[u8], c: &Encrypted, counter: u128) -> Result<()> {
        crate::session::verify(profile, hash, km, c, counter)
    }

    /// Builds a `<c/>` at `counter` as a sender of `profile` does; returns it and the counter
    /// after it.
    ///
    /// # Errors
    /// An unsupported hash.
    #[allow(clippy::too_many_arguments)]
    pub fn seal_raw(
        profile: Profile,
        hash: &HashAlg,
        cipher: &CtrCipher,
        km: &[u8],
        counter: u128,
        m: Option<&[u8]>,
        key: Option<Vec<u8>>,
        new: Option<u32>,
        old: Vec<Vec<u8>>,
    ) -> Result<(Encrypted, u128)> {
        crate::session::seal_owned(profile, hash, cipher, km, counter, m.map(<[u8]>::to_vec), key, new, old)
    }

    /// Decrypts a `<c/>`'s data at `counter` (after its MAC was verified); returns it and the
    /// counter after it.
    #[must_use]
    pub fn decrypt_raw(cipher: &CtrCipher, counter: u128, c: &Encrypted) -> (Option<Vec<u8>>, u128) {
        crate::session::decrypt_owned(cipher, counter, c.data.clone())
    }
}

pub use element::{Encrypted, NS};
pub use error::{Error, Result, TerminationCause};
/// The XML crate of this crate's signatures, re-exported so that users name the same version.
pub use minidom;
pub use session::{
    DEFAULT_MAX_BLOCKS, DirectionKeys, EncryptOptions, MAX_BLOCKS_LIMIT, MAX_PUBLISHABLE, MAX_REPORTED,
    MAX_STORED_SETS, Opened, Params, SealOptions, Session,
};
