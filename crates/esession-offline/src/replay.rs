//! The replay store (XEP-0187 §3.4 step 2, §6.1): every d and N_B accepted since the options were
//! published is remembered until they expire, durably (feature `durable`).

use esession_negotiate::StoreError;
use std::collections::HashMap;

/// Remembers what was already accepted.
pub trait ReplayStore {
    /// Whether `key` was recorded (and has not expired).
    fn seen(&self, key: &[u8], now: u64) -> bool;
    /// Records keys, valid until `expires` (seconds since the epoch). Durable before it returns.
    ///
    /// # Errors
    /// The store could not record them: the caller must refuse the session.
    fn record(&mut self, keys: &[Vec<u8>], expires: u64) -> Result<(), StoreError>;
    /// Forgets expired entries (bounded growth).
    ///
    /// # Errors
    /// The store could not be updated.
    fn purge(&mut self, now: u64) -> Result<(), StoreError>;
}

/// In-memory replay store.
#[derive(Debug, Default)]
pub struct MemoryReplay {
    entries: HashMap<Vec<u8>, u64>,
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
    fn seen(&self, key: &[u8], now: u64) -> bool {
        self.entries.get(key).is_some_and(|e| *e >= now)
    }

    fn record(&mut self, keys: &[Vec<u8>], expires: u64) -> Result<(), StoreError> {
        for k in keys {
            self.entries.insert(k.clone(), expires);
        }
        Ok(())
    }

    fn purge(&mut self, now: u64) -> Result<(), StoreError> {
        self.entries.retain(|_, e| *e >= now);
        Ok(())
    }
}

/// The replay store in a redb database (the same file as the negotiation's stores).
#[cfg(feature = "durable")]
pub mod durable {
    use super::{MemoryReplay, ReplayStore};
    use esession_negotiate::StoreError;
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
    use std::sync::Arc;

    const REPLAY: TableDefinition<&[u8], u64> = TableDefinition::new("replay_v1");

    fn err(e: impl core::fmt::Display) -> StoreError {
        StoreError(e.to_string())
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
                cache.record(&[k.value().to_vec()], v.value())?;
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
        fn seen(&self, key: &[u8], now: u64) -> bool {
            self.cache.seen(key, now)
        }

        fn record(&mut self, keys: &[Vec<u8>], expires: u64) -> Result<(), StoreError> {
            let mut w = self.db.begin_write().map_err(err)?;
            w.set_durability(Durability::Immediate).map_err(err)?;
            {
                let mut t = w.open_table(REPLAY).map_err(err)?;
                for k in keys {
                    t.insert(k.as_slice(), expires).map_err(err)?;
                }
            }
            w.commit().map_err(err)?;
            self.cache.record(keys, expires)
        }

        fn purge(&mut self, now: u64) -> Result<(), StoreError> {
            let w = self.db.begin_write().map_err(err)?;
            {
                let mut t = w.open_table(REPLAY).map_err(err)?;
                t.retain(|_, e| e >= now).map_err(err)?;
            }
            w.commit().map_err(err)?;
            self.cache.purge(now)
        }
    }
}
