//! Durable stores (feature `durable`): retained secrets and key trust in one embedded redb
//! database file. Secret values are sealed (AES-256-GCM, esession-crypto's `SealingKey`) and
//! bound to their record; public keys and JIDs are stored in clear. Records are versioned.
//!
//! Every mutation is committed with `Durability::Immediate` before the call returns, then
//! applied to an in-memory cache that serves reads: a crash right after a call returns loses
//! nothing.
//!
//! JIDs are stored normalized (`jid::BareJid`). Records written by earlier versions, which kept
//! JIDs as given (`Bob@Example.com`), are normalized when the store opens and rewritten in one
//! transaction (their sealed secrets re-sealed, since the JID is bound to the seal); records of
//! one key or one JID that become the same are merged. A stored JID that does not parse is left
//! out (and left in the file).

use crate::store::{
    KeyRecord, MemoryRetained, MemoryTrust, Retained, RetainedStore, StoreError, StoreErrorKind, TrustStore,
};
use chrono::{DateTime, Utc};
use esession_crypto::{KeyComponents, PublicKey, SealingKey, SecretBytes};
use jid::BareJid;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::{Arc, Mutex};

const RETAINED: TableDefinition<u64, &[u8]> = TableDefinition::new("retained_v1");
const TRUST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trust_v1");
const SAS: TableDefinition<&str, u8> = TableDefinition::new("sas_confirmed_v1");
const VERSION: u8 = 1;

fn err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::database(e)
}

/// A stored record that cannot be read back.
fn corrupt(what: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, what)
}

/// The randomness sealing needs (nonces), shared by the stores of one database.
pub type SealRng = Box<dyn rand_core::CryptoRng + Send>;

/// Retained secrets and key trust, durable.
pub struct DurableStore {
    db: Arc<Database>,
    key: SealingKey,
    rng: Mutex<SealRng>,
    retained: MemoryRetained,
    ids: Vec<u64>,
    trust: MemoryTrust,
}

impl core::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DurableStore")
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) -> Result<(), StoreError> {
    let n = u16::try_from(s.len()).map_err(|_| StoreError::new(StoreErrorKind::Other, "field too long"))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s);
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("truncated record"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, StoreError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| corrupt("truncated record"))?;
        Ok(u64::from_be_bytes(b))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u16()?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, StoreError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("bad UTF-8 in record"))
    }
}

/// A stable encoding of a public key: the table key of its trust record.
fn key_id(k: &PublicKey) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    match k.components() {
        KeyComponents::Rsa { n, e } => {
            out.push(1);
            for f in [n, e] {
                put_str(&mut out, &f)?;
            }
        }
        KeyComponents::Dsa { p, q, g, y } => {
            out.push(2);
            for f in [p, q, g, y] {
                put_str(&mut out, &f)?;
            }
        }
    }
    Ok(out)
}

fn key_from_id(id: &[u8]) -> Result<PublicKey, StoreError> {
    let mut r = Reader(id);
    let key = match r.u8()? {
        1 => PublicKey::rsa(r.bytes()?, r.bytes()?),
        2 => PublicKey::dsa(r.bytes()?, r.bytes()?, r.bytes()?, r.bytes()?),
        _ => return Err(corrupt("unknown key type")),
    };
    key.map_err(|e| corrupt("a stored public key is invalid").with_source(e))
}

/// Stored times are seconds since the Unix epoch.
fn time_to_secs(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

fn secs_to_time(s: u64) -> DateTime<Utc> {
    i64::try_from(s).ok().and_then(|s| DateTime::from_timestamp(s, 0)).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A stored JID, normalized; `None` when it does not parse.
fn stored_jid(s: &str) -> Option<BareJid> {
    BareJid::new(s).ok()
}

fn retained_aad(id: u64, jid: &str) -> Vec<u8> {
    let mut aad = b"esession retained v1".to_vec();
    aad.extend_from_slice(&id.to_be_bytes());
    aad.extend_from_slice(jid.as_bytes());
    aad
}

/// The trust state octet of a trust row: 0 seen, 1 verified, 2 pinned on first use (not
/// verified). Rows written before the pinned state existed hold 0 or 1 (a key pinned then was
/// written as verified, 1, and reads as such).
fn trust_flag(r: &KeyRecord) -> u8 {
    match r.state() {
        crate::store::KeyState::Verified => 1,
        crate::store::KeyState::Pinned => 2,
        _ => 0,
    }
}

/// The `(verified, pinned)` flags of a trust row's state octet ([`trust_flag`]). Any other
/// octet is refused, never read as another state: the row is damaged, or a newer version
/// wrote a state this one does not know (reading it as "seen" would downgrade a key the user
/// verified, as "verified" upgrade one never compared).
fn trust_state(octet: u8) -> Result<(bool, bool), StoreError> {
    match octet {
        0 => Ok((false, false)),
        1 => Ok((true, false)),
        2 => Ok((false, true)),
        _ => Err(corrupt(
            "a trust record holds an unknown trust state: the database is damaged, or a newer esession \
             wrote it (upgrade esession to read it)",
        )),
    }
}

/// A trust row: version, trust state ([`trust_flag`]), petname, JIDs.
fn trust_row(r: &KeyRecord) -> Result<Vec<u8>, StoreError> {
    let mut v = vec![VERSION, trust_flag(r)];
    put_str(&mut v, r.petname.as_deref().unwrap_or("").as_bytes())?;
    v.extend_from_slice(
        &u16::try_from(r.jids.len())
            .map_err(|_| StoreError::new(StoreErrorKind::Other, "too many JIDs"))?
            .to_be_bytes(),
    );
    for j in &r.jids {
        put_str(&mut v, j.as_str().as_bytes())?;
    }
    Ok(v)
}

impl DurableStore {
    /// Opens (or creates) the database file and loads the records.
    ///
    /// # Errors
    /// The file cannot be opened, or a record cannot be read or unsealed (a wrong key).
    pub fn open(path: &Path, key: SealingKey, rng: SealRng) -> Result<Self, StoreError> {
        let db = Arc::new(Database::create(path).map_err(err)?);
        Self::with_database(db, key, rng)
    }

    /// Uses an already open database (shared with the other stores of the same file).
    ///
    /// # Errors
    /// As [`DurableStore::open`].
    pub fn with_database(db: Arc<Database>, key: SealingKey, rng: SealRng) -> Result<Self, StoreError> {
        // Create the tables so reads of an empty database succeed.
        let w = db.begin_write().map_err(err)?;
        {
            w.open_table(RETAINED).map_err(err)?;
            w.open_table(TRUST).map_err(err)?;
            w.open_table(SAS).map_err(err)?;
        }
        w.commit().map_err(err)?;
        let mut me = Self {
            db,
            key,
            rng: Mutex::new(rng),
            retained: MemoryRetained::default(),
            ids: Vec::new(),
            trust: MemoryTrust::default(),
        };
        me.load()?;
        Ok(me)
    }

    /// The database, to share with other stores.
    #[must_use]
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// Retained secrets older than `max_age` seconds are ignored (0: never).
    pub fn set_retained_max_age(&mut self, max_age: u64) {
        self.retained.max_age = max_age;
    }

    fn load(&mut self) -> Result<(), StoreError> {
        // Rows written with JIDs that are not normalized: rewritten below.
        let mut migrate_retained: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut migrate_trust: Vec<KeyRecord> = Vec::new();
        let mut migrate_sas: Vec<(String, BareJid)> = Vec::new();
        {
            let r = self.db.begin_read().map_err(err)?;
            let t = r.open_table(RETAINED).map_err(err)?;
            for row in t.iter().map_err(err)? {
                let (id, value) = row.map_err(err)?;
                let id = id.value();
                let mut rd = Reader(value.value());
                if rd.u8()? != VERSION {
                    return Err(corrupt(
                        "a retained secret of an unknown record version: the database is damaged, or a newer \
                         esession wrote it (upgrade esession to read it)",
                    ));
                }
                let created = secs_to_time(rd.u64()?);
                let verified = match rd.u8()? {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(corrupt(
                            "a retained secret holds an unknown verified flag: the database is damaged, or a \
                             newer esession wrote it (upgrade esession to read it)",
                        ));
                    }
                };
                let raw = rd.string()?;
                let secret = self
                    .key
                    .open(&retained_aad(id, &raw), rd.0)
                    .map_err(|e| corrupt("cannot unseal a retained secret (wrong key?)").with_source(e))?;
                let Some(jid) = stored_jid(&raw) else { continue };
                if jid.as_str() != raw {
                    migrate_retained.push((id, self.retained_row(id, &jid, created, verified, &secret)?));
                }
                self.retained.load(Retained { jid, secret, created, chain_verified: verified });
                self.ids.push(id);
            }
            let t = r.open_table(TRUST).map_err(err)?;
            for row in t.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                let key = key_from_id(k.value())?;
                let mut rd = Reader(v.value());
                if rd.u8()? != VERSION {
                    return Err(corrupt(
                        "a trust record of an unknown record version: the database is damaged, or a newer \
                         esession wrote it (upgrade esession to read it)",
                    ));
                }
                let (verified, pinned) = trust_state(rd.u8()?)?;
                let petname = match rd.string()? {
                    p if p.is_empty() => None,
                    p => Some(p),
                };
                let n = rd.u16()?;
                let mut jids: Vec<BareJid> = Vec::with_capacity(n);
                let mut normalized = true;
                for _ in 0..n {
                    let raw = rd.string()?;
                    let Some(j) = stored_jid(&raw) else {
                        normalized = false;
                        continue;
                    };
                    normalized &= j.as_str() == raw && !jids.contains(&j);
                    if !jids.contains(&j) {
                        jids.push(j);
                    }
                }
                let rec = KeyRecord { key, jids, petname, verified, pinned };
                if !normalized {
                    migrate_trust.push(rec.clone());
                }
                self.trust.put(rec);
            }
            let t = r.open_table(SAS).map_err(err)?;
            for row in t.iter().map_err(err)? {
                let (raw, _) = row.map_err(err)?;
                let raw = raw.value().to_owned();
                let Some(jid) = stored_jid(&raw) else { continue };
                if jid.as_str() != raw {
                    migrate_sas.push((raw, jid.clone()));
                }
                self.trust.confirm_sas(&jid)?;
            }
        }
        if migrate_retained.is_empty() && migrate_trust.is_empty() && migrate_sas.is_empty() {
            return Ok(());
        }
        let trust_rows: Vec<(Vec<u8>, Vec<u8>)> = migrate_trust
            .iter()
            .map(|r| Ok((key_id(&r.key)?, trust_row(r)?)))
            .collect::<Result<_, StoreError>>()?;
        self.write(|w| {
            let mut t = w.open_table(RETAINED).map_err(err)?;
            for (id, row) in &migrate_retained {
                t.insert(*id, row.as_slice()).map_err(err)?;
            }
            let mut t = w.open_table(TRUST).map_err(err)?;
            for (id, row) in &trust_rows {
                t.insert(id.as_slice(), row.as_slice()).map_err(err)?;
            }
            let mut t = w.open_table(SAS).map_err(err)?;
            for (raw, jid) in &migrate_sas {
                t.remove(raw.as_str()).map_err(err)?;
                t.insert(jid.as_str(), 1u8).map_err(err)?;
            }
            Ok(())
        })
    }

    /// A retained-secret row: version, creation time, verified flag, JID, sealed secret (bound
    /// to the row id and the JID).
    fn retained_row(
        &self,
        id: u64,
        jid: &BareJid,
        created: DateTime<Utc>,
        verified: bool,
        secret: &SecretBytes,
    ) -> Result<Vec<u8>, StoreError> {
        let sealed = {
            let mut rng =
                self.rng.lock().map_err(|_| StoreError::new(StoreErrorKind::Other, "rng lock poisoned"))?;
            // X116-4.7.4-08 X116-4.8.1-03: a retained secret is written only sealed (AES-256-GCM,
            // bound to its row and JID).
            self.key.seal(&mut **rng, &retained_aad(id, jid.as_str()), secret.expose_secret()).map_err(
                |e| StoreError::new(StoreErrorKind::Other, "cannot seal a retained secret").with_source(e),
            )?
        };
        let mut v = vec![VERSION];
        v.extend_from_slice(&time_to_secs(created).to_be_bytes());
        v.push(u8::from(verified));
        put_str(&mut v, jid.as_str().as_bytes())?;
        v.extend_from_slice(&sealed);
        Ok(v)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = self.db.begin_write().map_err(err)?;
        w.set_durability(Durability::Immediate).map_err(err)?;
        let out = f(&w)?;
        w.commit().map_err(err)?;
        Ok(out)
    }

    fn put_trust(&self, r: &KeyRecord) -> Result<(), StoreError> {
        let id = key_id(&r.key)?;
        let v = trust_row(r)?;
        self.write(|w| {
            let mut t = w.open_table(TRUST).map_err(err)?;
            if r.jids.is_empty() {
                t.remove(id.as_slice()).map_err(err)?;
            } else {
                t.insert(id.as_slice(), v.as_slice()).map_err(err)?;
            }
            Ok(())
        })
    }

    /// The record of `key`, or a new one with no JID.
    fn record_of(&self, key: PublicKey) -> KeyRecord {
        self.trust.record(&key).cloned().unwrap_or(KeyRecord {
            key,
            jids: Vec::new(),
            petname: None,
            verified: false,
            pinned: false,
        })
    }

    /// Trusts `key` for `jid` (the user verified it), durably.
    ///
    /// # Errors
    /// The store could not record it.
    pub fn trust(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        let mut rec = self.record_of(key);
        if !rec.jids.contains(jid) {
            rec.jids.push(jid.clone());
        }
        rec.verified = true;
        rec.pinned = false;
        self.put_trust(&rec)?;
        self.trust.put(rec);
        Ok(())
    }

    /// Pins `key` for `jid` on first use, durably (see [`TrustStore::pin`]): a verified key
    /// stays verified.
    ///
    /// # Errors
    /// The key is already associated with [`crate::MAX_JIDS_PER_KEY`] other JIDs (a peer
    /// growing one record without bound, one JID at a time), or the store could not record it.
    pub fn pin_first_use(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        let mut rec = self.record_of(key);
        if !rec.jids.contains(jid) {
            if rec.jids.len() >= crate::store::MAX_JIDS_PER_KEY {
                return Err(StoreError::new(
                    StoreErrorKind::Other,
                    "the key is already associated with as many JIDs as a key may be",
                ));
            }
            rec.jids.push(jid.clone());
        }
        rec.pinned = !rec.verified;
        self.put_trust(&rec)?;
        self.trust.put(rec);
        Ok(())
    }

    /// Removes the association of `key` with `jid`, durably (the record goes with its last
    /// JID).
    ///
    /// # Errors
    /// The key is not associated with `jid`, or the store could not record it.
    pub fn untrust(&mut self, jid: &BareJid, key: &PublicKey) -> Result<(), StoreError> {
        let mut rec = self
            .trust
            .record(key)
            .cloned()
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound, "unknown key"))?;
        if !rec.jids.contains(jid) {
            return Err(StoreError::new(StoreErrorKind::NotFound, "the key is not associated with this JID"));
        }
        rec.jids.retain(|j| j != jid);
        self.put_trust(&rec)?;
        self.trust.untrust(jid, key);
        Ok(())
    }

    /// Gives a known key a petname, durably.
    ///
    /// # Errors
    /// The key is unknown, or the store could not record it.
    pub fn set_petname(&mut self, key: &PublicKey, petname: &str) -> Result<(), StoreError> {
        let mut rec = self
            .trust
            .record(key)
            .cloned()
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound, "unknown key"))?;
        rec.petname = Some(petname.to_owned());
        self.put_trust(&rec)?;
        self.trust.put(rec);
        Ok(())
    }
}

impl RetainedStore for DurableStore {
    fn for_jid(&self, jid: &BareJid, now: DateTime<Utc>) -> Vec<&Retained> {
        self.retained.for_jid(jid, now)
    }

    fn all(&self, now: DateTime<Utc>) -> Vec<&Retained> {
        self.retained.all(now)
    }

    fn replace(
        &mut self,
        jid: &BareJid,
        old: Option<&SecretBytes>,
        new: SecretBytes,
        now: DateTime<Utc>,
        chain_verified: bool,
    ) -> Result<(), StoreError> {
        // Which stored ids hold `old`.
        let all = self.retained.all(DateTime::<Utc>::UNIX_EPOCH);
        let doomed: Vec<u64> = match old {
            Some(o) => all
                .iter()
                .zip(&self.ids)
                .filter(|(r, _)| o.ct_eq(r.secret.expose_secret()))
                .map(|(_, id)| *id)
                .collect(),
            None => Vec::new(),
        };
        // The bound of the memory store, applied to the rows first (the cache follows below).
        let kept: Vec<&Retained> =
            all.iter().zip(&self.ids).filter(|(_, i)| !doomed.contains(i)).map(|(r, _)| *r).collect();
        let kept_ids: Vec<u64> = self.ids.iter().copied().filter(|i| !doomed.contains(i)).collect();
        let mut doomed = doomed;
        if let Some(e) = crate::store::retained_to_evict(&kept) {
            doomed.push(kept_ids[e]);
        }
        let id = self.ids.iter().max().map_or(1, |m| m + 1);
        let v = self.retained_row(id, jid, now, chain_verified, &new)?;
        self.write(|w| {
            let mut t = w.open_table(RETAINED).map_err(err)?;
            for d in &doomed {
                t.remove(*d).map_err(err)?;
            }
            t.insert(id, v.as_slice()).map_err(err)?;
            Ok(())
        })?;
        // Committed: mirror it in the cache (ids kept in the cache's order).
        let keep: Vec<bool> = self.ids.iter().map(|i| !doomed.contains(i)).collect();
        self.retained.replace(jid, old, new, now, chain_verified)?;
        let mut ids: Vec<u64> = self.ids.iter().zip(keep).filter(|(_, k)| *k).map(|(i, _)| *i).collect();
        ids.push(id);
        self.ids = ids;
        Ok(())
    }

    fn mark_verified(&mut self, jid: &BareJid) -> Result<(), StoreError> {
        let all = self.retained.all(DateTime::<Utc>::UNIX_EPOCH);
        let mut rows = Vec::new();
        for (r, id) in all.iter().zip(&self.ids) {
            if r.jid == *jid {
                rows.push((*id, self.retained_row(*id, jid, r.created, true, &r.secret)?));
            }
        }
        self.write(|w| {
            let mut t = w.open_table(RETAINED).map_err(err)?;
            for (id, v) in &rows {
                t.insert(*id, v.as_slice()).map_err(err)?;
            }
            Ok(())
        })?;
        self.retained.mark_verified(jid)
    }
}

impl TrustStore for DurableStore {
    fn for_jid(&self, jid: &BareJid) -> Vec<&KeyRecord> {
        self.trust.for_jid(jid)
    }

    fn record(&self, key: &PublicKey) -> Option<&KeyRecord> {
        self.trust.record(key)
    }

    fn records(&self) -> Vec<&KeyRecord> {
        self.trust.records()
    }

    fn associate(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        let known = self.trust.record(&key).cloned();
        // A new unverified key beyond the bound: the oldest unverified, unnamed record goes
        // (MAX_UNVERIFIED_KEYS), durably first.
        if known.is_none() {
            let records = self.trust.records();
            if let Some(i) = crate::store::unverified_to_evict(&records) {
                let mut gone = records[i].clone();
                drop(records);
                let jids = std::mem::take(&mut gone.jids);
                self.put_trust(&gone)?;
                for j in &jids {
                    self.trust.untrust(j, &gone.key);
                }
            }
        }
        let mut rec = known.unwrap_or(KeyRecord {
            key,
            jids: Vec::new(),
            petname: None,
            verified: false,
            pinned: false,
        });
        if !rec.jids.contains(jid) && rec.jids.len() < crate::store::MAX_JIDS_PER_KEY {
            rec.jids.push(jid.clone());
            self.put_trust(&rec)?;
            self.trust.put(rec);
        }
        Ok(())
    }

    fn sas_confirmed(&self, jid: &BareJid) -> bool {
        self.trust.sas_confirmed(jid)
    }

    fn confirm_sas(&mut self, jid: &BareJid) -> Result<(), StoreError> {
        self.write(|w| {
            let mut t = w.open_table(SAS).map_err(err)?;
            t.insert(jid.as_str(), 1u8).map_err(err)?;
            Ok(())
        })?;
        self.trust.confirm_sas(jid)
    }

    fn pin(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        self.pin_first_use(jid, key)
    }

    fn verify(&mut self, jid: &BareJid, key: PublicKey) -> Result<(), StoreError> {
        self.trust(jid, key)
    }
}
