//! The stores a negotiation consults: retained secrets (XEP-0116 §4.7.3, §4.8.1) and key trust
//! (§7.3, §7.4). Traits with in-memory implementations; the durable implementation (redb,
//! sealed values) is future work (see the crate docs).

use core::fmt;
use esession_crypto::{PublicKey, SecretBytes};

/// A store could not record something. The operation that needed it fails: nothing is silently
/// kept only in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// A secret retained from a previous session with a peer's client.
pub struct Retained {
    /// The peer's bare JID.
    pub jid: String,
    /// The secret.
    pub secret: SecretBytes,
    /// When it was stored (seconds since the Unix epoch).
    pub created: u64,
    /// Whether the whole chain of retained secrets leading to it was verified by a SAS (§7.3).
    pub chain_verified: bool,
}

impl core::fmt::Debug for Retained {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Retained({}, created {}, <redacted>)", self.jid, self.created)
    }
}

/// Retained secrets, per peer bare JID.
pub trait RetainedStore {
    /// The unexpired secrets retained for `jid`, in store order.
    fn for_jid(&self, jid: &str, now: u64) -> Vec<&Retained>;
    /// Every unexpired secret, for the extended search across JIDs (§4.7.3).
    fn all(&self, now: u64) -> Vec<&Retained>;
    /// Stores `new` for `jid`, destroying `old` (the SRS just used) if given.
    ///
    /// # Errors
    /// The store could not record it durably.
    fn replace(
        &mut self,
        jid: &str,
        old: Option<&SecretBytes>,
        new: SecretBytes,
        now: u64,
        chain_verified: bool,
    ) -> Result<(), StoreError>;
    /// Marks every secret of `jid` as SAS-verified (the user confirmed the SAS).
    ///
    /// # Errors
    /// The store could not record it durably.
    fn mark_verified(&mut self, jid: &str) -> Result<(), StoreError>;
}

/// In-memory retained secrets with an expiry.
#[derive(Debug, Default)]
pub struct MemoryRetained {
    entries: Vec<Retained>,
    /// Secrets older than this many seconds are ignored (0: never expire).
    pub max_age: u64,
}

impl MemoryRetained {
    /// An empty store whose secrets expire after `max_age` seconds (0: never).
    #[must_use]
    pub fn new(max_age: u64) -> Self {
        Self { entries: Vec::new(), max_age }
    }

    fn fresh(&self, r: &Retained, now: u64) -> bool {
        self.max_age == 0 || now.saturating_sub(r.created) <= self.max_age
    }
}

impl RetainedStore for MemoryRetained {
    fn for_jid(&self, jid: &str, now: u64) -> Vec<&Retained> {
        self.entries.iter().filter(|r| r.jid == jid && self.fresh(r, now)).collect()
    }

    fn all(&self, now: u64) -> Vec<&Retained> {
        self.entries.iter().filter(|r| self.fresh(r, now)).collect()
    }

    fn replace(
        &mut self,
        jid: &str,
        old: Option<&SecretBytes>,
        new: SecretBytes,
        now: u64,
        chain_verified: bool,
    ) -> Result<(), StoreError> {
        if let Some(old) = old {
            // Dropping the entry wipes it (SecretBytes zeroizes).
            self.entries.retain(|r| !old.ct_eq(r.secret.expose_secret()));
        }
        self.entries.push(Retained { jid: jid.to_owned(), secret: new, created: now, chain_verified });
        Ok(())
    }

    fn mark_verified(&mut self, jid: &str) -> Result<(), StoreError> {
        for r in self.entries.iter_mut().filter(|r| r.jid == jid) {
            r.chain_verified = true;
        }
        Ok(())
    }
}

/// A public key we know, with the JIDs it was presented by (§7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key.
    pub key: PublicKey,
    /// The JIDs (bare) associated with it.
    pub jids: Vec<String>,
    /// A petname the user gave it, shown more prominently than the JID (§7.4).
    pub petname: Option<String>,
    /// Whether the user verified it (fingerprint or SAS).
    pub verified: bool,
}

/// Key associations and trust.
pub trait TrustStore {
    /// The records associated with `jid`.
    fn for_jid(&self, jid: &str) -> Vec<&KeyRecord>;
    /// The record of a key, if known.
    fn record(&self, key: &PublicKey) -> Option<&KeyRecord>;
    /// Every record (to resolve fingerprints).
    fn records(&self) -> Vec<&KeyRecord>;
    /// Whether `key` may identify `jid`: a key the user associated with that JID.
    fn trusts(&self, jid: &str, key: &PublicKey) -> bool {
        self.record(key).is_some_and(|r| r.jids.iter().any(|j| j == jid))
    }
    /// Associates `key` with `jid` (remembering keys is SHOULD, §7.4).
    ///
    /// # Errors
    /// The store could not record it durably.
    fn associate(&mut self, jid: &str, key: PublicKey) -> Result<(), StoreError>;
    /// Whether the user has confirmed a SAS with `jid` (else they are reminded, §4.7.2).
    fn sas_confirmed(&self, jid: &str) -> bool;
    /// Records the user's SAS confirmation for `jid`.
    ///
    /// # Errors
    /// The store could not record it durably.
    fn confirm_sas(&mut self, jid: &str) -> Result<(), StoreError>;
}

/// In-memory trust store.
#[derive(Debug, Default)]
pub struct MemoryTrust {
    records: Vec<KeyRecord>,
    sas: Vec<String>,
}

impl MemoryTrust {
    /// Trusts `key` for `jid` (as if the user had verified it).
    pub fn trust(&mut self, jid: &str, key: PublicKey) {
        self.add(jid, key.clone());
        if let Some(r) = self.records.iter_mut().find(|r| r.key == key) {
            r.verified = true;
        }
    }

    fn add(&mut self, jid: &str, key: PublicKey) {
        match self.records.iter_mut().find(|r| r.key == key) {
            Some(r) => {
                if !r.jids.iter().any(|j| j == jid) {
                    r.jids.push(jid.to_owned());
                }
            }
            None => self.records.push(KeyRecord {
                key,
                jids: vec![jid.to_owned()],
                petname: None,
                verified: false,
            }),
        }
    }

    /// Replaces a record whole (used by the durable store's cache).
    pub fn put(&mut self, record: KeyRecord) {
        self.records.retain(|r| r.key != record.key);
        self.records.push(record);
    }

    /// Sets a petname.
    pub fn set_petname(&mut self, key: &PublicKey, petname: &str) {
        if let Some(r) = self.records.iter_mut().find(|r| &r.key == key) {
            r.petname = Some(petname.to_owned());
        }
    }
}

impl TrustStore for MemoryTrust {
    fn for_jid(&self, jid: &str) -> Vec<&KeyRecord> {
        self.records.iter().filter(|r| r.jids.iter().any(|j| j == jid)).collect()
    }

    fn record(&self, key: &PublicKey) -> Option<&KeyRecord> {
        self.records.iter().find(|r| &r.key == key)
    }

    fn records(&self) -> Vec<&KeyRecord> {
        self.records.iter().collect()
    }

    fn associate(&mut self, jid: &str, key: PublicKey) -> Result<(), StoreError> {
        self.add(jid, key);
        Ok(())
    }

    fn sas_confirmed(&self, jid: &str) -> bool {
        self.sas.iter().any(|j| j == jid)
    }

    fn confirm_sas(&mut self, jid: &str) -> Result<(), StoreError> {
        if !self.sas_confirmed(jid) {
            self.sas.push(jid.to_owned());
        }
        Ok(())
    }
}

/// The bare JID of a JID (`user@host/resource` -> `user@host`).
#[must_use]
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// The stores a party consults while handling a stanza.
pub struct Stores<'a> {
    /// Key associations and trust.
    pub trust: &'a mut dyn TrustStore,
    /// Retained secrets.
    pub retained: &'a mut dyn RetainedStore,
}

impl core::fmt::Debug for Stores<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Stores")
    }
}
