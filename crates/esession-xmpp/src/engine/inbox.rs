//! Exactly-once delivery of offline content, across crashes: see [`Inbox`].

use chrono::{DateTime, Utc};
use esession_crypto::PublicKey;
use esession_negotiate::{Jid, StoreError, StoreErrorKind};
use minidom::Element;
use std::fmt;
use zeroize::Zeroizing;

/// The stable identity of a delivered offline message: derived from the replay entries of the
/// start that opened its session (its d and N_B, which are never accepted twice) and the
/// message's place in that session, so the same message has the same id in every process that
/// delivers it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId([u8; 16]);

impl MessageId {
    /// The id from its octets (as [`MessageId::as_bytes`] gave them).
    #[must_use]
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// The id's octets.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The `n`th message of the session a start with these replay keys opened.
    pub(crate) fn derive(base: &[u8; 32], n: u32) -> Self {
        let d = sha256(&[b"esession inbox message", base, &n.to_be_bytes()]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        Self(id)
    }
}

/// SHA-256 of the parts (a local digest: no error path in practice; all zeros if it ever had
/// one, which only makes ids collide, never panics).
fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(d) = esession_crypto::HashAlg::Sha256.digest(parts)
        && d.len() == 32
    {
        out.copy_from_slice(&d);
    }
    out
}

/// The base of the ids of a session's messages: a digest of its start's replay keys.
pub(crate) fn id_base(replay: &[(Vec<u8>, DateTime<Utc>)]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = vec![b"esession inbox start"];
    let lens: Vec<[u8; 4]> =
        replay.iter().map(|(k, _)| u32::try_from(k.len()).unwrap_or(u32::MAX).to_be_bytes()).collect();
    for ((k, _), l) in replay.iter().zip(&lens) {
        parts.push(l);
        parts.push(k);
    }
    sha256(&parts)
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl core::str::FromStr for MessageId {
    type Err = StoreError;

    /// 32 hexadecimal digits, as [`fmt::Display`] writes them.
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::new(StoreErrorKind::Other, "a message id is 32 hexadecimal digits");
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        for (i, o) in id.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(id))
    }
}

/// A message kept until the application acknowledges it.
#[derive(Clone, PartialEq, Eq)]
pub struct Kept {
    /// Its id.
    pub id: MessageId,
    /// The sender, as the stanza came.
    pub peer: Jid,
    /// The session's thread.
    pub thread: String,
    /// The decrypted stanza.
    pub stanza: Element,
    /// The petname of the sender's key when it was delivered.
    pub petname: Option<String>,
    /// The children left in clear (see [`super::Event::Message`]).
    pub clear: Vec<String>,
    /// The replay entries of the start that carried it (empty for later stanzas of its
    /// session), each with its expiry: recorded again on recovery.
    pub replay: Vec<(Vec<u8>, DateTime<Utc>)>,
    /// Held for a trust decision: the key that signed the start of its session, which was not
    /// trusted for the sender when it arrived ([`super::Event::Untrusted`]). Such a message is
    /// told as an [`super::Event::Message`] only once that key is trusted for the sender.
    pub untrusted: Option<PublicKey>,
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kept")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("thread", &self.thread)
            .field("held", &self.untrusted.is_some())
            .finish_non_exhaustive()
    }
}

/// Version of the records [`Kept::encode`] wrote before messages could be held for a trust
/// decision (still read).
const RECORD_V1: u8 = 1;
/// Version of the record [`Kept::encode`] writes: version 1, then the held key (a flag, and
/// the key's SPKI PEM).
const RECORD_V2: u8 = 2;
/// The largest field a record may hold (a held stanza is bounded far below this by
/// [`super::Limits::stanza`]).
const FIELD_MAX: usize = 16 << 20;

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(field);
}

/// Reads length-prefixed fields of a record; every length is checked before it is used.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if n > self.0.len() {
            return Err(StoreError::new(StoreErrorKind::Corrupt, "an inbox record is truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn field(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        if n > FIELD_MAX {
            return Err(StoreError::new(StoreErrorKind::Corrupt, "an inbox record field is too large"));
        }
        self.take(n)
    }

    fn text(&mut self) -> Result<&'a str, StoreError> {
        core::str::from_utf8(self.field()?)
            .map_err(|_| StoreError::new(StoreErrorKind::Corrupt, "an inbox record is not UTF-8"))
    }
}

impl Kept {
    /// The record's octets (to be sealed before they are stored: they hold the content).
    #[must_use]
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(256));
        out.push(RECORD_V2);
        out.extend_from_slice(&self.id.0);
        put(&mut out, self.peer.as_str().as_bytes());
        put(&mut out, self.thread.as_bytes());
        let stanza = Zeroizing::new(String::from(&self.stanza));
        put(&mut out, stanza.as_bytes());
        match &self.petname {
            Some(p) => {
                out.push(1);
                put(&mut out, p.as_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&u32::try_from(self.clear.len()).unwrap_or(0).to_be_bytes());
        for c in self.clear.iter().take(u32::MAX as usize) {
            put(&mut out, c.as_bytes());
        }
        out.extend_from_slice(&u32::try_from(self.replay.len()).unwrap_or(0).to_be_bytes());
        for (k, e) in self.replay.iter().take(u32::MAX as usize) {
            put(&mut out, k);
            out.extend_from_slice(&esession_offline::replay::to_disk(*e).to_be_bytes());
        }
        // A key that cannot be written as PEM (no key that was read fails) is written empty,
        // which `decode` refuses: the record fails to open, it is never read as not held.
        match &self.untrusted {
            Some(k) => {
                out.push(1);
                put(&mut out, k.to_public_key_pem().unwrap_or_default().as_bytes());
            }
            None => out.push(0),
        }
        out
    }

    /// A record [`Kept::encode`] wrote.
    ///
    /// # Errors
    /// The record is of another version, truncated or malformed.
    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(b);
        let version = r.take(1)?[0];
        if version != RECORD_V1 && version != RECORD_V2 {
            return Err(StoreError::new(StoreErrorKind::Corrupt, "an inbox record of an unknown version"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(r.take(16)?);
        let bad = |what: &str| {
            StoreError::new(StoreErrorKind::Corrupt, format!("an inbox record holds a bad {what}"))
        };
        let peer = Jid::new(r.text()?).map_err(|_| bad("JID"))?;
        let thread = r.text()?.to_owned();
        let stanza = esession_forms::xml::parse(r.text()?).map_err(|_| bad("stanza"))?;
        let petname = match r.take(1)? {
            [0] => None,
            [1] => Some(r.text()?.to_owned()),
            _ => return Err(bad("petname")),
        };
        let n = r.u32()? as usize;
        let mut clear = Vec::new();
        for _ in 0..n {
            clear.push(r.text()?.to_owned());
        }
        let n = r.u32()? as usize;
        let mut replay = Vec::new();
        for _ in 0..n {
            let k = r.field()?.to_vec();
            let e = r.take(8)?;
            let mut eb = [0u8; 8];
            eb.copy_from_slice(e);
            replay.push((k, esession_offline::replay::from_disk(u64::from_be_bytes(eb))));
        }
        let untrusted = match version {
            RECORD_V1 => None,
            _ => match r.take(1)? {
                [0] => None,
                [1] => Some(PublicKey::from_public_key_pem(r.text()?).map_err(|_| bad("held key"))?),
                _ => return Err(bad("held key")),
            },
        };
        if !r.0.is_empty() {
            return Err(bad("tail"));
        }
        Ok(Self { id: MessageId(id), peer, thread, stanza, petname, clear, replay, untrusted })
    }

    /// The event that tells the application while the message is held for a trust decision
    /// (`key`: the key it is held for).
    pub(crate) fn held_event(&self, key: &PublicKey) -> super::Event {
        super::Event::Untrusted {
            peer: self.peer.clone(),
            thread: self.thread.clone(),
            key: key.clone(),
            fingerprint: crate::account::fingerprint(key).unwrap_or_default(),
            id: self.id,
        }
    }

    /// The event that tells the application the message itself (once trusted, if it was held).
    pub(crate) fn event(&self) -> super::Event {
        super::Event::Message {
            peer: self.peer.clone(),
            thread: self.thread.clone(),
            stanza: self.stanza.clone(),
            offline: true,
            petname: self.petname.clone(),
            clear: self.clear.clone(),
            id: Some(self.id),
        }
    }
}

/// Where delivered offline messages wait for their acknowledgement: exactly-once delivery of
/// offline content, across crashes.
///
/// What an offline return delivers (the content of the starts the server stored, and the later
/// stanzas of the sessions they open) cannot be asked for again: the starts' replay entries
/// refuse a second copy, and the server has handed them over. So every such message is kept in
/// an inbox (durably and sealed in the account's database, [`crate::Account::inbox`])
/// *before* the application is told, under a [`MessageId`] derived from the start itself, and
/// stays there until the application acknowledges it ([`Engine::ack`](super::Engine::ack)).
/// After a restart, [`Engine::unacknowledged`](super::Engine::unacknowledged) hands every kept
/// message over again, with the same ids.
///
/// The order of the durable writes for an accepted start is what makes a crash at any point
/// harmless:
///
/// 1. the message is kept, with the replay entries of its start ([`Inbox::keep`]); a message
///    already kept under that id is not kept nor told twice;
/// 2. the replay entries are recorded in the replay store;
/// 3. the application is told ([`super::Event::Message`] with its id), and acknowledges it
///    when it has done with it: only then is the message forgotten.
///
/// A crash between 1 and 2 is finished by [`Engine::set_inbox`](super::Engine::set_inbox), which
/// records the replay entries of every kept message before anything else; a crash before 1
/// leaves nothing behind, so a start the server hands over again is accepted as if new; after
/// 2, the start is refused as a replay, and its message is in the inbox until acknowledged.
pub trait Inbox {
    /// Keeps `m`, durably when it returns `Ok` (and sealed, for a durable inbox). Returns
    /// false, keeping nothing, when a message with its id is kept already.
    ///
    /// # Errors
    /// The message could not be kept: it must not be delivered.
    fn keep(&mut self, m: &Kept) -> Result<bool, StoreError>;

    /// Every kept message, in the order they were kept.
    ///
    /// # Errors
    /// The store cannot be read or a record cannot be opened.
    fn held(&self) -> Result<Vec<Kept>, StoreError>;

    /// Forgets the message `id` (the application has done with it). Returns false when no
    /// such message is kept (acknowledged already, or never delivered).
    ///
    /// # Errors
    /// The store could not be updated: the message will be delivered again.
    fn ack(&mut self, id: &MessageId) -> Result<bool, StoreError>;
}

/// An inbox in memory: nothing survives the process (tests, harnesses).
#[derive(Debug, Default)]
pub struct MemoryInbox {
    kept: Vec<Kept>,
}

impl Inbox for MemoryInbox {
    fn keep(&mut self, m: &Kept) -> Result<bool, StoreError> {
        if self.kept.iter().any(|k| k.id == m.id) {
            return Ok(false);
        }
        self.kept.push(m.clone());
        Ok(true)
    }

    fn held(&self) -> Result<Vec<Kept>, StoreError> {
        Ok(self.kept.clone())
    }

    fn ack(&mut self, id: &MessageId) -> Result<bool, StoreError> {
        let before = self.kept.len();
        self.kept.retain(|k| k.id != *id);
        Ok(self.kept.len() != before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Kept {
        let stanza = esession_forms::xml::parse(
            "<message xmlns='jabber:client' type='chat'><body>hi &amp; bye</body></message>",
        )
        .unwrap();
        Kept {
            id: MessageId::derive(&[7; 32], 3),
            peer: Jid::new("bob@example.com/laptop").unwrap(),
            thread: "esession-1".into(),
            stanza,
            petname: Some("Bob".into()),
            clear: vec!["amp".into()],
            replay: vec![
                (vec![1, 2, 3], DateTime::from_timestamp(99, 0).unwrap()),
                (vec![4], DateTime::<Utc>::MAX_UTC),
            ],
            untrusted: None,
        }
    }

    fn held_sample() -> Kept {
        let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pem/rsa.pem");
        let key =
            esession_crypto::PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(pem).unwrap()).unwrap();
        Kept { untrusted: Some(key.public_key()), ..sample() }
    }

    #[test]
    fn records_round_trip() {
        for k in [sample(), held_sample()] {
            assert_eq!(Kept::decode(&k.encode()).unwrap(), k);
        }
    }

    #[test]
    fn version_1_records_are_read_as_not_held() {
        // A version 1 record is a version 2 record without the held-key flag.
        let k = sample();
        let mut b = k.encode().to_vec();
        assert_eq!(b.pop(), Some(0));
        b[0] = RECORD_V1;
        assert_eq!(Kept::decode(&b).unwrap(), k);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        for k in [sample(), held_sample()] {
            let b = k.encode();
            for n in 0..b.len() {
                assert!(Kept::decode(&b[..n]).is_err(), "truncated at {n}");
            }
            let mut longer = b.to_vec();
            longer.push(0);
            assert!(Kept::decode(&longer).is_err());
        }
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let t = DateTime::from_timestamp(5, 0).unwrap();
        let a = id_base(&[(vec![1], t), (vec![2], t)]);
        let b = id_base(&[(vec![1, 2], t)]);
        assert_ne!(a, b);
        assert_eq!(MessageId::derive(&a, 0), MessageId::derive(&a, 0));
        assert_ne!(MessageId::derive(&a, 0), MessageId::derive(&a, 1));
        let id = MessageId::derive(&a, 9);
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
        assert!("zz".parse::<MessageId>().is_err());
        assert!("é".repeat(16).parse::<MessageId>().is_err());
    }

    #[test]
    fn memory_inbox_keeps_once_until_acknowledged() {
        let mut i = MemoryInbox::default();
        let k = sample();
        assert!(i.keep(&k).unwrap());
        assert!(!i.keep(&k).unwrap());
        assert_eq!(i.held().unwrap().len(), 1);
        assert!(i.ack(&k.id).unwrap());
        assert!(!i.ack(&k.id).unwrap());
        assert!(i.held().unwrap().is_empty());
    }
}
