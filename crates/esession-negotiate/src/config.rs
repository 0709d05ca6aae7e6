//! What a party offers, accepts and is.

use esession_crypto::{CryptoProvider, PrivateKey, Profile, SecretBytes};
use esession_forms::names::{Compress, Logging, PubkeyMethod, Security, StanzaType};
use esession_forms::negotiation::Support;

/// A party's configuration.
pub struct Config {
    /// Wire profile. A `Xep` party and a `Gajim` party only interoperate if both are configured
    /// for Gajim: nothing switches profile silently.
    pub profile: Profile,
    /// Our algorithms, in preference order (what Alice offers).
    pub provider: CryptoProvider,
    /// `logging` values Alice offers, in preference order.
    pub logging: Vec<Logging>,
    /// `security` values Alice offers (`e2e`, plus `c2s`/`none` to allow the SSN fall-back).
    pub security: Vec<Security>,
    /// `compress` values Alice offers.
    pub compress: Vec<Compress>,
    /// `stanzas` Alice offers to encrypt.
    pub stanzas: Vec<StanzaType>,
    /// How Alice offers to identify herself (`init_pubkey`).
    pub init_pubkey: Vec<PubkeyMethod>,
    /// How Alice accepts Bob to identify himself (`resp_pubkey`).
    pub resp_pubkey: Vec<PubkeyMethod>,
    /// `rekey_freq` Alice offers.
    pub rekey_freq: u32,
    /// Our identity key, if any.
    pub identity: Option<PrivateKey>,
    /// An other shared secret (a password) configured for the peer (§4.7.3).
    pub oss: Option<SecretBytes>,
    /// What we accept as Bob.
    pub support: Support,
    /// Random decoys appended to `rshashes` (§4.6.4, I8).
    pub decoys: usize,
    /// As Bob: accept a plain stanza session when e2e is declined but `c2s`/`none` is offered.
    pub accept_ssn: bool,
    /// As Bob: answer unacceptable requests with silence rather than an error (presence
    /// protection, §4.4).
    pub silent_rejections: bool,
    /// Alice's 4-message accept puts `type='hidden'` on `dhkeys`/`rshashes` as Example 11 (I5).
    pub example11_types: bool,
    /// Retained secrets older than this many seconds are ignored (0: no expiry).
    pub retained_max_age: u64,
    /// As Bob, when no secret retained for Alice's JID matches her `rshashes`: how many of
    /// the secrets retained for other JIDs are tried, newest first (XEP-0116 §4.7.3 SHOULD
    /// search them all; "resource-constrained implementations MAY make the performance of this
    /// second extended search an optional feature"). Each costs one HMAC per request, which any
    /// stranger can send: the default, 256, bounds that cost; 0 turns the search off,
    /// `usize::MAX` searches every secret the store holds (at most
    /// [`crate::MAX_RETAINED`]).
    pub extended_search: usize,
}

impl Default for Config {
    /// [`Config::new`] for `Profile::Xep`.
    fn default() -> Self {
        Self::new(Profile::Xep)
    }
}

impl Config {
    /// The safe defaults of a profile: the algorithms of [`CryptoProvider::for_profile`] offered
    /// and accepted (never the cipher `none`; no group under 2048 bits in `Xep`), `none`
    /// identities both ways (set an identity key with [`Config::with_identity`]).
    #[must_use]
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            provider: CryptoProvider::for_profile(profile),
            logging: vec![Logging::May, Logging::MustNot],
            security: vec![Security::E2e],
            compress: vec![Compress::None],
            stanzas: vec![StanzaType::Message, StanzaType::Presence, StanzaType::Iq],
            init_pubkey: vec![PubkeyMethod::None],
            resp_pubkey: vec![PubkeyMethod::None],
            rekey_freq: 1,
            identity: None,
            oss: None,
            support: Support::for_profile(profile),
            decoys: 2,
            accept_ssn: true,
            silent_rejections: false,
            example11_types: true,
            retained_max_age: 0,
            extended_search: 256,
        }
    }

    /// A configuration of `Profile::Xep` with an identity key: offers `key`, `hash` and `none`
    /// both ways (4-message negotiations may still end with `none`), and lets Bob identify with
    /// the key.
    #[must_use]
    pub fn with_identity(key: PrivateKey) -> Self {
        Self::new(Profile::Xep).identified_by(key)
    }

    /// This configuration with an identity key (see [`Config::with_identity`]).
    #[must_use]
    pub fn identified_by(mut self, key: PrivateKey) -> Self {
        let alg = key.public_key().alg();
        let all = vec![PubkeyMethod::Key, PubkeyMethod::Hash, PubkeyMethod::None];
        self.init_pubkey = all.clone();
        self.resp_pubkey = all;
        self.support.own_keys = vec![alg];
        self.identity = Some(key);
        self
    }
}
