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

pub mod compress;
pub mod content;
pub mod element;
mod error;
mod fast_content;
pub mod session;

pub use element::{Encrypted, NS};
pub use error::{Error, Result, TerminationCause};
pub use session::{
    DEFAULT_MAX_BLOCKS, DirectionKeys, EncryptOptions, MAX_REPORTED, Opened, Params, SealOptions, Session,
};
