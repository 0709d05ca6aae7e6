//! An account's data directory: one redb file (`esession.redb`) holding the key associations,
//! retained secrets, offline replay entries, the sealed identity key and the sealed offline
//! secrets while away. Secret values are sealed with a key derived from a passphrase (argon2id,
//! salt in `salt`) or given directly; without either, a random key in `seal.key` (mode 0600).

use crate::Error;
use crate::engine::{EngineStores, os_rng};
use esession_crypto::seal::PassphraseParams;
use esession_crypto::{PrivateKey, Profile, PublicKey, SealingKey, SecretBytes};
use esession_negotiate::durable::{DurableStore, SealRng};
use esession_negotiate::{BareJid, TrustStore};
use esession_offline::publish::Secrets;
use esession_offline::replay::durable::DurableReplay;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ACCOUNT: TableDefinition<&str, &[u8]> = TableDefinition::new("account_v1");
const CHECK: &[u8] = b"esession account v1";

/// How the account's secrets are sealed.
pub enum Sealing {
    /// A key derived from this passphrase (argon2id).
    Passphrase(zeroize::Zeroizing<String>),
    /// This 32-octet key.
    Key(SecretBytes),
    /// A random key kept in `seal.key` in the data directory (owner-only).
    KeyFile,
}

impl core::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Sealing::Passphrase(_) => "Sealing::Passphrase(<redacted>)",
            Sealing::Key(_) => "Sealing::Key(<redacted>)",
            Sealing::KeyFile => "Sealing::KeyFile",
        })
    }
}

/// An opened data directory.
pub struct Account {
    dir: PathBuf,
    db: Arc<Database>,
    key: SealingKey,
}

impl core::fmt::Debug for Account {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Account").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn store_err(e: impl core::fmt::Display) -> Error {
    Error::Store(esession_negotiate::StoreError(e.to_string()))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

fn seal_rng() -> SealRng {
    Box::new(os_rng())
}

/// Writes a new file readable by its owner only, synced before returning.
fn write_private(path: &Path, data: &[u8]) -> Result<(), Error> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(io_err(path))?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(io_err(path))
}

fn read_or_create(path: &Path, len: usize) -> Result<Vec<u8>, Error> {
    match std::fs::read(path) {
        Ok(k) => Ok(k),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut k = vec![0u8; len];
            rand_core::Rng::fill_bytes(&mut os_rng(), &mut k);
            write_private(path, &k)?;
            Ok(k)
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

impl Account {
    /// Opens (or creates) the data directory `dir`.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] when the sealing key does not open this account's records;
    /// [`Error::Store`] when the directory or the database cannot be used.
    pub fn open(dir: &Path, sealing: Sealing) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let key = match sealing {
            Sealing::Passphrase(p) => {
                let salt = read_or_create(&dir.join("salt"), 16)?;
                SealingKey::from_passphrase(p.as_bytes(), &salt, PassphraseParams::default())
                    .map_err(store_err)?
            }
            Sealing::Key(k) => SealingKey::from_bytes(k).map_err(store_err)?,
            Sealing::KeyFile => {
                let k = zeroize::Zeroizing::new(read_or_create(&dir.join("seal.key"), 32)?);
                SealingKey::from_bytes(SecretBytes::new(k.to_vec())).map_err(store_err)?
            }
        };
        let db = Database::create(dir.join("esession.redb")).map_err(store_err)?;
        let me = Self { dir: dir.to_owned(), db: Arc::new(db), key };
        // The check record: sealed on creation, must open afterwards (a wrong passphrase is
        // told before anything is written).
        match me.get("check")? {
            Some(sealed) => {
                me.key.open(b"check", &sealed).map_err(|_| Error::WrongPassphrase)?;
            }
            None => {
                let sealed = me.key.seal(&mut os_rng(), b"check", CHECK).map_err(store_err)?;
                me.put("check", Some(&sealed))?;
            }
        }
        Ok(me)
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let r = self.db.begin_read().map_err(store_err)?;
        let t = match r.open_table(ACCOUNT) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        Ok(t.get(name).map_err(store_err)?.map(|v| v.value().to_vec()))
    }

    fn put(&self, name: &str, value: Option<&[u8]>) -> Result<(), Error> {
        let mut w = self.db.begin_write().map_err(store_err)?;
        w.set_durability(Durability::Immediate).map_err(store_err)?;
        {
            let mut t = w.open_table(ACCOUNT).map_err(store_err)?;
            match value {
                Some(v) => {
                    t.insert(name, v).map_err(store_err)?;
                }
                None => {
                    t.remove(name).map_err(store_err)?;
                }
            }
        }
        w.commit().map_err(store_err)
    }

    /// The identity key, if one was generated or imported.
    ///
    /// # Errors
    /// The stored key cannot be unsealed or parsed.
    pub fn identity(&self) -> Result<Option<PrivateKey>, Error> {
        let Some(sealed) = self.get("identity")? else { return Ok(None) };
        let pem = self.key.open(b"identity", &sealed).map_err(|_| Error::WrongPassphrase)?;
        let text = core::str::from_utf8(pem.expose_secret()).map_err(store_err)?;
        PrivateKey::from_pkcs8_pem(text).map(Some).map_err(store_err)
    }

    /// Stores `key` as the identity key. Refuses to replace an existing one unless `replace`.
    ///
    /// # Errors
    /// [`Error::Config`] when a key exists and `replace` is false; store errors.
    pub fn set_identity(&self, key: &PrivateKey, replace: bool) -> Result<(), Error> {
        if !replace && self.get("identity")?.is_some() {
            return Err(Error::Config("an identity key exists already (use --force to replace it)".into()));
        }
        let pem = key.to_pkcs8_pem().map_err(store_err)?;
        let sealed = self.key.seal(&mut os_rng(), b"identity", pem.as_bytes()).map_err(store_err)?;
        self.put("identity", Some(&sealed))
    }

    /// The stores of this account (one database file).
    ///
    /// # Errors
    /// A record cannot be read or unsealed.
    pub fn stores(&self) -> Result<EngineStores, Error> {
        let trust = self.durable()?;
        let retained = self.durable()?;
        let replay = DurableReplay::new(self.db.clone()).map_err(store_err)?;
        Ok(EngineStores { trust: Box::new(trust), retained: Box::new(retained), replay: Box::new(replay) })
    }

    fn durable(&self) -> Result<DurableStore, Error> {
        DurableStore::with_database(self.db.clone(), self.key.duplicate(), seal_rng())
            .map_err(|_| Error::WrongPassphrase)
    }

    /// Trusts `key` for `jid` (the user verified it).
    ///
    /// # Errors
    /// Store errors.
    pub fn trust(&self, jid: &BareJid, key: PublicKey) -> Result<(), Error> {
        let mut t = self.durable()?;
        t.trust(jid, key).map_err(Error::Store)
    }

    /// Removes the association of `key` with `jid`.
    ///
    /// # Errors
    /// The key is not associated with `jid`; store errors.
    pub fn untrust(&self, jid: &BareJid, key: &PublicKey) -> Result<(), Error> {
        let mut t = self.durable()?;
        t.untrust(jid, key).map_err(Error::Store)
    }

    /// Gives a known key a petname.
    ///
    /// # Errors
    /// The key is unknown; store errors.
    pub fn set_petname(&self, key: &PublicKey, petname: &str) -> Result<(), Error> {
        let mut t = self.durable()?;
        t.set_petname(key, petname).map_err(store_err)
    }

    /// Every key association (key, JIDs, petname, verified).
    ///
    /// # Errors
    /// Store errors.
    pub fn associations(&self) -> Result<Vec<esession_negotiate::KeyRecord>, Error> {
        let t = self.durable()?;
        Ok(t.records().into_iter().cloned().collect())
    }

    /// Keeps the offline secrets of one published option set until the return.
    ///
    /// # Errors
    /// Store errors.
    pub fn keep_offline(&self, which: &str, secrets: &Secrets) -> Result<(), Error> {
        let sealed = secrets.seal(&self.key, &mut os_rng()).map_err(store_err)?;
        self.put(&format!("offline-{which}"), Some(&sealed))
    }

    /// The kept offline secrets of one option set.
    ///
    /// # Errors
    /// The record cannot be unsealed.
    pub fn offline(&self, which: &str) -> Result<Option<Secrets>, Error> {
        match self.get(&format!("offline-{which}"))? {
            Some(sealed) => Secrets::open(&self.key, &sealed).map(Some).map_err(|_| Error::WrongPassphrase),
            None => Ok(None),
        }
    }

    /// Forgets the offline secrets of one option set (after the return).
    ///
    /// # Errors
    /// Store errors.
    pub fn forget_offline(&self, which: &str) -> Result<(), Error> {
        self.put(&format!("offline-{which}"), None)
    }
}

/// The fingerprint a person compares: SHA-256 of the key's XEP-0116 `pubKey` octets, hex in
/// groups of eight.
///
/// # Errors
/// The key cannot be encoded.
pub fn fingerprint(key: &PublicKey) -> Result<String, Error> {
    let octets = esession_forms::keyvalue::pubkey_octets(Profile::Xep, key).map_err(store_err)?;
    let d = esession_crypto::HashAlg::Sha256.digest(&[&octets]).map_err(store_err)?;
    let hex: String = d.iter().map(|b| format!("{b:02X}")).collect();
    Ok(hex
        .as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" "))
}
