//! # esession-negotiate
//!
//! XEP-0116 online Encrypted Session negotiation as sans-IO state machines: Alice
//! ([`Initiator`]) and Bob ([`Responder`]) for the 3-message (SIGMA-I) and 4-message (SIGMA-R)
//! flows, with the He commitment, identity hiding (key / hash / none, RSA and DSA), the SAS,
//! retained secrets with decoys, the other shared secret, key-association alerts, the SSN
//! fall-back and the rejections of §4.4. Time, randomness ([`Entropy`]) and stores
//! ([`Stores`]) are parameters; established sessions are handed to esession-stanza.
//!
//! ```
//! use esession_negotiate::*;
//! use std::sync::Arc;
//!
//! # fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
//! let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
//! let (alice_cfg, bob_cfg) = (Arc::new(Config::default()), Arc::new(Config::default()));
//! let (mut at, mut ar, mut bt, mut br) = (MemoryTrust::default(), MemoryRetained::default(), MemoryTrust::default(), MemoryRetained::default());
//! let (alice_jid, bob_jid) = (Jid::new("alice@example.org/pda")?, Jid::new("bob@example.com/laptop")?);
//! let mut alice = Initiator::new(alice_cfg, bob_jid, "thread-1");
//! let mut bob = Responder::new(bob_cfg, alice_jid, "thread-1");
//! let now = chrono::Utc::now();
//! alice.start(Mode::Four, &mut RngEntropy(&mut rng))?;
//!
//! // Relay stanzas until both are established.
//! let (mut a_est, mut b_est) = (None, None);
//! for _ in 0..4 {
//!     while let Some(o) = alice.poll_output() {
//!         match o {
//!             Output::Send(s) => bob.handle(now, &s, &mut RngEntropy(&mut rng), &mut Stores { trust: &mut bt, retained: &mut br })?,
//!             Output::Established(e) => a_est = Some(e),
//!             _ => {}
//!         }
//!     }
//!     while let Some(o) = bob.poll_output() {
//!         match o {
//!             Output::Send(s) => alice.handle(now, &s, &mut RngEntropy(&mut rng), &mut Stores { trust: &mut at, retained: &mut ar })?,
//!             Output::Established(e) => b_est = Some(e),
//!             _ => {}
//!         }
//!     }
//! }
//! let (a, b) = (a_est.expect("alice"), b_est.expect("bob"));
//! assert!(a.sas().is_some());
//! assert_eq!(a.sas(), b.sas(), "the same SAS on both sides");
//! # Ok(()) }
//! ```
//!
//! With the default `durable` feature, [`durable::DurableStore`] keeps retained secrets (sealed)
//! and key trust in one redb database file.
//!
//! IDs in the documentation such as `A11` (a resolution of an ambiguity of the specifications),
//! `I27` (an interpretation) or `X116-4.5.1-03` (a normative sentence) are defined in the
//! repository's `docs/resolutions.md` and `docs/conformance.md`.

mod check;
mod config;
#[cfg(feature = "durable")]
pub mod durable;
mod entropy;
mod error;
mod established;
mod forms;
mod initiator;
mod outputs;
pub mod published;
mod responder;
mod shape;
mod sigma;
mod store;
pub mod wire;

pub use config::Config;
pub use entropy::{DhSource, Entropy, NONCE_LEN, PooledEntropy, RngEntropy};
pub use error::{Check, Condition, Error, Result};
pub use established::{Attached, Established, KeyCheck, Phase, Received};
pub use initiator::{Initiator, Mode};
pub use jid::{BareJid, FullJid, Jid};
// The crates of this crate's signatures (`minidom::Element`, the JIDs, the durable stores'
// `redb::Database`), re-exported so that users name the same versions.
pub use jid;
pub use minidom;
pub use outputs::{Alert, Output};
#[cfg(feature = "durable")]
pub use redb;
pub use responder::Responder;
pub use shape::{FormKind, Shaper};
pub use sigma::Proof;
pub use store::{
    KeyRecord, KeyState, MAX_JIDS_PER_KEY, MAX_RETAINED, MAX_UNVERIFIED_KEYS, MemoryRetained, MemoryTrust,
    Retained, RetainedStore, StoreError, StoreErrorKind, Stores, TrustStore,
};

/// Raw access for known-answer checks and tests (feature `replay`): randomness fixed by the
/// caller. Never needed by applications.
#[cfg(feature = "replay")]
pub mod hazmat {
    pub use crate::entropy::ScriptedEntropy;
}

/// The disco#info feature of XEP-0116 (§3).
pub const DISCO_FEATURE: &str = esession_forms::esession::ESESSION_NS;
