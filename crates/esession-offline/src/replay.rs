//! The replay store (XEP-0187 §3.4 step 2, §6.1): every d and N_B accepted since the options were
//! published is remembered until they expire, durably (feature `durable`).

use chrono::{DateTime, Utc};
use esession_negotiate::StoreError;
use std::collections::HashMap;

/// Remembers what was already accepted.
pub trait ReplayStore {
    /// Whether `key` was recorded (and has not expired).
    fn seen(&self, key: &[u8], now: DateTime<Utc>) -> bool;
    /// Records keys, valid until `expires` (a key is seen while `now <= expires`). Durable before
    /// it returns.
    ///
    /// # Errors
    /// The store could not record them: the caller must refuse the session.
    fn record(&mut self, keys: &[Vec<u8>], expires: DateTime<Utc>) -> Result<(), StoreError>;
    /// Records entries with their own expiry times as one unit: all of them are durable when it
    /// returns `Ok`. A durable store should override it with one transaction; the default makes
    /// one [`ReplayStore::record`] call per distinct expiry time.
    ///
    /// # Errors
    /// As [`ReplayStore::record`]; some entries may then be recorded, never reported as such.
    fn record_all(&mut self, entries: &[(Vec<u8>, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut times: Vec<DateTime<Utc>> = entries.iter().map(|(_, e)| *e).collect();
        times.sort_unstable();
        times.dedup();
        for t in times {
            let keys: Vec<Vec<u8>> =
                entries.iter().filter(|(_, e)| *e == t).map(|(k, _)| k.clone()).collect();
            self.record(&keys, t)?;
        }
        Ok(())
    }
    /// Forgets expired entries (bounded growth).
    ///
    /// # Errors
    /// The store could not be updated.
    fn purge(&mut self, now: DateTime<Utc>) -> Result<(), StoreError>;
}

/// An expiry time as stores keep it on disk: whole seconds since the Unix epoch, rounded up (an
/// entry is never forgotten early), 0 before the epoch. [`from_disk`] reads it back.
#[must_use]
pub fn to_disk(t: DateTime<Utc>) -> u64 {
    let s = t.timestamp().saturating_add(i64::from(t.timestamp_subsec_nanos() > 0));
    u64::try_from(s).unwrap_or(0)
}

/// An expiry time [`to_disk`] wrote (or an earlier version's seconds): one beyond what `chrono`
/// represents is kept forever.
#[must_use]
pub fn from_disk(s: u64) -> DateTime<Utc> {
    i64::try_from(s).ok().and_then(|s| DateTime::from_timestamp(s, 0)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// In-memory replay store.
#[derive(Debug, Default)]
pub struct MemoryReplay {
    entries: HashMap<Vec<u8>, DateTime<Utc>>,
}

impl MemoryReplay {
    /// How many entries are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl ReplayStore for MemoryReplay {
    fn seen(&self, key: &[u8], now: DateTime<Utc>) -> bool {
        self.entries.get(key).is_some_and(|e| *e >= now)
    }

    fn record(&mut self, keys: &[Vec<u8>], expires: DateTime<Utc>) -> Result<(), StoreError> {
        for k in keys {
            self.entries.insert(k.clone(), expires);
        }
        Ok(())
    }

    fn purge(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.entries.retain(|_, e| *e >= now);
        Ok(())
    }
}

/// The replay store in a redb database (the same file as the negotiation's stores).
#[cfg(feature = "durable")]
pub mod durable {
    use super::{MemoryReplay, ReplayStore, from_disk, to_disk};
    use chrono::{DateTime, Utc};
    use esession_negotiate::StoreError;
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
    use std::sync::Arc;

    /// Expiry times are kept on disk as whole seconds since the Unix epoch.
    const REPLAY: TableDefinition<&[u8], u64> = TableDefinition::new("replay_v1");

    fn err(e: impl Into<redb::Error>) -> StoreError {
        StoreError::database(e)
    }

    /// Durable replay store: each `record` is one committed transaction.
    pub struct DurableReplay {
        db: Arc<Database>,
        cache: MemoryReplay,
    }

    impl core::fmt::Debug for DurableReplay {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "DurableReplay({} entries)", self.cache.len())
        }
    }

    impl DurableReplay {
        /// Opens the store in `db`, loading its entries.
        ///
        /// # Errors
        /// The database cannot be read.
        pub fn new(db: Arc<Database>) -> Result<Self, StoreError> {
            let w = db.begin_write().map_err(err)?;
            {
                w.open_table(REPLAY).map_err(err)?;
            }
            w.commit().map_err(err)?;
            let mut cache = MemoryReplay::default();
            let r = db.begin_read().map_err(err)?;
            let t = r.open_table(REPLAY).map_err(err)?;
            for row in t.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                cache.record(&[k.value().to_vec()], from_disk(v.value()))?;
            }
            Ok(Self { db, cache })
        }

        /// Opens (or creates) a database file for it alone.
        ///
        /// # Errors
        /// The file cannot be opened.
        pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
            Self::new(Arc::new(Database::create(path).map_err(err)?))
        }

        /// How many entries are kept.
        #[must_use]
        pub fn len(&self) -> usize {
            self.cache.len()
        }

        /// Whether it is empty.
        #[must_use]
        pub fn is_empty(&self) -> bool {
            self.cache.is_empty()
        }
    }

    impl ReplayStore for DurableReplay {
        fn seen(&self, key: &[u8], now: DateTime<Utc>) -> bool {
            self.cache.seen(key, now)
        }

        fn record(&mut self, keys: &[Vec<u8>], expires: DateTime<Utc>) -> Result<(), StoreError> {
            // The cache holds what a reload would read.
            let expires = from_disk(to_disk(expires));
            let mut w = self.db.begin_write().map_err(err)?;
            w.set_durability(Durability::Immediate).map_err(err)?;
            {
                let mut t = w.open_table(REPLAY).map_err(err)?;
                for k in keys {
                    t.insert(k.as_slice(), to_disk(expires)).map_err(err)?;
                }
            }
            w.commit().map_err(err)?;
            self.cache.record(keys, expires)
        }

        /// One committed transaction (one `fsync`) for all of them.
        fn record_all(&mut self, entries: &[(Vec<u8>, DateTime<Utc>)]) -> Result<(), StoreError> {
            let mut w = self.db.begin_write().map_err(err)?;
            w.set_durability(Durability::Immediate).map_err(err)?;
            {
                let mut t = w.open_table(REPLAY).map_err(err)?;
                for (k, e) in entries {
                    t.insert(k.as_slice(), to_disk(*e)).map_err(err)?;
                }
            }
            w.commit().map_err(err)?;
            for (k, e) in entries {
                self.cache.record(std::slice::from_ref(k), from_disk(to_disk(*e)))?;
            }
            Ok(())
        }

        fn purge(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
            let w = self.db.begin_write().map_err(err)?;
            {
                let mut t = w.open_table(REPLAY).map_err(err)?;
                t.retain(|_, e| from_disk(e) >= now).map_err(err)?;
            }
            w.commit().map_err(err)?;
            self.cache.purge(now)
        }
    }
}

/// Entries recorded in memory and committed to the underlying store in one unit by
/// [`Staged::commit`]. [`crate::away::come_back`] accepts every queued start against it and
/// commits once before it returns anything: nothing of a batch is delivered before its entries
/// are durable, so the crash guarantee of a per-session commit holds at the cost of one `fsync`
/// per return instead of one per session. A duplicate within the batch is seen by `seen`.
pub struct Staged<'a> {
    inner: &'a mut dyn ReplayStore,
    staged: Vec<(Vec<u8>, DateTime<Utc>)>,
    index: HashMap<Vec<u8>, DateTime<Utc>>,
}

impl core::fmt::Debug for Staged<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Staged({} entries)", self.staged.len())
    }
}

impl<'a> Staged<'a> {
    /// Stages over `inner`.
    pub fn new(inner: &'a mut dyn ReplayStore) -> Self {
        Self { inner, staged: Vec::new(), index: HashMap::new() }
    }

    /// Makes every staged entry durable in the underlying store, in one unit.
    ///
    /// # Errors
    /// The underlying store failed: the batch must not be used.
    pub fn commit(self) -> Result<(), StoreError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        self.inner.record_all(&self.staged)
    }
}

impl ReplayStore for Staged<'_> {
    fn seen(&self, key: &[u8], now: DateTime<Utc>) -> bool {
        self.index.get(key).is_some_and(|e| *e >= now) || self.inner.seen(key, now)
    }

    fn record(&mut self, keys: &[Vec<u8>], expires: DateTime<Utc>) -> Result<(), StoreError> {
        for k in keys {
            self.index.insert(k.clone(), expires);
            self.staged.push((k.clone(), expires));
        }
        Ok(())
    }

    fn purge(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.index.retain(|_, e| *e >= now);
        self.staged.retain(|(_, e)| *e >= now);
        self.inner.purge(now)
    }
}
