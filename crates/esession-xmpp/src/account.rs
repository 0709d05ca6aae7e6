//! An account's data directory: one redb file (`esession.redb`) holding the key associations,
//! retained secrets, offline replay entries, the sealed identity key, the sealed offline
//! secrets while away, and the sealed inbox of offline messages not yet acknowledged
//! ([`Account::inbox`]). Secret values are sealed with a key derived from a passphrase (argon2id,
//! salt in `salt`) or given directly; without either, a random key in `seal.key` (mode 0600).

use crate::Error;
use crate::engine::{EngineStores, Inbox, Kept, MessageId, os_rng};
use esession_crypto::seal::PassphraseParams;
use esession_crypto::{PrivateKey, Profile, PublicKey, SealingKey, SecretBytes};
use esession_negotiate::durable::{DurableStore, SealRng};
use esession_negotiate::{BareJid, TrustStore};
use esession_offline::publish::Secrets;
use esession_offline::replay::durable::DurableReplay;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ACCOUNT: TableDefinition<&str, &[u8]> = TableDefinition::new("account_v1");
const CHECK: &[u8] = b"esession account v1";
/// The inbox: arrival order -> sealed [`Kept`] record.
const INBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("inbox_v1");
/// The inbox's ids: message id -> arrival order.
const INBOX_IDS: TableDefinition<&[u8], u64> = TableDefinition::new("inbox_ids_v1");

/// How the account's secrets are sealed.
#[non_exhaustive]
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

    /// The inbox of offline messages delivered and not yet acknowledged, in this account's
    /// database, each record sealed (for [`crate::Engine::set_inbox`]).
    ///
    /// # Errors
    /// The database cannot be written.
    pub fn inbox(&self) -> Result<AccountInbox, Error> {
        let w = self.db.begin_write().map_err(store_err)?;
        {
            w.open_table(INBOX).map_err(store_err)?;
            w.open_table(INBOX_IDS).map_err(store_err)?;
        }
        w.commit().map_err(store_err)?;
        Ok(AccountInbox { db: self.db.clone(), key: self.key.duplicate() })
    }

    /// A fresh view of the key associations in the file (what the engine must see after
    /// [`Account::trust`] while it runs: its store caches them).
    pub(crate) fn trust_store(&self) -> Result<DurableStore, Error> {
        self.durable()
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

/// The inbox of an [`Account`]: one redb transaction per keep and per acknowledgement, each
/// durable when it returns (`Durability::Immediate`); records sealed with the account's key,
/// bound to their id.
pub struct AccountInbox {
    db: Arc<Database>,
    key: SealingKey,
}

impl core::fmt::Debug for AccountInbox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AccountInbox")
    }
}

fn serr(e: impl core::fmt::Display) -> esession_negotiate::StoreError {
    esession_negotiate::StoreError(e.to_string())
}

/// What a sealed inbox record is bound to: its purpose and its id.
fn inbox_aad(id: &MessageId) -> Vec<u8> {
    let mut aad = b"inbox ".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

impl Inbox for AccountInbox {
    fn keep(&mut self, m: &Kept) -> Result<bool, esession_negotiate::StoreError> {
        let sealed = self.key.seal(&mut os_rng(), &inbox_aad(&m.id), &m.encode()).map_err(serr)?;
        let mut w = self.db.begin_write().map_err(serr)?;
        w.set_durability(Durability::Immediate).map_err(serr)?;
        {
            let mut ids = w.open_table(INBOX_IDS).map_err(serr)?;
            if ids.get(m.id.as_bytes().as_slice()).map_err(serr)?.is_some() {
                return Ok(false);
            }
            let mut t = w.open_table(INBOX).map_err(serr)?;
            let next = t.last().map_err(serr)?.map_or(0, |(k, _)| k.value().saturating_add(1));
            t.insert(next, sealed.as_slice()).map_err(serr)?;
            ids.insert(m.id.as_bytes().as_slice(), next).map_err(serr)?;
        }
        w.commit().map_err(serr)?;
        Ok(true)
    }

    fn held(&self) -> Result<Vec<Kept>, esession_negotiate::StoreError> {
        let r = self.db.begin_read().map_err(serr)?;
        let t = r.open_table(INBOX).map_err(serr)?;
        let ids = r.open_table(INBOX_IDS).map_err(serr)?;
        let mut out = Vec::new();
        for row in ids.iter().map_err(serr)? {
            let (id, seq) = row.map_err(serr)?;
            let Ok(id) = <[u8; 16]>::try_from(id.value()) else {
                return Err(serr("an inbox id of the wrong length"));
            };
            let id = MessageId::from_bytes(id);
            let Some(sealed) = t.get(seq.value()).map_err(serr)? else {
                return Err(serr("an inbox id without its record"));
            };
            let plain = self.key.open(&inbox_aad(&id), sealed.value()).map_err(serr)?;
            let k = Kept::decode(plain.expose_secret())?;
            if k.id != id {
                return Err(serr("an inbox record under another id"));
            }
            out.push((seq.value(), k));
        }
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out.into_iter().map(|(_, k)| k).collect())
    }

    fn ack(&mut self, id: &MessageId) -> Result<bool, esession_negotiate::StoreError> {
        let mut w = self.db.begin_write().map_err(serr)?;
        w.set_durability(Durability::Immediate).map_err(serr)?;
        let found = {
            let mut ids = w.open_table(INBOX_IDS).map_err(serr)?;
            let seq = ids.remove(id.as_bytes().as_slice()).map_err(serr)?.map(|v| v.value());
            if let Some(seq) = seq {
                w.open_table(INBOX).map_err(serr)?.remove(seq).map_err(serr)?;
            }
            seq.is_some()
        };
        w.commit().map_err(serr)?;
        Ok(found)
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
