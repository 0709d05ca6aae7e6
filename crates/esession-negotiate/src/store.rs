//! The stores a negotiation consults: retained secrets (XEP-0116 §4.7.3, §4.8.1) and key trust
//! (§7.3, §7.4). Traits with in-memory implementations here; the durable implementation (redb,
//! sealed values) is [`crate::durable`]. Every JID is a normalized [`BareJid`]: trust given to
//! `Bob@Example.com` is trust in `bob@example.com`.

use chrono::{DateTime, Utc};
use core::fmt;
use esession_crypto::{PublicKey, SecretBytes};
use jid::BareJid;
use std::sync::Arc;

/// What kind of failure a [`StoreError`] is: what a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The file or the database could not be read or written (I/O, the database engine).
    Io,
    /// The database is held by another process (or another handle of this one).
    Locked,
    /// A stored record cannot be read back: truncated, of an unknown version, not unsealing
    /// with this key.
    Corrupt,
    /// What the call names is not in the store (an unknown key, a key not associated with
    /// the JID).
    NotFound,
    /// Anything else: a value that cannot be stored, a seal that failed, a store that refuses
    /// writes by design.
    Other,
}

/// A store could not record or read something. The operation that needed it fails: nothing is
/// silently kept only in memory.
///
/// Its `Display` is `store: ` and a short description (never a secret: descriptions are fixed
/// texts or JIDs), followed by the cause's text when there is one; the cause is also
/// [`std::error::Error::source`]. Two errors are equal when their kind and description are
/// (the cause is not compared).
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    what: String,
    source: Option<Arc<Cause>>,
}

/// The cause of a [`StoreError`], shared by its clones and never changed after it is made, so
/// that observing it after a panic shows nothing broken: it is unwind safe whatever its type
/// (a redb error is not, by its boxed backend error), and `StoreError` stays as unwind safe as
/// it was as a string.
struct Cause(Box<dyn std::error::Error + Send + Sync + 'static>);

impl std::panic::UnwindSafe for Cause {}
impl std::panic::RefUnwindSafe for Cause {}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl StoreError {
    /// An error of `kind` described by `what` (no secret: it is displayed and logged).
    #[must_use]
    pub fn new(kind: StoreErrorKind, what: impl Into<String>) -> Self {
        Self { kind, what: what.into(), source: None }
    }

    /// The same error, caused by `source`.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(Cause(Box::new(source))));
        self
    }

    /// A failure of the embedded database (redb), classified: a database another process holds
    /// is [`StoreErrorKind::Locked`], a corrupted file [`StoreErrorKind::Corrupt`], the rest
    /// [`StoreErrorKind::Io`].
    #[cfg(feature = "durable")]
    #[must_use]
    pub fn database(e: impl Into<redb::Error>) -> Self {
        let e: redb::Error = e.into();
        let kind = match &e {
            redb::Error::DatabaseAlreadyOpen
            | redb::Error::LockProtocolMismatch
            | redb::Error::WouldBlock => StoreErrorKind::Locked,
            redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Io,
        };
        Self::new(kind, "the database failed").with_source(e)
    }

    /// What kind of failure it is.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.what == other.what
    }
}

impl Eq for StoreError {}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store: {}", self.what)?;
        match &self.source {
            Some(e) => write!(f, ": {}", e.0),
            None => Ok(()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|c| &*c.0 as &(dyn std::error::Error + 'static))
    }
}

/// A secret retained from a previous session with a peer's client.
pub struct Retained {
    /// The peer's bare JID.
    pub jid: BareJid,
    /// The secret.
    pub secret: SecretBytes,
    /// When it was stored.
    pub created: DateTime<Utc>,
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
    fn for_jid(&self, jid: &BareJid, now: DateTime<Utc>) -> Vec<&Retained>;
    /// Every unexpired secret, for the extended search across JIDs (§4.7.3).
    fn all(&self, now: DateTime<Utc>) -> Vec<&Retained>;
    /// Stores `new` for `jid`, destroying `old` (the SRS just used) if given.
    ///
    /// # Errors
    /// The store could not record it durably.
    fn replace(
        &mut self,
        jid: &BareJid,
        old: Option<&SecretBytes>,
        new: SecretBytes,
        now: DateTime<Utc>,
        chain_verified: bool,
    ) -> Result<(), StoreError>;
    /// Marks every secret of `jid` as SAS-verified (the user confirmed the SAS).
    ///
    /// # Errors
    /// The store could not record it durably.
    fn mark_verified(&mut self, jid: &BareJid) -> Result<(), StoreError>;
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

    fn fresh(&self, r: &Retained, now: DateTime<Utc>) -> bool {
        // X116-4.7.3-01 X116-4.8.1-01: a secret older than the limit has expired and is not
        // handed out to be matched.
        self.max_age == 0
            || (now - r.created).num_seconds() <= i64::try_from(self.max_age).unwrap_or(i64::MAX)
    }
}

impl MemoryRetained {
    /// Adds a stored entry as it is, without the bound (loading a durable store's rows).
    #[cfg(feature = "durable")]
    pub(crate) fn load(&mut self, r: Retained) {
        self.entries.push(r);
    }
}

impl RetainedStore for MemoryRetained {
    fn for_jid(&self, jid: &BareJid, now: DateTime<Utc>) -> Vec<&Retained> {
        self.entries.iter().filter(|r| r.jid == *jid && self.fresh(r, now)).collect()
    }

    fn all(&self, now: DateTime<Utc>) -> Vec<&Retained> {
        self.entries.iter().filter(|r| self.fresh(r, now)).collect()
    }

    fn replace(
        &mut self,
        jid: &BareJid,
        old: Option<&SecretBytes>,
        new: SecretBytes,
        now: DateTime<Utc>,
        chain_verified: bool,
    ) -> Result<(), StoreError> {
        if let Some(old) = old {
            // Dropping the entry wipes it (SecretBytes zeroizes).
            self.entries.retain(|r| !old.ct_eq(r.secret.expose_secret()));
        }
        let refs: Vec<&Retained> = self.entries.iter().collect();
        if let Some(i) = retained_to_evict(&refs) {
            self.entries.remove(i);
        }
        self.entries.push(Retained { jid: jid.clone(), secret: new, created: now, chain_verified });
        Ok(())
    }

    fn mark_verified(&mut self, jid: &BareJid) -> Result<(), StoreError> {
        for r in self.entries.iter_mut().filter(|r| r.jid == *jid) {
            r.chain_verified = true;
        }
        Ok(())
    }
}

/// How many retained secrets a store keeps at most: beyond it the oldest whose chain was never
/// verified goes (else the oldest). Every peer that completes a negotiation leaves one, and a
/// peer can use any number of JIDs, so the store must not grow with them.
pub const MAX_RETAINED: usize = 4096;

/// How many keys the user never verified (and never named) a trust store remembers at most:
/// beyond it the oldest such record is forgotten. Verified and named keys are never evicted.
pub const MAX_UNVERIFIED_KEYS: usize = 1024;

/// How many JIDs one key record lists at most: a key presented by more JIDs raises the alert
/// each time (§7.4) but is not recorded again.
pub const MAX_JIDS_PER_KEY: usize = 64;

/// Which record `records` must forget to take one more unverified key, if any: the oldest
/// record neither verified, pinned nor named, once there are [`MAX_UNVERIFIED_KEYS`] of them.
pub(crate) fn unverified_to_evict(records: &[&KeyRecord]) -> Option<usize> {
    let unverified: Vec<usize> = (0..records.len())
        .filter(|&i| !records[i].verified && !records[i].pinned && records[i].petname.is_none())
        .collect();
    if unverified.len() >= MAX_UNVERIFIED_KEYS { unverified.first().copied() } else { None }
}

/// Which retained secret must go to take one more, if any (see [`MAX_RETAINED`]).
pub(crate) fn retained_to_evict(entries: &[&Retained]) -> Option<usize> {
    if entries.len() < MAX_RETAINED {
        return None;
    }
    entries.iter().position(|r| !r.chain_verified).or(Some(0))
}

/// A public key we know, with the JIDs it was presented by (§7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key.
    pub key: PublicKey,
    /// The JIDs (bare) associated with it.
    pub jids: Vec<BareJid>,
    /// A petname the user gave it, shown more prominently than the JID (§7.4).
    pub petname: Option<String>,
    /// Whether the user verified it (compared its fingerprint, or confirmed a SAS of a session
    /// in which it was proved).
    pub verified: bool,
    /// Taken on first use ([`TrustStore::pin`]) and not compared by the user: trusted as the
    /// contact's key (never evicted, a negotiation accepts it) but not `verified`. Cleared when
    /// the user verifies it ([`TrustStore::verify`]); never set on a verified key.
    pub pinned: bool,
}

/// How far the user trusts a key ([`KeyRecord::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Verified by the user (fingerprint compared, or a SAS confirmed).
    Verified,
    /// Pinned on first use, not compared: whoever answered first for the JID.
    Pinned,
    /// Seen (and remembered), neither pinned nor verified.
    Unverified,
}

impl KeyRecord {
    /// Verified, pinned on first use, or neither.
    #[must_use]
    pub fn state(&self) -> KeyState {
        if self.verified {
            KeyState::Verified
        } else if self.pinned {
            KeyState::Pinned
        } else {
            KeyState::Unverified
        }
    }
}

/// Key associations and trust.
pub trait TrustStore {
    /// The records associated with `jid`.
    fn for_jid(&self, jid: &BareJid) -> Vec<&KeyRecord>;
    /// The record of a key, if known.
    fn record(&self, key: &PublicKey) -> Option<&KeyRecord>;
    /// Every record (to resolve fingerprints).
    fn records(&self) -> Vec<&KeyRecord>;
    /// Whether `key` may identify `jid`: a key the user associated with that JID.
    fn trusts(&self, jid: &BareJid, key: &PublicKey) -> bool {
        self.record(key).is_some_and(|r| r.jids.contains(jid))
    }
    /// A key not trusted for `jid` identified the peer of a negotiation (or an offline start)
    /// and proved it holds the private key: its signature verified. The negotiation is
    /// refused all the same (`key-trust`); a store may remember the key for the user to
    /// compare its fingerprint with the contact's and trust it. Called only after the
    /// signature verified, so that a peer cannot make the user see a key it does not hold.
    /// The default remembers nothing.
    fn refused(&self, jid: &BareJid, key: &PublicKey) {
        let _ = (jid, key);
    }
    /// Associates `key` with `jid` (remembering keys is SHOULD, §7.4).
    ///
    /// # Errors
    /// The store could not record it durably.
    fn associate(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError>;
    /// Whether the user has confirmed a SAS with `jid` (else they are reminded, §4.7.2).
    fn sas_confirmed(&self, jid: &BareJid) -> bool;
    /// Records the user's SAS confirmation for `jid`.
    ///
    /// # Errors
    /// The store could not record it durably.
    fn confirm_sas(&mut self, jid: &BareJid) -> Result<(), StoreError>;
    /// Trust on first use: associates `key` with `jid` as pinned ([`KeyRecord::pinned`]), not
    /// verified: a first key taken by an engine configured for it, which the user has not
    /// compared. A key already verified stays verified. A store that cannot record trust
    /// refuses (the default).
    ///
    /// # Errors
    /// The store could not record it durably, or records no trust.
    fn pin(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        let _ = (jid, key);
        Err(StoreError::new(StoreErrorKind::Other, "this store records no trust"))
    }
    /// The user verified `key` for `jid` (compared its fingerprint, or confirmed the SAS of a
    /// session in which it was proved): associated and verified, no longer only pinned. A
    /// store that cannot record trust refuses (the default).
    ///
    /// # Errors
    /// The store could not record it durably, or records no trust.
    fn verify(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        let _ = (jid, key);
        Err(StoreError::new(StoreErrorKind::Other, "this store records no trust"))
    }
}

/// In-memory trust store.
#[derive(Debug, Default)]
pub struct MemoryTrust {
    records: Vec<KeyRecord>,
    sas: Vec<BareJid>,
}

impl MemoryTrust {
    /// Trusts `key` for `jid` (as if the user had verified it).
    pub fn trust(&mut self, jid: &BareJid, key: PublicKey) {
        self.add(jid, key.clone());
        if let Some(r) = self.records.iter_mut().find(|r| r.key == key) {
            r.verified = true;
            r.pinned = false;
        }
    }

    /// Pins `key` for `jid` on first use (see [`TrustStore::pin`]): a verified key stays
    /// verified.
    pub fn pin_first_use(&mut self, jid: &BareJid, key: PublicKey) {
        self.add(jid, key.clone());
        // Not when the key already has `MAX_JIDS_PER_KEY` JIDs and `jid` could not be added.
        if let Some(r) = self.records.iter_mut().find(|r| r.key == key && r.jids.contains(jid)) {
            r.pinned = !r.verified;
        }
    }

    /// Removes the association of `key` with `jid` (the record goes when no JID is left).
    pub fn untrust(&mut self, jid: &BareJid, key: &PublicKey) {
        for r in self.records.iter_mut().filter(|r| &r.key == key) {
            r.jids.retain(|j| j != jid);
        }
        self.records.retain(|r| !r.jids.is_empty());
    }

    fn add(&mut self, jid: &BareJid, key: PublicKey) {
        match self.records.iter_mut().find(|r| r.key == key) {
            Some(r) => {
                if !r.jids.contains(jid) && r.jids.len() < MAX_JIDS_PER_KEY {
                    r.jids.push(jid.clone());
                }
            }
            None => {
                let refs: Vec<&KeyRecord> = self.records.iter().collect();
                if let Some(i) = unverified_to_evict(&refs) {
                    self.records.remove(i);
                }
                self.records.push(KeyRecord {
                    key,
                    jids: vec![jid.clone()],
                    petname: None,
                    verified: false,
                    pinned: false,
                })
            }
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
    fn for_jid(&self, jid: &BareJid) -> Vec<&KeyRecord> {
        self.records.iter().filter(|r| r.jids.contains(jid)).collect()
    }

    fn record(&self, key: &PublicKey) -> Option<&KeyRecord> {
        self.records.iter().find(|r| &r.key == key)
    }

    fn records(&self) -> Vec<&KeyRecord> {
        self.records.iter().collect()
    }

    fn associate(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        self.add(jid, key);
        Ok(())
    }

    fn sas_confirmed(&self, jid: &BareJid) -> bool {
        self.sas.contains(jid)
    }

    fn confirm_sas(&mut self, jid: &BareJid) -> Result<(), StoreError> {
        if !self.sas_confirmed(jid) {
            self.sas.push(jid.clone());
        }
        Ok(())
    }

    fn pin(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        self.pin_first_use(jid, key);
        Ok(())
    }

    fn verify(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        self.trust(jid, key);
        Ok(())
    }
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

/// Key-association alerts (§7.4) for the key the peer with `jid` proved (or none), then the
/// association is recorded (remembering keys is SHOULD, §7.4).
///
/// # Errors
/// The association could not be recorded.
pub(crate) fn key_alerts(
    trust: &mut dyn TrustStore,
    jid: &BareJid,
    key: Option<&PublicKey>,
) -> Result<Vec<crate::outputs::Alert>, StoreError> {
    use crate::outputs::Alert;
    let mut alerts = Vec::new();
    let known: Vec<PublicKey> = trust.for_jid(jid).into_iter().map(|r| r.key.clone()).collect();
    // X116-7.4-03: a JID presenting another key (or none) than the one we know.
    if !known.is_empty() && key.is_none_or(|k| !known.contains(k)) {
        alerts.push(Alert::KeyChanged { jid: jid.clone() });
    }
    if let Some(k) = key {
        if let Some(r) = trust.record(k) {
            let others: Vec<BareJid> = r.jids.iter().filter(|j| *j != jid).cloned().collect();
            // X116-7.4-02: a key already associated with other JIDs.
            if !others.is_empty() {
                alerts.push(Alert::KeyUnderOtherJid { jid: jid.clone(), known_as: others });
            }
        }
        trust.associate(jid, k.clone())?;
    }
    Ok(alerts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    /// Two store errors are equal when their kind and description are; the cause is shown by
    /// `Debug` as the cause's own `Debug`.
    #[test]
    fn store_errors_compare_by_kind_and_description() {
        let a = StoreError::new(StoreErrorKind::Io, "cannot write");
        assert_eq!(
            a,
            StoreError::new(StoreErrorKind::Io, "cannot write").with_source(std::io::Error::other("x"))
        );
        assert_ne!(a, StoreError::new(StoreErrorKind::Corrupt, "cannot write"));
        assert_ne!(a, StoreError::new(StoreErrorKind::Io, "cannot read"));
        let caused = a.with_source(std::io::Error::other("disk full"));
        let shown = format!("{caused:?}");
        assert!(shown.contains(&format!("{:?}", std::io::Error::other("disk full"))), "{shown}");
    }

    /// redb's failures are classified: held elsewhere, corrupted or of another file format,
    /// anything else.
    #[cfg(feature = "durable")]
    #[test]
    fn database_failures_are_classified() {
        use redb::Error as E;
        for (e, kind) in [
            (E::DatabaseAlreadyOpen, StoreErrorKind::Locked),
            (E::Corrupted("bad page".into()), StoreErrorKind::Corrupt),
            (E::UpgradeRequired(1), StoreErrorKind::Corrupt),
            (E::Io(std::io::Error::other("disk full")), StoreErrorKind::Io),
        ] {
            assert_eq!(StoreError::database(e).kind(), kind);
        }
    }

    /// A retained secret's `Debug` names its peer and date, never the secret; marking a chain
    /// verified marks that peer's secrets only.
    #[test]
    fn retained_secrets_show_no_secret_and_are_verified_per_peer() {
        let mut m = MemoryRetained::new(0);
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        m.replace(&jid("alice@example.org"), None, SecretBytes::from_slice(b"secret one"), now, false)
            .unwrap();
        m.replace(&jid("bob@example.com"), None, SecretBytes::from_slice(b"secret two"), now, false).unwrap();
        let shown = format!("{:?}", m.for_jid(&jid("alice@example.org"), now)[0]);
        assert_eq!(shown, format!("Retained(alice@example.org, created {now}, <redacted>)"));
        m.mark_verified(&jid("alice@example.org")).unwrap();
        assert!(m.for_jid(&jid("alice@example.org"), now)[0].chain_verified);
        assert!(!m.for_jid(&jid("bob@example.com"), now)[0].chain_verified);
    }

    fn key(i: u8) -> PublicKey {
        let mut n = vec![0xC5u8; 128];
        n[120] = i;
        n[127] |= 1;
        PublicKey::rsa(&n, &[1, 0, 1]).unwrap()
    }

    /// X116-7.4-02/-03: the key alerts. No alert for a first key; another key (or none) than
    /// the one known is a changed key; a key known under another JID says which; the key is
    /// then associated. Petnames go to their key only; `Stores` shows nothing it holds.
    #[test]
    fn key_alerts_and_petnames() {
        use crate::outputs::Alert;
        let (bob, carol) = (jid("bob@example.com"), jid("carol@example.net"));
        let mut t = MemoryTrust::default();
        assert!(key_alerts(&mut t, &bob, None).unwrap().is_empty(), "nothing known, no key");
        assert!(key_alerts(&mut t, &bob, Some(&key(1))).unwrap().is_empty(), "a first key");
        assert!(t.for_jid(&bob).iter().any(|r| r.key == key(1)), "associated");
        assert!(key_alerts(&mut t, &bob, Some(&key(1))).unwrap().is_empty(), "the known key");
        let changed = key_alerts(&mut t, &bob, Some(&key(2))).unwrap();
        assert!(matches!(&changed[..], [Alert::KeyChanged { jid }] if *jid == bob), "{changed:?}");
        let none = key_alerts(&mut t, &bob, None).unwrap();
        assert!(matches!(&none[..], [Alert::KeyChanged { .. }]), "{none:?}");
        let other = key_alerts(&mut t, &carol, Some(&key(1))).unwrap();
        assert!(
            matches!(&other[..], [Alert::KeyUnderOtherJid { jid, known_as }] if *jid == carol && *known_as == vec![bob.clone()]),
            "{other:?}"
        );
        t.set_petname(&key(1), "Bob (laptop)");
        assert_eq!(t.record(&key(1)).unwrap().petname.as_deref(), Some("Bob (laptop)"));
        assert_eq!(t.record(&key(2)).unwrap().petname, None);
        let mut r = MemoryRetained::default();
        assert_eq!(format!("{:?}", Stores { trust: &mut t, retained: &mut r }), "Stores");
    }

    /// A store that implements only what it must refuses to pin or verify (the defaults): it
    /// records no trust, and must not say it did.
    #[test]
    fn a_store_without_trust_refuses_to_pin_or_verify() {
        struct Bare;
        impl TrustStore for Bare {
            fn for_jid(&self, _: &BareJid) -> Vec<&KeyRecord> {
                Vec::new()
            }
            fn record(&self, _: &PublicKey) -> Option<&KeyRecord> {
                None
            }
            fn records(&self) -> Vec<&KeyRecord> {
                Vec::new()
            }
            fn associate(&mut self, _: &BareJid, _: PublicKey) -> Result<(), StoreError> {
                Ok(())
            }
            fn sas_confirmed(&self, _: &BareJid) -> bool {
                false
            }
            fn confirm_sas(&mut self, _: &BareJid) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let bob = jid("bob@example.com");
        assert_eq!(Bare.pin(&bob, key(1)).unwrap_err().kind(), StoreErrorKind::Other);
        assert_eq!(Bare.verify(&bob, key(1)).unwrap_err().kind(), StoreErrorKind::Other);
    }
}
