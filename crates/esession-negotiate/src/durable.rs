//! Durable stores (feature `durable`): retained secrets and key trust in one embedded redb
//! database file. Secret values are sealed (AES-256-GCM, esession-crypto's `SealingKey`) and
//! bound to their record; public keys and JIDs are stored in clear. Records are versioned.
//!
//! Every mutation is committed with `Durability::Immediate` before the call returns, then
//! applied to an in-memory cache that serves reads: a crash right after a call returns loses
//! nothing.

use crate::store::{KeyRecord, MemoryRetained, MemoryTrust, Retained, RetainedStore, StoreError, TrustStore};
use esession_crypto::{KeyComponents, PublicKey, SealingKey, SecretBytes};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::{Arc, Mutex};

const RETAINED: TableDefinition<u64, &[u8]> = TableDefinition::new("retained_v1");
const TRUST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trust_v1");
const SAS: TableDefinition<&str, u8> = TableDefinition::new("sas_confirmed_v1");
const VERSION: u8 = 1;

fn err(e: impl core::fmt::Display) -> StoreError {
    StoreError(e.to_string())
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
    let n = u16::try_from(s.len()).map_err(|_| err("field too long"))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s);
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(err("truncated record"));
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
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| err("truncated record"))?;
        Ok(u64::from_be_bytes(b))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u16()?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, StoreError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| err("bad UTF-8 in record"))
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
        _ => return Err(err("unknown key type")),
    };
    key.map_err(err)
}

fn retained_aad(id: u64, jid: &str) -> Vec<u8> {
    let mut aad = b"esession retained v1".to_vec();
    aad.extend_from_slice(&id.to_be_bytes());
    aad.extend_from_slice(jid.as_bytes());
    aad
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
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(RETAINED).map_err(err)?;
        for row in t.iter().map_err(err)? {
            let (id, value) = row.map_err(err)?;
            let id = id.value();
            let mut rd = Reader(value.value());
            if rd.u8()? != VERSION {
                return Err(err("unknown retained record version"));
            }
            let created = rd.u64()?;
            let verified = rd.u8()? == 1;
            let jid = rd.string()?;
            let secret = self
                .key
                .open(&retained_aad(id, &jid), rd.0)
                .map_err(|_| err("cannot unseal a retained secret (wrong key?)"))?;
            self.retained.replace(&jid, None, secret, created, verified)?;
            self.ids.push(id);
        }
        let t = r.open_table(TRUST).map_err(err)?;
        for row in t.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let key = key_from_id(k.value())?;
            let mut rd = Reader(v.value());
            if rd.u8()? != VERSION {
                return Err(err("unknown trust record version"));
            }
            let verified = rd.u8()? == 1;
            let petname = match rd.string()? {
                p if p.is_empty() => None,
                p => Some(p),
            };
            let n = rd.u16()?;
            let mut jids = Vec::with_capacity(n);
            for _ in 0..n {
                jids.push(rd.string()?);
            }
            self.trust.put(KeyRecord { key, jids, petname, verified });
        }
        let t = r.open_table(SAS).map_err(err)?;
        for row in t.iter().map_err(err)? {
            let (jid, _) = row.map_err(err)?;
            self.trust.confirm_sas(jid.value())?;
        }
        Ok(())
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
        let mut v = vec![VERSION, u8::from(r.verified)];
        put_str(&mut v, r.petname.as_deref().unwrap_or("").as_bytes())?;
        v.extend_from_slice(&u16::try_from(r.jids.len()).map_err(|_| err("too many JIDs"))?.to_be_bytes());
        for j in &r.jids {
            put_str(&mut v, j.as_bytes())?;
        }
        self.write(|w| {
            let mut t = w.open_table(TRUST).map_err(err)?;
            t.insert(id.as_slice(), v.as_slice()).map_err(err)?;
            Ok(())
        })
    }

    /// Trusts `key` for `jid` (the user verified it), durably.
    ///
    /// # Errors
    /// The store could not record it.
    pub fn trust(&mut self, jid: &str, key: PublicKey) -> Result<(), StoreError> {
        let mut rec = self.trust.record(&key).cloned().unwrap_or(KeyRecord {
            key,
            jids: Vec::new(),
            petname: None,
            verified: false,
        });
        if !rec.jids.iter().any(|j| j == jid) {
            rec.jids.push(jid.to_owned());
        }
        rec.verified = true;
        self.put_trust(&rec)?;
        self.trust.put(rec);
        Ok(())
    }

    /// Gives a known key a petname, durably.
    ///
    /// # Errors
    /// The key is unknown, or the store could not record it.
    pub fn set_petname(&mut self, key: &PublicKey, petname: &str) -> Result<(), StoreError> {
        let mut rec = self.trust.record(key).cloned().ok_or_else(|| err("unknown key"))?;
        rec.petname = Some(petname.to_owned());
        self.put_trust(&rec)?;
        self.trust.put(rec);
        Ok(())
    }
}

impl RetainedStore for DurableStore {
    fn for_jid(&self, jid: &str, now: u64) -> Vec<&Retained> {
        self.retained.for_jid(jid, now)
    }

    fn all(&self, now: u64) -> Vec<&Retained> {
        self.retained.all(now)
    }

    fn replace(
        &mut self,
        jid: &str,
        old: Option<&SecretBytes>,
        new: SecretBytes,
        now: u64,
        chain_verified: bool,
    ) -> Result<(), StoreError> {
        // Which stored ids hold `old`.
        let all = self.retained.all(0);
        let doomed: Vec<u64> = match old {
            Some(o) => all
                .iter()
                .zip(&self.ids)
                .filter(|(r, _)| o.ct_eq(r.secret.expose_secret()))
                .map(|(_, id)| *id)
                .collect(),
            None => Vec::new(),
        };
        let id = self.ids.iter().max().map_or(1, |m| m + 1);
        let sealed = {
            let mut rng = self.rng.lock().map_err(|_| err("rng lock poisoned"))?;
            self.key.seal(&mut **rng, &retained_aad(id, jid), new.expose_secret()).map_err(err)?
        };
        let mut v = vec![VERSION];
        v.extend_from_slice(&now.to_be_bytes());
        v.push(u8::from(chain_verified));
        put_str(&mut v, jid.as_bytes())?;
        v.extend_from_slice(&sealed);
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

    fn mark_verified(&mut self, jid: &str) -> Result<(), StoreError> {
        let all = self.retained.all(0);
        let mut rows = Vec::new();
        for (r, id) in all.iter().zip(&self.ids) {
            if r.jid == jid {
                let sealed = {
                    let mut rng = self.rng.lock().map_err(|_| err("rng lock poisoned"))?;
                    self.key
                        .seal(&mut **rng, &retained_aad(*id, jid), r.secret.expose_secret())
                        .map_err(err)?
                };
                let mut v = vec![VERSION];
                v.extend_from_slice(&r.created.to_be_bytes());
                v.push(1);
                put_str(&mut v, jid.as_bytes())?;
                v.extend_from_slice(&sealed);
                rows.push((*id, v));
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
    fn for_jid(&self, jid: &str) -> Vec<&KeyRecord> {
        self.trust.for_jid(jid)
    }

    fn record(&self, key: &PublicKey) -> Option<&KeyRecord> {
        self.trust.record(key)
    }

    fn records(&self) -> Vec<&KeyRecord> {
        self.trust.records()
    }

    fn associate(&mut self, jid: &str, key: PublicKey) -> Result<(), StoreError> {
        let mut rec = self.trust.record(&key).cloned().unwrap_or(KeyRecord {
            key,
            jids: Vec::new(),
            petname: None,
            verified: false,
        });
        if !rec.jids.iter().any(|j| j == jid) {
            rec.jids.push(jid.to_owned());
            self.put_trust(&rec)?;
            self.trust.put(rec);
        }
        Ok(())
    }

    fn sas_confirmed(&self, jid: &str) -> bool {
        self.trust.sas_confirmed(jid)
    }

    fn confirm_sas(&mut self, jid: &str) -> Result<(), StoreError> {
        self.write(|w| {
            let mut t = w.open_table(SAS).map_err(err)?;
            t.insert(jid, 1u8).map_err(err)?;
            Ok(())
        })?;
        self.trust.confirm_sas(jid)
    }
}
