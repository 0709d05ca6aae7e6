//! Exactly-once delivery of offline content, across crashes: see [`Inbox`].

use chrono::{DateTime, Utc};
use esession_crypto::PublicKey;
use esession_crypto::SecretBytes;
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
/// The error for a record whose version octet is above every version this build writes: a
/// newer esession wrote it (the same account was used by a newer version). It is not damage:
/// such a record is never set aside ([`Inbox::set_aside`]), it is left as it is and the account
/// does not start until esession is upgraded.
fn newer(what: &str, version: u8) -> StoreError {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!(
            "{what} was written by a newer esession (record version {version}): upgrade esession to read \
             it (it is left as it is)"
        ),
    )
}

/// Whether the unsealed octets of a kept message ([`Kept::encode`]) are of a version newer than
/// this build reads (left untouched, never set aside as damaged).
#[cfg(feature = "durable")]
pub(crate) fn kept_is_newer(plain: &[u8]) -> bool {
    plain.first().is_some_and(|v| *v > RECORD_V2)
}

/// Whether the unsealed octets of a kept session ([`KeptSession::encode`]) are of a version
/// newer than this build reads.
#[cfg(feature = "durable")]
pub(crate) fn session_is_newer(plain: &[u8]) -> bool {
    plain.first().is_some_and(|v| *v > SESSION_V1)
}

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
        put_start(&mut out, &self.replay, self.untrusted.as_ref());
        out
    }

    /// A record [`Kept::encode`] wrote.
    ///
    /// # Errors
    /// The record is of another version, truncated or malformed.
    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(b);
        let version = r.take(1)?[0];
        if version > RECORD_V2 {
            return Err(newer("an offline message kept in the inbox", version));
        }
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
///
/// A start that opens a session of several stanzas (not object encryption) keeps the
/// session's receiving state too ([`KeptSession`], sealed like the messages) in the same write
/// as its message (1 above, [`Inbox::keep_in_session`]); each later stanza of the session is
/// kept with the session's new state (its counter moved on) and the digest of the stanza in
/// one write, before it is told. So after a restart [`Engine::set_inbox`](super::Engine::set_inbox)
/// opens every kept session again exactly where the last write left it: a stanza the server
/// hands over again that the session took already is recognised by its digest and ignored (it
/// was kept, and is told from the inbox until acknowledged); a stanza it had not taken is
/// decrypted as if no crash had happened. The state is forgotten
/// ([`Inbox::forget_session`]) when the session ends (the peer's terminate, a failure) or its
/// options expire.
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

    /// Keeps `m` (when given; not when a message with its id is kept already) and `session`
    /// (replacing its earlier state) and, when given, `taken` (the digest of the stanza that
    /// carried `m`, added to [`KeptSession::taken`]), all in one write, durable when it returns
    /// `Ok`. Returns whether `m` was kept (true without `m`).
    ///
    /// # Errors
    /// Nothing was kept: the message must not be delivered.
    fn keep_in_session(
        &mut self,
        m: Option<&Kept>,
        session: &KeptSession,
        taken: Option<&[u8; 16]>,
    ) -> Result<bool, StoreError>;

    /// Every kept session, each with all its digests ([`KeptSession::taken`]).
    ///
    /// # Errors
    /// The store cannot be read or a record cannot be opened.
    fn sessions(&self) -> Result<Vec<KeptSession>, StoreError>;

    /// Forgets the kept session `base` with its digests. Returns false when none is kept.
    ///
    /// # Errors
    /// The store could not be updated (the session is opened again after a restart, until
    /// its options expire).
    fn forget_session(&mut self, base: &[u8; 32]) -> Result<bool, StoreError>;

    /// Sets aside every kept record that cannot be read back (it does not unseal, or does not
    /// decode), so that one damaged record does not stop the account from starting. A record
    /// that unseals and is of a newer version than this build reads is not damaged: it is
    /// left as it is (and reading the inbox then fails, saying that a newer esession wrote it,
    /// until esession is upgraded). Each damaged record is
    /// moved out of the inbox (a durable inbox keeps its sealed octets apart, never read
    /// again) and returned, saying what was lost with it. [`Engine::set_inbox`](super::Engine::set_inbox) calls it
    /// first and tells each ([`super::Event::SetAside`]). An inbox in memory has none.
    ///
    /// # Errors
    /// The store cannot be read or written: nothing was set aside.
    fn set_aside(&mut self) -> Result<Vec<SetAside>, StoreError> {
        Ok(Vec::new())
    }
}

/// A kept record that could not be read back, set aside ([`Inbox::set_aside`]): what was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetAside {
    /// A delivered offline message not yet acknowledged: it is never delivered again.
    Message(MessageId),
    /// A kept offline session (its receiving keys): the stanzas of that session the server
    /// still holds or sends are not decrypted (each is told as [`super::Failure::NoSession`]);
    /// the messages it delivered before are not affected. Its sender is not known (it is in
    /// the record).
    Session {
        /// How many of its stanzas it had taken (kept, and perhaps acknowledged).
        taken: usize,
    },
}

impl fmt::Display for SetAside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetAside::Message(id) => {
                write!(f, "an offline message kept for the application cannot be read: message {id} is lost")
            }
            SetAside::Session { taken } => write!(
                f,
                "a kept offline session cannot be read (it had taken {taken} stanzas): its later stanzas are lost"
            ),
        }
    }
}

/// An offline session Alice accepted, kept while it is open ([`Inbox::keep_in_session`]) so
/// that a restart decrypts its later stanzas. `Debug` shows no secret.
pub struct KeptSession {
    /// Which session: the base of its messages' ids (a digest of its start's replay entries).
    pub base: [u8; 32],
    /// The place of its next message in the session ([`MessageId`]).
    pub next: u32,
    /// The sender, as the start came.
    pub peer: Jid,
    /// When it ends at the latest: the expiry of the options its start answered.
    pub until: DateTime<Utc>,
    /// The replay entries of its start (recorded again on recovery, as [`Kept::replay`]).
    pub replay: Vec<(Vec<u8>, DateTime<Utc>)>,
    /// Held for a trust decision: the key its start was signed with (as [`Kept::untrusted`]).
    pub untrusted: Option<PublicKey>,
    /// The digests of the stanzas the session took (read back by [`Inbox::sessions`]; written
    /// one by one by [`Inbox::keep_in_session`], never from this field).
    pub taken: Vec<[u8; 16]>,
    /// The session's receiving state: **secret** (keys), sealed by a durable inbox
    /// ([`esession_negotiate::Established::export_receiving`]).
    pub state: SecretBytes,
}

impl fmt::Debug for KeptSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeptSession")
            .field("peer", &self.peer)
            .field("next", &self.next)
            .field("until", &self.until)
            .field("taken", &self.taken.len())
            .field("held", &self.untrusted.is_some())
            .finish_non_exhaustive()
    }
}

/// Writes what a kept message and a kept session both carry of their start: its replay entries
/// and the key it was signed with when held for a trust decision. A key that cannot be written
/// as PEM (no key that was read fails) is written empty, which decoding refuses: the record
/// fails to open, it is never read as not held.
fn put_start(out: &mut Vec<u8>, replay: &[(Vec<u8>, DateTime<Utc>)], untrusted: Option<&PublicKey>) {
    out.extend_from_slice(&u32::try_from(replay.len()).unwrap_or(0).to_be_bytes());
    for (k, e) in replay.iter().take(u32::MAX as usize) {
        put(out, k);
        out.extend_from_slice(&esession_offline::replay::to_disk(*e).to_be_bytes());
    }
    match untrusted {
        Some(k) => {
            out.push(1);
            put(out, k.to_public_key_pem().unwrap_or_default().as_bytes());
        }
        None => out.push(0),
    }
}

/// Version of the record [`KeptSession::encode`] writes.
const SESSION_V1: u8 = 1;

impl KeptSession {
    /// The record's octets without [`KeptSession::taken`] (to be sealed before they are
    /// stored: they hold the session's keys).
    #[must_use]
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(1024 + self.state.len()));
        out.push(SESSION_V1);
        out.extend_from_slice(&self.base);
        out.extend_from_slice(&self.next.to_be_bytes());
        put(&mut out, self.peer.as_str().as_bytes());
        out.extend_from_slice(&esession_offline::replay::to_disk(self.until).to_be_bytes());
        put_start(&mut out, &self.replay, self.untrusted.as_ref());
        // Reserved up front for the state: the buffer is not reallocated with the keys in it.
        out.reserve(4 + self.state.len());
        put(&mut out, self.state.expose_secret());
        out
    }

    /// A record [`KeptSession::encode`] wrote (with no digests: [`Inbox::sessions`] adds them).
    ///
    /// # Errors
    /// The record is of another version, truncated or malformed.
    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let bad = |what: &str| {
            StoreError::new(StoreErrorKind::Corrupt, format!("a kept offline session holds a bad {what}"))
        };
        let mut r = Reader(b);
        match r.take(1)?[0] {
            SESSION_V1 => {}
            v if v > SESSION_V1 => return Err(newer("a kept offline session", v)),
            _ => return Err(bad("version")),
        }
        let mut base = [0u8; 32];
        base.copy_from_slice(r.take(32)?);
        let next = r.u32()?;
        let peer = Jid::new(r.text()?).map_err(|_| bad("JID"))?;
        let disk = |r: &mut Reader<'_>| -> Result<DateTime<Utc>, StoreError> {
            let mut eb = [0u8; 8];
            eb.copy_from_slice(r.take(8)?);
            Ok(esession_offline::replay::from_disk(u64::from_be_bytes(eb)))
        };
        let until = disk(&mut r)?;
        let n = r.u32()? as usize;
        let mut replay = Vec::new();
        for _ in 0..n {
            let k = r.field()?.to_vec();
            replay.push((k, disk(&mut r)?));
        }
        let untrusted = match r.take(1)? {
            [0] => None,
            [1] => Some(PublicKey::from_public_key_pem(r.text()?).map_err(|_| bad("held key"))?),
            _ => return Err(bad("held key")),
        };
        let state = SecretBytes::from_slice(r.field()?);
        if !r.0.is_empty() {
            return Err(bad("tail"));
        }
        Ok(Self { base, next, peer, until, replay, untrusted, taken: Vec::new(), state })
    }
}

/// The digest of a stanza of an offline session, by which a copy handed over again is known:
/// of the MAC of its `<c/>` (which covers its content and its counter). None for a stanza
/// without one (it cannot be a message of the session).
pub(crate) fn taken_digest(s: &Element) -> Option<[u8; 16]> {
    let c = s.get_child("c", esession_stanza::NS)?;
    let mac = c.get_child("mac", esession_stanza::NS)?;
    let text = mac.text();
    let d = sha256(&[b"esession taken stanza", text.trim().as_bytes()]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    Some(out)
}

/// An inbox in memory: nothing survives the process (tests, harnesses).
#[derive(Debug, Default)]
pub struct MemoryInbox {
    kept: Vec<Kept>,
    sessions: Vec<KeptSession>,
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

    fn keep_in_session(
        &mut self,
        m: Option<&Kept>,
        session: &KeptSession,
        taken: Option<&[u8; 16]>,
    ) -> Result<bool, StoreError> {
        let fresh = match m {
            Some(m) => self.keep(m)?,
            None => true,
        };
        let mut all = self
            .sessions
            .iter()
            .position(|s| s.base == session.base)
            .map(|i| std::mem::take(&mut self.sessions.remove(i).taken))
            .unwrap_or_default();
        all.extend(taken);
        self.sessions.push(KeptSession {
            base: session.base,
            next: session.next,
            peer: session.peer.clone(),
            until: session.until,
            replay: session.replay.clone(),
            untrusted: session.untrusted.clone(),
            taken: all,
            state: session.state.duplicate(),
        });
        Ok(fresh)
    }

    fn sessions(&self) -> Result<Vec<KeptSession>, StoreError> {
        Ok(self
            .sessions
            .iter()
            .map(|s| KeptSession {
                base: s.base,
                next: s.next,
                peer: s.peer.clone(),
                until: s.until,
                replay: s.replay.clone(),
                untrusted: s.untrusted.clone(),
                taken: s.taken.clone(),
                state: s.state.duplicate(),
            })
            .collect())
    }

    fn forget_session(&mut self, base: &[u8; 32]) -> Result<bool, StoreError> {
        let before = self.sessions.len();
        self.sessions.retain(|s| s.base != *base);
        Ok(self.sessions.len() != before)
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

    fn session_sample() -> KeptSession {
        let k = held_sample();
        KeptSession {
            base: [3; 32],
            next: 7,
            peer: k.peer,
            until: DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
            replay: k.replay,
            untrusted: k.untrusted,
            taken: Vec::new(),
            state: SecretBytes::new(vec![5; 300]),
        }
    }

    #[test]
    fn kept_sessions_round_trip_and_every_truncation_is_refused() {
        let s = session_sample();
        let b = s.encode();
        let d = KeptSession::decode(&b).unwrap();
        assert_eq!((d.base, d.next, &d.peer, d.until), (s.base, s.next, &s.peer, s.until));
        assert_eq!((&d.replay, &d.untrusted), (&s.replay, &s.untrusted));
        assert!(d.state.ct_eq(s.state.expose_secret()) && d.taken.is_empty());
        for n in 0..b.len() {
            assert!(KeptSession::decode(&b[..n]).is_err(), "truncated at {n}");
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(KeptSession::decode(&longer).is_err());
        // Debug shows no key.
        assert!(!format!("{s:?}").contains("5, 5"));
    }

    #[test]
    fn memory_inbox_keeps_sessions_with_their_digests_until_forgotten() {
        let mut i = MemoryInbox::default();
        let s = session_sample();
        assert!(i.keep_in_session(Some(&sample()), &s, Some(&[1; 16])).unwrap());
        assert!(!i.keep_in_session(Some(&sample()), &s, Some(&[2; 16])).unwrap());
        let all = i.sessions().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].taken, [[1; 16], [2; 16]]);
        assert!(i.forget_session(&s.base).unwrap());
        assert!(!i.forget_session(&s.base).unwrap());
        assert!(i.sessions().unwrap().is_empty());
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
