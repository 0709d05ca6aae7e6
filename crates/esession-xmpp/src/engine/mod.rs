//! The sans-IO core of a client: the only router. Every stanza from the network goes through
//! [`Engine::handle`]; every decision about it (which negotiation or session it belongs to,
//! whether it is answered, what the application is told) is made here, deterministically: time
//! is an input (`now`), randomness is injected ([`Engine::with_rng`]), pending work expires by
//! `now` ([`Engine::tick`]). [`crate::Client`] is the I/O shell around it over tokio-xmpp; the
//! CLI's `party` is a line parser on it; [`crate::relay`] relays engines in memory for tests
//! and the demo.
//!
//! What the engine does with a stanza, in order:
//!
//! 1. No valid `from`: dropped. Beyond [`Limits::stanza`] (depth, elements, size): dropped
//!    unread ([`Failure::TooLarge`]).
//! 2. While away (the harness's offline mode, [`Engine::go_offline`] with `hold`): queued,
//!    within [`Limits::queue`] stanzas and [`Limits::queue_octets`] (beyond: dropped,
//!    [`Failure::QueueFull`]).
//! 3. `presence`: contacts' resources (within [`Limits::strangers`] and
//!    [`Limits::resources`]), subscription requests; a contact coming online ends Bob's offline
//!    session with it (XEP-0187 §5), a resource going away has its sessions terminated
//!    explicitly (XEP-0155 §8.4: we assume its client holds them no more).
//! 4. `iq`: encrypted ones go to their session; disco#info and ping requests are answered in
//!    clear; other requests and every result go to the application ([`Event::Iq`],
//!    [`Event::IqResult`]).
//! 5. `message` of type `error`: never answered (RFC 6120 §8.3.1); it ends the negotiation or
//!    session whose thread it carries and whose peer sent it (a bounce), nothing else.
//! 6. A negotiation form: a request starts a new responder (replacing any negotiation with
//!    that contact, rate-limited, within [`Limits::request_octets`] and
//!    [`Limits::pending_octets`]; a request the server stored is not answered), anything else
//!    goes to the negotiation of its contact and thread; an XEP-0187 offline start is checked
//!    against the offline options we hold.
//! 7. `<c/>`: the session of its contact and thread decrypts it.
//! 8. Anything else came in clear: [`Event::Clear`].
//!
//! **Crossing requests** (the specs are silent; our resolution). When both contacts start a
//! negotiation at the same moment (typically right after a reconnection), each receives the
//! other's request while its own has had no answer yet. Only one goes on, chosen the same way
//! on both sides: a 4-message request wins over a 3-message one, whatever the JIDs (a crossing
//! request, perhaps forged by a server, never takes the SAS away); between requests of one
//! mode, the request of the entity whose JID sorts lower wins. The bare JIDs are compared as
//! strings (normalized, byte order); ours is the account [`Engine::set_account`] was given.
//! Two resources of one account compare their full JIDs; without our account, the two thread
//! ids decide. The side whose request loses drops it (its state wiped, no event: the session
//! that answers the contact's request is the one the application is told of, once, with its
//! SAS) and answers the contact's request as any other; whatever comes later on the dropped
//! thread (the contact's decline, a late answer, an error) is ignored quietly. Content the
//! dropped request was to carry ([`Engine::start_with`]) goes in the session of the contact's
//! request, with that contact and on that thread only; if that negotiation ends without a
//! session (it fails, expires, is replaced, or the connection is reset), the content is given
//! back to the application ([`Failure::NotSent`]). The side whose request wins keeps it and
//! declines the contact's on its thread as XEP-0155 §4.3 has it (no event: the contact
//! dropped that request already). This applies even while the engine does not accept requests
//! ([`Engine::set_accepting`]): it asked for a session with that contact, so the contact's
//! request that won is answered. Offline starts (XEP-0187) are not requests: unaffected.

mod connection;
mod event;
mod inbox;
mod limits;
mod offline;
mod pep_flow;
mod presence;
mod route;
mod sessions;
#[cfg(test)]
mod traced;

pub use event::{Ended, Event, Failure, Step, shown};
pub use inbox::{Inbox, Kept, KeptSession, MemoryInbox, MessageId, SetAside};
#[cfg(feature = "durable")]
pub(crate) use inbox::{kept_is_newer, session_is_newer};
pub use limits::Limits;
pub use offline::Away;
pub use pep_flow::{PepStep, PublishFlow, WithdrawFlow, condition};
pub use presence::{DISCO_INFO, PING, ROSTER_MAX, ROSTER_NS, iq_error};
pub use route::{Route, announces_esessions, resource_gone};

use crate::Error;
use crate::KeyPool;
use chrono::{DateTime, Utc};
use esession_forms::dataform::FormType;
use esession_forms::esession::Wrapper;
use esession_forms::xml;
use esession_negotiate::{
    BareJid, Config, Established, Initiator, Jid, Mode, Output, Phase, PooledEntropy, Received, Responder,
    RetainedStore, Stores, TrustStore,
};
use esession_offline::away::Outbox;
use esession_offline::replay::ReplayStore;
use esession_stanza::EncryptOptions;
use limits::Bucket;
use minidom::Element;
use rand_core::CryptoRng;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The generator the engine draws from.
pub type Rng = Box<dyn CryptoRng + Send>;

/// The operating system's CSPRNG.
pub(crate) fn os_rng() -> Rng {
    Box::new(getrandom::rand_core::UnwrapErr(getrandom::SysRng))
}

const CLIENT_NS: &str = "jabber:client";
/// Delayed delivery (XEP-0203): what a server stamps on a stanza it stored.
const DELAY_NS: &str = "urn:xmpp:delay";
/// Legacy delayed delivery (XEP-0091), still stamped by some servers.
const LEGACY_DELAY_NS: &str = "jabber:x:delay";

/// The stores a client keeps: key associations and retained secrets (XEP-0116), the offline
/// replay store (XEP-0187).
pub struct EngineStores {
    /// Key associations.
    pub trust: Box<dyn TrustStore + Send>,
    /// Retained secrets.
    pub retained: Box<dyn RetainedStore + Send>,
    /// Offline replay entries.
    pub replay: Box<dyn ReplayStore + Send>,
}

impl fmt::Debug for EngineStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EngineStores")
    }
}

impl EngineStores {
    /// Stores in memory (nothing survives the process).
    #[must_use]
    pub fn in_memory() -> Self {
        Self {
            trust: Box::new(esession_negotiate::MemoryTrust::default()),
            retained: Box::new(esession_negotiate::MemoryRetained::default()),
            replay: Box::new(esession_offline::replay::MemoryReplay::default()),
        }
    }
}

enum Machine {
    Alice(Initiator),
    Bob(Responder),
}

impl Machine {
    fn is_done(&self) -> bool {
        match self {
            Machine::Alice(a) => a.is_done(),
            Machine::Bob(b) => b.is_done(),
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        match self {
            Machine::Alice(a) => a.poll_output(),
            Machine::Bob(b) => b.poll_output(),
        }
    }
}

/// What trust on first use says of the key a peer proved in a session ([`Engine::first_use`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirstUse {
    /// No other key is associated with this contact and this one is not verified yet: its
    /// first key, to pin now (pinned on first use, not verified: [`TrustStore::pin`]).
    First(esession_crypto::PublicKey),
    /// A key verified for this contact by the user, or pinned at its first use.
    Known,
    /// Another key is associated with this contact and this one is not verified: someone
    /// else, or a new key of the contact that the user must verify out of band. Do not trust
    /// the session (terminate it).
    Changed,
    /// The session proved no key (`none` identities): nothing to pin.
    NoKey,
}

/// The engine's view of its trust store: the store's, except that with trust on first use a
/// contact with no key associated yet may identify with any key ([`Engine::set_trust_on_first_use`]).
/// Every check of a peer's key (online negotiations, offline starts) asks it
/// [`TrustStore::trusts`].
struct FirstUseTrust {
    inner: Box<dyn TrustStore + Send>,
    on: Arc<AtomicBool>,
    /// The keys it refused lately ([`Engine::refused_key`]).
    refused: Refused,
}

/// The last key each contact identified with that the trust store refused (at most
/// [`REFUSED_MAX`] contacts), for the application to show its fingerprint.
type Refused = Arc<std::sync::Mutex<std::collections::VecDeque<(BareJid, esession_crypto::PublicKey)>>>;

/// How many contacts' refused keys [`Engine::refused_key`] remembers.
const REFUSED_MAX: usize = 16;

impl TrustStore for FirstUseTrust {
    fn for_jid(&self, jid: &BareJid) -> Vec<&esession_negotiate::KeyRecord> {
        self.inner.for_jid(jid)
    }

    fn record(&self, key: &esession_crypto::PublicKey) -> Option<&esession_negotiate::KeyRecord> {
        self.inner.record(key)
    }

    fn records(&self) -> Vec<&esession_negotiate::KeyRecord> {
        self.inner.records()
    }

    fn trusts(&self, jid: &BareJid, key: &esession_crypto::PublicKey) -> bool {
        self.inner.trusts(jid, key) || (self.on.load(Ordering::Relaxed) && self.inner.for_jid(jid).is_empty())
    }

    /// Remembered only once the key's signature verified: a peer cannot make the user see,
    /// and be offered to trust, a key it does not hold.
    fn refused(&self, jid: &BareJid, key: &esession_crypto::PublicKey) {
        self.inner.refused(jid, key);
        if let Ok(mut r) = self.refused.lock() {
            r.retain(|(j, _)| j != jid);
            if r.len() >= REFUSED_MAX {
                r.pop_front();
            }
            r.push_back((jid.clone(), key.clone()));
        }
    }

    fn associate(
        &mut self,
        jid: &BareJid,
        key: esession_crypto::PublicKey,
    ) -> Result<(), esession_negotiate::StoreError> {
        self.inner.associate(jid, key)
    }

    fn sas_confirmed(&self, jid: &BareJid) -> bool {
        self.inner.sas_confirmed(jid)
    }

    fn confirm_sas(&mut self, jid: &BareJid) -> Result<(), esession_negotiate::StoreError> {
        self.inner.confirm_sas(jid)
    }

    fn pin(
        &mut self,
        jid: &BareJid,
        key: esession_crypto::PublicKey,
    ) -> Result<(), esession_negotiate::StoreError> {
        self.inner.pin(jid, key)
    }

    fn verify(
        &mut self,
        jid: &BareJid,
        key: esession_crypto::PublicKey,
    ) -> Result<(), esession_negotiate::StoreError> {
        self.inner.verify(jid, key)
    }
}

/// A negotiation in progress.
struct Negotiation {
    peer: Jid,
    thread: String,
    machine: Machine,
    sas: Option<esession_crypto::Sas>,
    started: DateTime<Utc>,
    /// What it holds against [`Limits::pending_octets`].
    cost: usize,
    /// Ours (Alice): whether the peer answered our request (anything on its thread). Until it
    /// does, a request of the same contact is a crossing request ([`Engine::on_request`]).
    answered: bool,
    /// Ours (Alice): the content our 3-message accept is to carry ([`Engine::start_with`]),
    /// kept to go in the session of a crossing request instead if ours gives way to it.
    content: Option<(Element, bool)>,
    /// The mode of the request: the one we asked for (Alice), or the one the contact's request
    /// asked for (Bob). The crossing rule reads it ([`Engine::ours_wins`]).
    mode: Mode,
}

/// Content a request of ours was to carry, parked when that request was dropped for the
/// crossing request of `peer` on `thread`: sent in the session of that contact and thread
/// once established ([`Engine::send_carried`]), given back to the application otherwise
/// ([`Engine::unsent`]).
struct Carried {
    /// The contact whose crossing request won (the full JID it came from): only a session
    /// with this contact (any resource) carries the content.
    peer: Jid,
    /// The thread of that contact's request.
    thread: String,
    content: Element,
    /// The session is terminated after the content (object encryption).
    terminate: bool,
}

/// How a contact's request stands against a request of ours ([`Engine::crossing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossing {
    /// No request of ours to that contact waits for an answer.
    No,
    /// Ours goes on; the contact's was declined.
    OursKept,
    /// Ours was dropped for the contact's, which is to be answered whatever
    /// [`Engine::set_accepting`] says: we asked that contact for a session.
    OursDropped,
}

/// What a negotiation holds besides the request it keeps: its DH values, keys, the machine.
const NEGOTIATION_COST: usize = 8 << 10;

/// An established session (online, or an offline one Alice accepted: receive only).
struct Open {
    est: Box<Established>,
    offline: bool,
    used: DateTime<Utc>,
    /// When `tick` first saw the session waiting for the acknowledgement of our terminate.
    terminating_since: Option<DateTime<Utc>>,
    /// An offline session Alice accepted: its messages' ids, its expiry, what is kept of it.
    accepted: Option<Box<offline::Accepted>>,
}

/// Every session of one account; see the [module documentation](self).
pub struct Engine {
    cfg: Arc<Config>,
    /// The trust store is wrapped in a [`FirstUseTrust`] sharing [`Engine::first_use`].
    stores: EngineStores,
    /// Trust on first use ([`Engine::set_trust_on_first_use`]).
    first_use: Arc<AtomicBool>,
    /// The keys the trust store refused lately, shared with its [`FirstUseTrust`].
    refused: Refused,
    limits: Limits,
    rng: Rng,
    pool: Option<KeyPool>,
    negotiations: Vec<Negotiation>,
    sessions: sessions::Sessions,
    outbox: Outbox,
    offline: offline::State,
    presence: presence::Roster,
    requests: HashMap<BareJid, Bucket>,
    /// The failure budget of each contact whose stanzas failed lately
    /// ([`Limits::failures_per_minute`]).
    /// (Keyed by the bare JID's text, so that a stanza of a contact cut off is dropped before
    /// its `from` is even parsed.)
    failures: HashMap<String, Strikes>,
    /// Threads of sessions this engine ended without the peer knowing (a connection reset, the
    /// session cap): the peer's stale stanzas and errors on them are not its fault, and are
    /// not charged to its failure budget, up to [`FORGIVEN_PER_THREAD`] each. Oldest first,
    /// at most [`FORGIVEN_THREADS`].
    forgiven: HashMap<String, (BareJid, u32)>,
    forgiven_order: std::collections::VecDeque<String>,
    /// Our own account (its presence is not a contact's).
    me: Option<BareJid>,
    /// Our own full JID as [`Engine::set_account`] was given it (the crossing rule between
    /// two resources of one account).
    account: Option<Jid>,
    /// Threads of our own requests dropped for a contact's crossing request, with the
    /// contact, newest last (at most [`YIELDED_THREADS`]): what comes on them is ignored.
    yielded: std::collections::VecDeque<(BareJid, String)>,
    /// Content requests of ours dropped for crossing requests were to carry, each with the
    /// contact and thread of the request that won, oldest first (at most [`YIELDED_THREADS`]).
    carried: std::collections::VecDeque<Carried>,
    /// Where offline messages wait for the application's acknowledgement ([`Inbox`]).
    inbox: Option<Box<dyn Inbox + Send>>,
    /// When [`Engine::tick`] last ran.
    ticked: Option<DateTime<Utc>>,
    /// Whether negotiation requests are accepted ([`Engine::set_accepting`]).
    accepting: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("negotiations", &self.negotiations.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// Threads of sessions ended on our side alone that are remembered ([`Engine::forgive`]).
const FORGIVEN_THREADS: usize = 4096;
/// Stale stanzas forgiven per such thread.
const FORGIVEN_PER_THREAD: u32 = 256;
/// Threads of our requests dropped for crossing requests that are remembered.
const YIELDED_THREADS: usize = 64;

/// A contact's budget of failed stanzas, and whether its cut-off was told.
#[derive(Debug)]
struct Strikes {
    budget: Bucket,
    told: bool,
}

/// A fresh thread id.
pub(crate) fn new_thread(rng: &mut Rng) -> String {
    // X155-4.1-03: a unique thread per negotiation: 64 random bits.
    let mut b = [0u8; 8];
    rand_core::Rng::fill_bytes(rng, &mut b);
    let tag: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("esession-{tag}")
}

/// Whether `jid` is of the account `bare` (compared in place: the lookups that run once per
/// stanza over every session must not allocate a bare JID per session).
fn of(jid: &Jid, bare: &BareJid) -> bool {
    jid.node() == bare.node() && jid.domain() == bare.domain()
}

/// Sets an attribute (names are fixed ASCII names: they always parse).
pub(crate) fn set_attr(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
    }
}

fn thread_of(s: &Element) -> Option<String> {
    s.get_child("thread", CLIENT_NS).map(Element::text)
}

/// What a negotiation form is, from its data form alone.
enum FormKindIn {
    /// Alice's request (a `form` with the ESession FORM_TYPE and DH values), in the mode its
    /// DH values say: commitments (`dhhashes`) are 4-message, keys (`dhkeys`) 3-message.
    Request(Mode),
    /// A terminate or acknowledgement form in clear (SSN termination, A14).
    Terminate,
    /// An XEP-0187 offline start (`<init/>`, an answer with an identity and no `accept`).
    OfflineStart,
    /// Any other negotiation message (response, accept, Bob's identity, SSN answer).
    Other,
}

/// Classifies a negotiation message by a shallow look at its form (the `type` of `<x/>` and
/// the `var`s of its fields), so that a form that does not parse still reaches the party that
/// answers it (a broken request is refused by a responder, not dropped as unknown).
fn classify(stanza: &Element) -> Option<FormKindIn> {
    let wrapper = Wrapper::find(stanza)?;
    let w = if wrapper.name() == "init" { Wrapper::Init } else { Wrapper::Feature };
    let x = wrapper.children().find(|c| c.is("x", esession_forms::dataform::NS));
    let kind = x.and_then(|x| x.attr("type")).and_then(|t| t.parse::<FormType>().ok());
    let has = |var: &str| {
        x.is_some_and(|x| x.children().any(|f| f.name() == "field" && f.attr("var") == Some(var)))
    };
    Some(match (w, kind) {
        (Wrapper::Feature, Some(FormType::Form)) if has("dhhashes") => FormKindIn::Request(Mode::Four),
        (Wrapper::Feature, Some(FormType::Form)) if has("dhkeys") => FormKindIn::Request(Mode::Three),
        (Wrapper::Feature, _) if has("terminate") && !has("dhkeys") => FormKindIn::Terminate,
        (Wrapper::Init, _) if !has("accept") && has("identity") && has("counter") => FormKindIn::OfflineStart,
        _ => FormKindIn::Other,
    })
}

impl Engine {
    /// An engine with `cfg` (offers, identity, profile) over `stores`, drawing randomness from
    /// the operating system.
    #[must_use]
    pub fn new(cfg: Config, stores: EngineStores) -> Self {
        Self::with_rng(cfg, stores, os_rng())
    }

    /// An engine drawing its randomness from `rng` (a CSPRNG; tests fix it to replay runs).
    #[must_use]
    pub fn with_rng(cfg: Config, stores: EngineStores, rng: Rng) -> Self {
        let first_use = Arc::new(AtomicBool::new(false));
        let refused = Refused::default();
        let trust =
            Box::new(FirstUseTrust { inner: stores.trust, on: first_use.clone(), refused: refused.clone() });
        Self {
            cfg: Arc::new(cfg),
            stores: EngineStores { trust, ..stores },
            first_use,
            refused,
            limits: Limits::default(),
            rng,
            pool: None,
            negotiations: Vec::new(),
            sessions: sessions::Sessions::default(),
            outbox: Outbox::new(),
            offline: offline::State::default(),
            presence: presence::Roster::default(),
            requests: HashMap::new(),
            failures: HashMap::new(),
            forgiven: HashMap::new(),
            forgiven_order: std::collections::VecDeque::new(),
            me: None,
            account: None,
            yielded: std::collections::VecDeque::new(),
            carried: std::collections::VecDeque::new(),
            inbox: None,
            ticked: None,
            accepting: true,
        }
    }

    /// Keeps offline messages in `inbox` until the application acknowledges them
    /// ([`Engine::ack`]; see [`Inbox`] for the guarantee). First finishes what a
    /// crash may have left half done: the replay entries of every kept message and kept
    /// session are recorded (again), so that their starts are refused if the server hands them
    /// over once more; then the offline sessions the inbox keeps are opened again where they
    /// were ([`KeptSession`]), so that their later stanzas are decrypted (one that cannot be
    /// opened again is reported as [`Event::Failed`] by the next [`Engine::tick`], and
    /// forgotten). Before all that, a record that cannot be read back at all (damaged) is set
    /// aside ([`Inbox::set_aside`]) and told as [`Event::SetAside`] by the next tick: the
    /// account starts without it.
    /// Without an inbox, offline messages carry ids all the same but nothing is kept.
    ///
    /// # Errors
    /// The inbox cannot be read or the replay store written: the engine keeps no inbox.
    pub fn set_inbox(&mut self, mut inbox: Box<dyn Inbox + Send>) -> Result<(), Error> {
        // One record that cannot be read must not stop the account: it is set aside, and told
        // (loudly: what it held is lost) by the next tick.
        for lost in inbox.set_aside().map_err(Error::Store)? {
            tracing::error!(what = %lost, "a kept record cannot be read: set aside");
            self.offline.unreadable.push(Event::SetAside(lost));
        }
        for k in inbox.held().map_err(Error::Store)? {
            if !k.replay.is_empty() {
                self.stores.replay.record_all(&k.replay).map_err(Error::Store)?;
            }
        }
        let kept = inbox.sessions().map_err(Error::Store)?;
        for k in &kept {
            if !k.replay.is_empty() {
                self.stores.replay.record_all(&k.replay).map_err(Error::Store)?;
            }
        }
        self.inbox = Some(inbox);
        for k in kept {
            self.reopen_offline(k);
        }
        Ok(())
    }

    /// The offline messages delivered before and not yet acknowledged (after a restart: what
    /// the last process delivered, or was delivering when it died), in the order they
    /// arrived, each as the [`Event::Message`] that told it first, with the same id; a message
    /// held for a trust decision as its [`Event::Untrusted`] while its key is not trusted (as
    /// the [`Event::Message`] once it is).
    ///
    /// # Errors
    /// The inbox cannot be read.
    pub fn unacknowledged(&self) -> Result<Vec<Event>, Error> {
        Ok(self.all_kept().map_err(Error::Store)?.iter().map(|k| self.told(k)).collect())
    }

    /// The application has done with the offline message `id`: it is forgotten, and never
    /// delivered again. Acknowledging an unknown id (twice, or without an inbox) does nothing.
    ///
    /// # Errors
    /// The inbox could not be updated (the message will be delivered again after a restart).
    pub fn ack(&mut self, id: &MessageId) -> Result<(), Error> {
        if let Some(inbox) = self.inbox.as_mut() {
            inbox.ack(id).map_err(Error::Store)?;
        }
        self.offline.held_here.ack(id).map_err(Error::Store)?;
        Ok(())
    }

    /// Our own account (the full JID the server bound, or at least the bare JID): presence
    /// from our own resources is not a contact's, and crossing requests are settled by it
    /// (see the [module documentation](self)).
    pub fn set_account(&mut self, me: &Jid) {
        self.me = Some(me.to_bare());
        self.account = Some(me.clone());
    }

    /// Uses these limits from now on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes Diffie-Hellman key pairs for new negotiations (as Alice, as Bob, and offline
    /// starts) from `pool` rather than generating them on the critical path.
    pub fn set_key_pool(&mut self, pool: KeyPool) {
        self.pool = Some(pool);
    }

    /// The attached key pool.
    #[must_use]
    pub fn key_pool(&self) -> Option<&KeyPool> {
        self.pool.as_ref()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The key associations.
    #[must_use]
    pub fn trust(&self) -> &dyn TrustStore {
        self.stores.trust.as_ref()
    }

    /// Replaces the key associations (with a fresh view of a durable store that was written
    /// besides the engine's copy, as [`crate::client::trust_on_first_use`] does).
    pub(crate) fn set_trust_store(&mut self, trust: Box<dyn TrustStore + Send>) {
        self.stores.trust = Box::new(FirstUseTrust {
            inner: trust,
            on: self.first_use.clone(),
            refused: self.refused.clone(),
        });
    }

    /// Trust on first use: a contact with no key associated yet may identify with any key
    /// (online negotiations, and offline sessions it starts), which is then associated with
    /// it, so that from then on only that key is accepted for it (another is refused as
    /// without it: `key-trust`). Off by default: only keys the user trusted are accepted
    /// (XEP-0116 §4.6.2). Weaker than verified keys: whoever answers first for a JID is
    /// trusted as that JID; comparing the SAS (or the fingerprint) later closes the gap.
    /// The engine pins such a key as the session opens (`TrustStore::pin`: trusted and marked
    /// pinned, not verified, so that it is never evicted among the unverified keys the stores
    /// bound and the user sees that it was never compared); a store that cannot pin is
    /// reported ([`Failure::Store`]).
    pub fn set_trust_on_first_use(&mut self, on: bool) {
        self.first_use.store(on, Ordering::Relaxed);
    }

    /// The last key `peer` identified with (in a negotiation, or an offline start) that was
    /// refused because it is not trusted for it (`key-trust`), if any, once the peer proved it
    /// holds it (its signature verified: [`TrustStore::refused`]): for the application to
    /// show its fingerprint, to be compared with the contact, and [`Engine::verify_key`] it.
    #[must_use]
    pub fn refused_key(&self, peer: &BareJid) -> Option<esession_crypto::PublicKey> {
        let r = self.refused.lock().ok()?;
        r.iter().rev().find(|(j, _)| j == peer).map(|(_, k)| k.clone())
    }

    /// The user compared `key`'s fingerprint with `peer` and trusts it: associated and
    /// verified ([`TrustStore::verify`]); the next negotiation accepts it.
    ///
    /// # Errors
    /// The store failed.
    pub fn verify_key(&mut self, peer: &BareJid, key: esession_crypto::PublicKey) -> Result<(), Error> {
        self.stores.trust.verify(peer, key.clone()).map_err(Error::Store)?;
        if let Ok(mut r) = self.refused.lock() {
            r.retain(|(j, k)| !(j == peer && *k == key));
        }
        Ok(())
    }

    /// Whether trust on first use is on ([`Engine::set_trust_on_first_use`]).
    #[must_use]
    pub fn trusts_on_first_use(&self) -> bool {
        self.first_use.load(Ordering::Relaxed)
    }

    /// What trust on first use says of the key `peer` proved in the session of `thread`
    /// (online, or an offline session we accepted); `None` without such a session. The
    /// engine records every key a peer proves (unverified, XEP-0116 §7.4); the user's (or a
    /// first use's) verification is what counts here. With trust on first use on, the engine
    /// pins a [`FirstUse::First`] key itself as the session opens.
    #[must_use]
    pub fn first_use(&self, peer: &BareJid, thread: &str) -> Option<FirstUse> {
        let o = &self.sessions[self.sessions.newest_of(peer, |o| o.est.thread() == thread)?];
        let Some(key) = o.est.peer_key() else { return Some(FirstUse::NoKey) };
        let records = self.stores.trust.for_jid(peer);
        if records.iter().any(|r| (r.verified || r.pinned) && &r.key == key) {
            return Some(FirstUse::Known);
        }
        if records.iter().any(|r| &r.key != key) {
            return Some(FirstUse::Changed);
        }
        Some(FirstUse::First(key.clone()))
    }

    /// How many negotiations are in progress and sessions open (for monitoring).
    #[must_use]
    pub fn load(&self) -> (usize, usize) {
        (self.negotiations.len(), self.sessions.len())
    }

    // ------------------------------------------------------------------------------------------
    // Queries

    fn active(&self, peer: &BareJid) -> Option<usize> {
        // X187-4-01: an offline session Alice accepted is never one to send in: every sending
        // path (chat, protect, terminate, SAS) finds sessions through here.
        self.sessions.newest_of(peer, |o| !o.offline && o.est.phase() == Phase::Active)
    }

    /// Whether an active session with `peer` (any resource) exists.
    #[must_use]
    pub fn has_session(&self, peer: &BareJid) -> bool {
        self.active(peer).is_some()
    }

    /// The full JID of the active session with `peer`.
    #[must_use]
    pub fn session_peer(&self, peer: &BareJid) -> Option<&Jid> {
        self.active(peer).map(|i| self.sessions[i].est.peer())
    }

    /// The active session with `peer`, read only (counters, parameters, the peer's key).
    #[must_use]
    pub fn session(&self, peer: &BareJid) -> Option<&Established> {
        self.active(peer).map(|i| self.sessions[i].est.as_ref())
    }

    /// The key `peer` proved in the session of `thread` (online, or an offline session we
    /// accepted), as [`Event::Negotiated`] names it: what an offline session's start shows,
    /// which [`Engine::session`] (active sessions only) does not find.
    #[must_use]
    pub fn peer_key_of(&self, peer: &BareJid, thread: &str) -> Option<&esession_crypto::PublicKey> {
        self.sessions[self.sessions.newest_of(peer, |o| o.est.thread() == thread)?].est.peer_key()
    }

    /// Whether a negotiation with `peer` is in progress.
    #[must_use]
    pub fn negotiating(&self, peer: &BareJid) -> bool {
        self.negotiations.iter().any(|n| of(&n.peer, peer) && !n.machine.is_done())
    }

    /// The SAS of the active session with `peer`, when it has one.
    #[must_use]
    pub fn sas(&self, peer: &BareJid) -> Option<&esession_crypto::Sas> {
        self.active(peer).and_then(|i| self.sessions[i].est.sas())
    }

    /// The user compared the SAS of the session with `peer` and found it equal: the key
    /// association is verified (XEP-0116 §7.4: the key the peer proved in the session is
    /// verified, no longer only pinned on first use) and the retained secrets with it.
    ///
    /// # Errors
    /// No session with a SAS; the store failed.
    pub fn confirm_sas(&mut self, peer: &BareJid) -> Result<(), Error> {
        if self.sas(peer).is_none() {
            return Err(Error::NotProtected(peer.clone()));
        }
        let key = self.session(peer).and_then(|s| s.peer_key()).cloned();
        // The key first: a store that cannot verify it leaves the SAS unconfirmed too, so that
        // nothing reads as verified after a failure (hostile review).
        if let Some(key) = key {
            self.stores.trust.verify(peer, key).map_err(Error::Store)?;
        }
        self.stores.trust.confirm_sas(peer).map_err(Error::Store)?;
        self.stores.retained.mark_verified(peer).map_err(Error::Store)
    }

    // ------------------------------------------------------------------------------------------
    // Input

    /// Handles one stanza from the server; see the [module documentation](self).
    pub fn handle(&mut self, now: DateTime<Utc>, s: &Element) -> Step {
        let mut step = self.tick_due(now);
        // A contact cut off is found by the text of its `from` (servers stamp it normalized):
        // nothing more is done for its stanza.
        let raw = s.attr("from").unwrap_or_default();
        if self.cut_off(now, raw.split('/').next().unwrap_or(raw), raw, &mut step) {
            return step;
        }
        let Some(from) = Jid::new(raw).ok() else {
            tracing::debug!(kind = s.name(), "stanza without a valid from: dropped");
            return step;
        };
        let bare = from.to_bare();
        if raw.split('/').next() != Some(bare.as_str()) && self.cut_off(now, bare.as_str(), raw, &mut step) {
            return step;
        }
        let _span = tracing::debug_span!("esession.stanza", kind = s.name(), peer = %bare).entered();
        let Ok(shape) = xml::measure(s, self.limits.stanza) else {
            let mut inner = Step::default();
            inner.event(Event::Failed { peer: from.clone(), failure: Failure::TooLarge });
            self.count_failures(now, &from, &bare, &inner, s);
            step.append(inner);
            return step;
        };
        if self.offline.holding() {
            // Bounded in count and in octets; beyond, dropped and said so.
            let dropped = self.offline.hold(s.clone(), shape, &self.limits);
            if dropped {
                step.event(Event::Failed { peer: from, failure: Failure::QueueFull });
            }
            return step;
        }
        let inner = self.route(now, &from, s);
        self.count_failures(now, &from, &bare, &inner, s);
        step.append(inner);
        self.unsent(&mut step);
        step
    }

    /// Remembers that the session of `thread` with `peer` ended here without the peer knowing:
    /// what it still sends on that thread is not charged to its failure budget.
    pub(super) fn forgive(&mut self, peer: &BareJid, thread: &str) {
        if self.forgiven.insert(thread.to_owned(), (peer.clone(), FORGIVEN_PER_THREAD)).is_none() {
            self.forgiven_order.push_back(thread.to_owned());
        }
        while self.forgiven_order.len() > FORGIVEN_THREADS {
            if let Some(t) = self.forgiven_order.pop_front() {
                self.forgiven.remove(&t);
            }
        }
    }

    /// Whether the contact `bare` (a bare JID's text) spent its failure budget
    /// ([`Limits::failures_per_minute`]): its stanza (from `from`) is then dropped unread,
    /// told once per cut-off.
    fn cut_off(&mut self, now: DateTime<Utc>, bare: &str, from: &str, step: &mut Step) -> bool {
        if self.failures.is_empty() {
            return false;
        }
        let per_minute = self.limits.failures_per_minute;
        let Some(s) = self.failures.get_mut(bare) else { return false };
        if s.budget.available(per_minute, now) {
            s.told = false;
            return false;
        }
        if !s.told {
            s.told = true;
            tracing::warn!(peer = %bare, "stanzas fail too often: dropped unread for a while");
            if let Ok(peer) = Jid::new(from) {
                step.event(Event::Failed { peer, failure: Failure::Flooded });
            }
        }
        true
    }

    /// Charges `bare`'s failure budget for every failure of its own that handling its stanza
    /// caused (what a peer, or someone in its name, did wrong; not our own policy or state).
    fn count_failures(&mut self, now: DateTime<Utc>, from: &Jid, bare: &BareJid, step: &Step, s: &Element) {
        // Our own account and servers (PEP, the server's bounces) are never cut off.
        if from.node().is_none() || self.me.as_ref() == Some(bare) {
            return;
        }
        let per_minute = self.limits.failures_per_minute;
        for e in &step.events {
            let Event::Failed { peer, failure } = e else { continue };
            // A stanza (or an error) on the thread of a session we ended alone: forgiven.
            if matches!(failure, Failure::NoSession | Failure::PeerError { .. })
                && let Some(t) = thread_of(s)
                && let Some((p, left)) = self.forgiven.get_mut(&t)
                && p == bare
                && *left > 0
            {
                *left -= 1;
                continue;
            }
            let theirs = matches!(
                failure,
                Failure::NoSession
                    | Failure::TooLarge
                    | Failure::RateLimited
                    | Failure::Negotiation(_)
                    | Failure::Session(_)
                    | Failure::PeerError { .. }
                    | Failure::Offline(_)
            );
            if !theirs || !of(peer, bare) {
                continue;
            }
            if !self.failures.contains_key(bare.as_str()) && self.failures.len() >= self.limits.strangers {
                return;
            }
            let s = self
                .failures
                .entry(bare.as_str().to_owned())
                .or_insert_with(|| Strikes { budget: Bucket::new(per_minute, now), told: false });
            s.budget.take(per_minute, now);
        }
    }

    /// The routing of one bounded stanza (also used for the queue on return).
    fn route(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element) -> Step {
        match s.name() {
            "presence" => self.on_presence(now, from, s),
            "iq" => self.on_iq(now, from, s),
            "message" => self.on_message(now, from, s),
            _ => Step::default(),
        }
    }

    fn on_message(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element) -> Step {
        if s.attr("type") == Some("error") {
            return self.on_error(from, s);
        }
        match classify(s) {
            Some(FormKindIn::Request(mode)) => return self.on_request(now, from, s, mode),
            Some(FormKindIn::OfflineStart) => return self.on_offline_start(now, from, s),
            Some(FormKindIn::Terminate) if !s.children().any(|c| c.is("c", esession_stanza::NS)) => {
                return self.on_session_stanza(now, from, s);
            }
            Some(FormKindIn::Other) => return self.on_negotiation(now, from, s),
            Some(FormKindIn::Terminate) | None => {}
        }
        if s.children().any(|c| c.is("c", esession_stanza::NS)) {
            return self.on_session_stanza(now, from, s);
        }
        let mut step = Step::default();
        step.event(Event::Clear { peer: from.clone(), stanza: s.clone() });
        step
    }

    /// An error stanza: never answered. It ends the negotiation or the session it is about:
    /// the one whose thread it carries and whose peer sent it. A server's bounce comes from
    /// the address we wrote (a full JID, or the bare JID of a service we addressed so) with the
    /// thread we sent; an error without a thread, or from another resource, ends nothing (it is
    /// not authenticated, and anyone may send one) and is only reported.
    fn on_error(&mut self, from: &Jid, s: &Element) -> Step {
        let mut step = Step::default();
        let (condition, fields) = esession_negotiate::wire::error_of(s).unwrap_or((None, Vec::new()));
        let thread = thread_of(s).filter(|t| !t.is_empty());
        let same = |peer: &Jid, t: &str| {
            thread.as_deref() == Some(t)
                && (peer == from || (peer.resource().is_none() && peer.to_bare() == from.to_bare()))
        };
        if let Some(i) = self.negotiations.iter().position(|n| same(&n.peer, &n.thread)) {
            let n = self.negotiations.remove(i);
            step.event(Event::Failed { peer: n.peer, failure: Failure::PeerError { condition, fields } });
            return step;
        }
        // X116-4.4-05: an error about a negotiation ends what it produced, even a 3-message
        // session Alice already considers established: she must not go on sending in it.
        if let Some(i) = self.sessions.newest_of(&from.to_bare(), |o| same(o.est.peer(), o.est.thread())) {
            let peer = self.sessions[i].est.peer().clone();
            step.event(Event::Failed { peer, failure: Failure::PeerError { condition, fields } });
            self.end_session(i, Ended::PeerError, &mut step);
            return step;
        }
        if self.yielded_thread(&from.to_bare(), thread.as_deref()) {
            return step;
        }
        step.event(Event::Failed { peer: from.clone(), failure: Failure::PeerError { condition, fields } });
        step
    }

    /// [`Engine::tick`] for an input: at most once per second of `now` (every expiry is a
    /// matter of minutes), so that a stanza does not pay a walk over every session,
    /// negotiation and rate bucket the engine holds.
    fn tick_due(&mut self, now: DateTime<Utc>) -> Step {
        if self.ticked.is_some_and(|t| now >= t && now - t < chrono::Duration::seconds(1)) {
            return Step::default();
        }
        self.tick(now)
    }

    /// Expires what waited too long; called by the inputs (at most once per second of their
    /// `now`), and by the caller whenever it likes.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Step {
        self.ticked = Some(now);
        let mut step = Step::default();
        let timeout = self.limits.pending_timeout;
        let mut i = 0;
        while i < self.negotiations.len() {
            if now - self.negotiations[i].started > timeout {
                let n = self.negotiations.remove(i);
                step.event(Event::Failed { peer: n.peer, failure: Failure::Expired });
            } else {
                i += 1;
            }
        }
        // X116-5-05: a terminate whose acknowledgement never comes does not keep the receive
        // keys forever: after the negotiation timeout the session is closed.
        let mut i = 0;
        while i < self.sessions.len() {
            let o = &mut self.sessions[i];
            if o.est.phase() == Phase::Terminating {
                let since = *o.terminating_since.get_or_insert(now);
                if now - since > timeout {
                    self.end_session(i, Ended::NoAcknowledgement, &mut step);
                    continue;
                }
            }
            i += 1;
        }
        // X187-3.4-02: no stanza of an offline session counts after its options expired: the
        // session ends, its kept state with it.
        let mut i = 0;
        while i < self.sessions.len() {
            if self.sessions[i].accepted.as_ref().is_some_and(|a| now > a.until) {
                self.end_session(i, Ended::Expired, &mut step);
                continue;
            }
            i += 1;
        }
        // Kept sessions that could not be opened again are told, and forgotten.
        for e in std::mem::take(&mut self.offline.unreadable) {
            step.event(e);
        }
        self.forget_ended_offline();
        let per_minute = self.limits.requests_per_minute;
        self.requests.retain(|_, b| !b.full(per_minute, now));
        let per_minute = self.limits.failures_per_minute;
        self.failures.retain(|_, s| !s.budget.full(per_minute, now));
        self.offline.expire(now);
        self.unsent(&mut step);
        step
    }

    // ------------------------------------------------------------------------------------------
    // Online negotiations

    /// Starts a negotiation with `peer` (a full JID, or a service's bare JID): returns the
    /// request to send. A negotiation already in progress with that contact is replaced.
    ///
    /// # Errors
    /// The configuration cannot make a request.
    pub fn start(&mut self, now: DateTime<Utc>, peer: &Jid, mode: Mode) -> Result<Step, Error> {
        self.start_with(now, peer, mode, None)
    }

    /// [`Engine::start`], with content that goes encrypted in the last negotiation message
    /// that can carry it (3-message: Alice's accept, where `terminate` makes it object
    /// encryption; XEP-0116 §4.6.4).
    ///
    /// # Errors
    /// The configuration cannot make a request.
    pub fn start_with(
        &mut self,
        now: DateTime<Utc>,
        peer: &Jid,
        mode: Mode,
        content: Option<(Element, bool)>,
    ) -> Result<Step, Error> {
        let mut step = self.tick(now);
        let bare = peer.to_bare();
        let thread = new_thread(&mut self.rng);
        let mut a = Initiator::new(self.cfg.clone(), peer.clone(), &thread);
        if let Some((c, terminate)) = content.clone() {
            a.piggyback(c, terminate);
        }
        // X116-N22-01: a contact whose key we hold is asked for its fingerprint first.
        if !self.stores.trust.for_jid(&bare).is_empty() {
            a.ask_fingerprint_first();
        }
        a.start(mode, &mut PooledEntropy { rng: &mut self.rng, pool: &mut self.pool.as_ref() })
            .map_err(Error::Negotiation)?;
        tracing::info!(peer = %bare, thread = %thread, mode = ?mode, "negotiation started");
        // X187-4-02: to send to Bob, Alice first ends the offline session he started with her
        // (locally: she never sends inside it, and Bob ends his side when he sees her online);
        // the request goes out after it.
        self.end_accepted_offline(&bare, &mut step);
        self.negotiations.retain(|n| !of(&n.peer, &bare));
        for old in self.admit(NEGOTIATION_COST) {
            step.event(Event::Failed { peer: old.peer, failure: Failure::Overloaded });
        }
        self.negotiations.push(Negotiation {
            peer: peer.clone(),
            thread,
            machine: Machine::Alice(a),
            sas: None,
            started: now,
            cost: NEGOTIATION_COST,
            answered: false,
            content,
            mode,
        });
        self.drain(now, &mut step);
        self.unsent(&mut step);
        Ok(step)
    }

    /// Removes session `i`, closes it (its keys are wiped) and tells the application how it
    /// ended.
    fn end_session(&mut self, i: usize, why: Ended, step: &mut Step) {
        let mut o = self.sessions.remove(i);
        o.est.close();
        step.event(Event::Terminated {
            peer: o.est.peer().clone(),
            thread: o.est.thread().to_owned(),
            offline: o.offline,
            why,
        });
    }

    /// Ends the offline sessions `peer` started with us (receive only), with an event each.
    fn end_accepted_offline(&mut self, peer: &BareJid, step: &mut Step) {
        while let Some(i) = self.sessions.oldest_of(peer, |o| o.offline) {
            self.end_session(i, Ended::Replaced, step);
        }
    }

    /// Makes room for one more negotiation holding `cost` octets: the oldest go while the
    /// count would pass [`Limits::pending_total`] or the octets [`Limits::pending_octets`].
    fn admit(&mut self, cost: usize) -> Vec<Negotiation> {
        let mut held: usize = self.negotiations.iter().map(|n| n.cost).sum();
        let mut gone = Vec::new();
        while !self.negotiations.is_empty()
            && (self.negotiations.len() >= self.limits.pending_total.max(1)
                || held.saturating_add(cost) > self.limits.pending_octets)
        {
            let n = self.negotiations.remove(0);
            held = held.saturating_sub(n.cost);
            gone.push(n);
        }
        gone
    }

    /// A request (asking for `offered`): a new responder. It replaces any negotiation with the
    /// contact (a request is never read as the next message of an old negotiation), and a
    /// contact may start only so many per minute.
    fn on_request(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element, offered: Mode) -> Step {
        let mut step = Step::default();
        // A request without a <thread/> is not a session request (XEP-0155 §4.1): ignored.
        let Some(thread) = thread_of(s).filter(|t| !t.is_empty()) else {
            tracing::debug!(peer = %from.to_bare(), "session request without a thread: ignored");
            return step;
        };
        // X155-4.2-01: a request the server stored while we were offline (it carries a delay
        // stamp) is not answered: an answer would tell that we had been offline. The
        // application is told, and starts a new negotiation if it still wants a session.
        if s.children().any(|c| c.is("delay", DELAY_NS) || c.is("x", LEGACY_DELAY_NS)) {
            step.event(Event::Failed { peer: from.clone(), failure: Failure::Stored });
            return step;
        }
        // A genuine request is a few kilobytes: a large one is dropped before any state is
        // kept (the responder keeps the request form until the negotiation ends).
        let Ok(shape) =
            xml::measure(s, xml::Limits { octets: self.limits.request_octets, ..self.limits.stanza })
        else {
            step.event(Event::Failed { peer: from.clone(), failure: Failure::TooLarge });
            return step;
        };
        let bare = from.to_bare();
        let per_minute = self.limits.requests_per_minute;
        let bucket = self.requests.entry(bare.clone()).or_insert_with(|| Bucket::new(per_minute, now));
        if !bucket.take(per_minute, now) {
            step.event(Event::Failed { peer: from.clone(), failure: Failure::RateLimited });
            return step;
        }
        match self.crossing(from, &thread, offered, &mut step) {
            Crossing::OursKept => return step,
            // We asked this contact for a session: its request is answered even while we
            // accept none (module documentation, resolution I32).
            Crossing::OursDropped => {}
            Crossing::No if !self.accepting => {
                self.decline(from, &thread, &mut step);
                return step;
            }
            Crossing::No => {}
        }
        tracing::info!(peer = %bare, thread = %thread, "negotiation request received");
        self.negotiations.retain(|n| n.peer.to_bare() != bare);
        let cost = offline::held_cost(shape).saturating_add(NEGOTIATION_COST);
        for old in self.admit(cost) {
            step.event(Event::Failed { peer: old.peer, failure: Failure::Overloaded });
        }
        let b = Responder::new(self.cfg.clone(), from.clone(), &thread);
        self.negotiations.push(Negotiation {
            peer: from.clone(),
            thread,
            machine: Machine::Bob(b),
            sas: None,
            started: now,
            cost,
            answered: false,
            content: None,
            mode: offered,
        });
        let i = self.negotiations.len() - 1;
        self.feed(now, i, s, &mut step);
        step
    }

    /// A request of `from` on `thread` asking for `offered` that crossed our own request to
    /// the same contact (our negotiation as Alice has had no answer yet): settled by
    /// [`Engine::ours_wins`], the same on both sides (see the [module documentation](self)).
    /// When ours wins, theirs is declined (without an event: the contact dropped that request
    /// already and ignores the decline): [`Crossing::OursKept`]. When theirs wins, ours is
    /// dropped (its state with it, without an event: the session answering theirs is the one
    /// the application is told of), its thread remembered, so that what comes on it later is
    /// ignored, and the content it was to carry parked for the session of theirs
    /// ([`Carried`]): [`Crossing::OursDropped`], theirs to be answered.
    fn crossing(&mut self, from: &Jid, thread: &str, offered: Mode, step: &mut Step) -> Crossing {
        let bare = from.to_bare();
        let Some(i) = self.negotiations.iter().position(|n| {
            matches!(n.machine, Machine::Alice(_))
                && !n.answered
                && !n.machine.is_done()
                && of(&n.peer, &bare)
                && n.thread != thread
        }) else {
            return Crossing::No;
        };
        let ours = &self.negotiations[i];
        if self.ours_wins((ours.mode, &ours.thread), from, (offered, thread)) {
            tracing::info!(peer = %bare, ours = %ours.thread, theirs = %thread,
                "crossing negotiation requests: ours goes on, the contact's is declined");
            self.send_decline(from, thread, step);
            return Crossing::OursKept;
        }
        let mut n = self.negotiations.remove(i);
        tracing::info!(peer = %bare, ours = %n.thread, theirs = %thread,
            "crossing negotiation requests: ours is dropped, the contact's is answered");
        if self.yielded.len() >= YIELDED_THREADS {
            self.yielded.pop_front();
        }
        self.yielded.push_back((bare, n.thread.clone()));
        // What our request was to carry goes in the session of theirs: with that contact, on
        // that thread, and no other (the server sees thread ids in clear).
        if let Some((content, terminate)) = n.content.take() {
            if self.carried.len() >= YIELDED_THREADS
                && let Some(old) = self.carried.pop_front()
            {
                not_sent(old, step);
            }
            self.carried.push_back(Carried {
                peer: from.clone(),
                thread: thread.to_owned(),
                content,
                terminate,
            });
        }
        // Our negotiation's state (DH secret, nonce) is wiped as it drops here.
        drop(n);
        Crossing::OursDropped
    }

    /// The crossing rule (issue 19; the specs are silent): a 4-message request wins over a
    /// 3-message one (a crossing request never takes the SAS away); between requests of one
    /// mode, the request of the entity whose JID sorts lower wins. Bare JIDs are compared as
    /// strings (normalized: byte order); two resources of one account compare their full
    /// JIDs; without our account ([`Engine::set_account`]), or with our own full JID, the two
    /// threads decide. Whether our request (its mode, on its thread) wins over that of `peer`.
    fn ours_wins(&self, ours: (Mode, &str), peer: &Jid, theirs: (Mode, &str)) -> bool {
        if ours.0 != theirs.0 {
            return ours.0 == Mode::Four;
        }
        let peer_bare = peer.to_bare();
        match (&self.me, &self.account) {
            (Some(me), _) if *me != peer_bare => me.as_str() < peer_bare.as_str(),
            (_, Some(full)) if full.resource().is_some() && full != peer => full.as_str() < peer.as_str(),
            _ => ours.1 < theirs.1,
        }
    }

    /// Gives back to the application the content parked for sessions of crossing requests
    /// ([`Carried`]) whose negotiation is gone without a session (it failed, expired, was
    /// replaced, or the connection was reset): [`Failure::NotSent`], nothing lost in silence.
    /// Called at the end of every input that may end negotiations.
    fn unsent(&mut self, step: &mut Step) {
        if self.carried.is_empty() {
            return;
        }
        let negotiations = &self.negotiations;
        let (kept, gone): (std::collections::VecDeque<_>, std::collections::VecDeque<_>) =
            std::mem::take(&mut self.carried).into_iter().partition(|c| {
                let bare = c.peer.to_bare();
                negotiations
                    .iter()
                    .any(|n| of(&n.peer, &bare) && n.thread == c.thread && !n.machine.is_done())
            });
        self.carried = kept;
        for c in gone {
            not_sent(c, step);
        }
    }

    /// Whether `thread` is that of a request of ours to `peer` dropped for its crossing
    /// request: what comes on it (its decline, a late answer, an error) is ignored quietly.
    fn yielded_thread(&self, peer: &BareJid, thread: Option<&str>) -> bool {
        let Some(t) = thread else { return false };
        let hit = self.yielded.iter().any(|(p, y)| p == peer && y == t);
        if hit {
            tracing::debug!(peer = %peer, thread = %t, "a stanza on the thread of our request dropped for a crossing one: ignored");
        }
        hit
    }

    /// A negotiation message other than a request: to the negotiation of its contact and
    /// thread.
    fn on_negotiation(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element) -> Step {
        let mut step = Step::default();
        let bare = from.to_bare();
        let thread = thread_of(s);
        let Some(i) = self.negotiations.iter().position(|n| {
            of(&n.peer, &bare) && thread.as_deref().is_none_or(|t| t == n.thread) && !n.machine.is_done()
        }) else {
            if self.yielded_thread(&bare, thread.as_deref()) {
                return step;
            }
            step.event(Event::Failed { peer: from.clone(), failure: Failure::NoSession });
            return step;
        };
        // The contact's answer may come from another resource than the one we addressed.
        self.negotiations[i].peer = from.clone();
        self.negotiations[i].answered = true;
        let n = &self.negotiations[i];
        match n.machine {
            Machine::Alice(_) => {
                tracing::debug!(peer = %bare, thread = %n.thread, "negotiation response received")
            }
            Machine::Bob(_) => {
                tracing::debug!(peer = %bare, thread = %n.thread, "negotiation accept received")
            }
        }
        self.feed(now, i, s, &mut step);
        step
    }

    fn feed(&mut self, now: DateTime<Utc>, i: usize, s: &Element, step: &mut Step) {
        let n = &mut self.negotiations[i];
        let mut stores =
            Stores { trust: self.stores.trust.as_mut(), retained: self.stores.retained.as_mut() };
        let mut pool = self.pool.as_ref();
        let mut entropy = PooledEntropy { rng: &mut self.rng, pool: &mut pool };
        // Failures are reported through the machine's outputs.
        let _ = match &mut n.machine {
            Machine::Alice(a) => a.handle(now, s, &mut entropy, &mut stores),
            Machine::Bob(b) => b.handle(now, s, &mut entropy, &mut stores),
        };
        self.drain(now, step);
    }

    /// Moves the negotiations' outputs into `step`, and finished negotiations out.
    fn drain(&mut self, now: DateTime<Utc>, step: &mut Step) {
        let mut established: Vec<Box<Established>> = Vec::new();
        let first = step.events.len();
        for n in &mut self.negotiations {
            while let Some(o) = n.machine.poll_output() {
                match o {
                    Output::Send(s) => {
                        tracing::debug!(peer = %n.peer.to_bare(), thread = %n.thread, "negotiation message to send");
                        step.send.push(s);
                    }
                    Output::SasReady(sas) => n.sas = Some(sas),
                    Output::Established(e) => {
                        step.event(Event::Negotiated {
                            peer: e.peer().clone(),
                            thread: e.thread().to_owned(),
                            sas: e.sas().cloned().or_else(|| n.sas.clone()),
                            offline: false,
                            petname: petname_of(self.stores.trust.as_ref(), e.peer_key()),
                        });
                        established.push(e);
                    }
                    Output::Rejected(e) => {
                        step.event(Event::Failed { peer: n.peer.clone(), failure: Failure::Negotiation(e) })
                    }
                    Output::Alert(a) => step.event(Event::Alert { peer: n.peer.clone(), alert: a }),
                    Output::Received { content, unprotected, clear, .. } => {
                        let (peer, thread) = (n.peer.clone(), n.thread.clone());
                        push_unprotected(step, &peer, unprotected);
                        push_message(step, &peer, &thread, content, false, None, clear);
                    }
                    Output::StanzaSession { security } => {
                        step.event(Event::StanzaSession { peer: n.peer.clone(), security })
                    }
                    _ => {}
                }
            }
        }
        // Content that came with the negotiation: the petname of the key its session proved.
        for e in &mut step.events[first..] {
            if let Event::Message { thread, petname, .. } = e
                && let Some(est) = established.iter().find(|est| est.thread() == thread.as_str())
            {
                *petname = petname_of(self.stores.trust.as_ref(), est.peer_key());
            }
        }
        self.negotiations.retain(|n| !n.machine.is_done());
        for est in established {
            let (bare, thread) = (est.peer().to_bare(), est.thread().to_owned());
            self.open(now, est, false, step);
            self.send_carried(&bare, &thread, step);
        }
    }

    /// Sends, in the session of `thread` with `peer` just established, the content a request
    /// of ours dropped for that session's crossing request was to carry (with `terminate`:
    /// the session is terminated after it). Only content parked for that contact and that
    /// thread goes; content that cannot go is given back ([`Failure::NotSent`]).
    fn send_carried(&mut self, peer: &BareJid, thread: &str, step: &mut Step) {
        let Some(i) = self.carried.iter().position(|c| of(&c.peer, peer) && c.thread == thread) else {
            return;
        };
        let Some(mut c) = self.carried.remove(i) else { return };
        let Some(to) = self.session_peer(peer).cloned() else { return not_sent(c, step) };
        if self.session(peer).map(Established::thread) != Some(thread) {
            return not_sent(c, step);
        }
        set_attr(&mut c.content, "to", to.as_str());
        match self.protect(&c.content, EncryptOptions::default()) {
            Ok(w) => step.send.push(w),
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "content carried over a crossing request not sent");
                return not_sent(c, step);
            }
        }
        if c.terminate
            && let Ok(t) = self.terminate(peer)
        {
            step.send.push(t);
        }
    }

    /// Keeps an established session: one active online session per contact (a new one
    /// replaces the old), within the cap.
    fn open(&mut self, now: DateTime<Utc>, est: Box<Established>, offline: bool, step: &mut Step) {
        if est.phase() == Phase::Closed {
            // Object encryption: the session ended with its only stanza.
            step.event(Event::Terminated {
                peer: est.peer().clone(),
                thread: est.thread().to_owned(),
                offline,
                why: Ended::Object,
            });
            return;
        }
        if !offline {
            let bare = est.peer().to_bare();
            while let Some(i) = self.sessions.oldest_of(&bare, |o| !o.offline) {
                let old = self.sessions.remove(i);
                step.event(Event::Terminated {
                    peer: old.est.peer().clone(),
                    thread: old.est.thread().to_owned(),
                    offline: false,
                    why: Ended::Replaced,
                });
            }
        }
        if self.sessions.len() >= self.limits.sessions.max(1)
            && let Some(i) = self.sessions.iter().enumerate().min_by_key(|(_, o)| o.used).map(|(i, _)| i)
        {
            let old = self.sessions.remove(i);
            if !old.offline {
                self.forgive(&old.est.peer().to_bare(), old.est.thread());
            }
            step.event(Event::Terminated {
                peer: old.est.peer().clone(),
                thread: old.est.thread().to_owned(),
                offline: old.offline,
                why: Ended::Failure,
            });
        }
        let (bare, thread) = (est.peer().to_bare(), est.thread().to_owned());
        self.sessions.push(Open { est, offline, used: now, terminating_since: None, accepted: None });
        // Trust on first use: the first key a contact proves is pinned (trusted, not verified)
        // at once, before the application reads of the session.
        if self.first_use.load(Ordering::Relaxed)
            && let Some(FirstUse::First(key)) = self.first_use(&bare, &thread)
        {
            match self.stores.trust.pin(&bare, key) {
                Ok(()) => tracing::info!(peer = %bare, "key pinned on first use"),
                Err(e) => step.event(Event::Failed { peer: Jid::from(bare), failure: Failure::Store(e) }),
            }
        }
    }

    /// An encrypted stanza (or a clear terminate): the session of its contact and thread.
    fn on_session_stanza(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element) -> Step {
        let mut step = Step::default();
        let bare = from.to_bare();
        let thread = thread_of(s);
        let Some(i) =
            self.sessions.newest_of(&bare, |o| thread.as_deref().is_none_or(|t| t == o.est.thread()))
        else {
            // A terminate or its acknowledgement has the shape X155-13-01 and I17 give it: no
            // `type`, no body. One for a session that is gone here is the end of an exchange
            // that ended already (typically the peer's acknowledgement of the terminate we
            // sent as we left, stored by the server while we were away and handed over at our
            // next start): no message was lost, so none is told.
            if s.attr("type").is_none() && s.get_child("body", CLIENT_NS).is_none() {
                tracing::debug!(peer = %bare, "an end of session (terminate or acknowledgement) for no session here: ignored");
                return step;
            }
            step.event(Event::Failed { peer: from.clone(), failure: Failure::NoSession });
            return step;
        };
        // X187-3.4-02: once the options its start answered have expired, no stanza of an
        // offline session is decrypted: the session ends here, whether or not a tick came.
        if self.sessions[i].accepted.as_ref().is_some_and(|a| now > a.until) {
            self.end_session(i, Ended::Expired, &mut step);
            self.forget_ended_offline();
            return step;
        }
        let o = &mut self.sessions[i];
        o.used = now;
        let offline = o.offline;
        let thread = o.est.thread().to_owned();
        let terminating = o.est.phase() == Phase::Terminating;
        let petname = petname_of(self.stores.trust.as_ref(), o.est.peer_key());
        // A stanza an offline session took already, handed over again (the server had not
        // seen it acknowledged when the connection or the process went): it was kept, and is
        // told from the inbox until acknowledged; decrypting it again would fail (the counter
        // moved on) and end the session.
        let digest = o.accepted.as_ref().and_then(|_| inbox::taken_digest(s));
        if let (Some(a), Some(d)) = (o.accepted.as_ref(), digest.as_ref())
            && a.taken.contains(d)
        {
            tracing::debug!(peer = %bare, "a stanza of an offline session handed over again: ignored");
            return step;
        }
        match o.est.receive(s, false, &mut self.rng) {
            Ok(Received::Stanza { stanza, unprotected, clear, .. }) => {
                push_unprotected(&mut step, from, unprotected);
                if o.accepted.is_some() {
                    let untrusted = self.offline.held_key(from, &thread);
                    self.take_offline(i, from, stanza, petname, clear, untrusted, digest, &mut step);
                } else {
                    push_message(&mut step, from, &thread, stanza, offline, petname, clear);
                }
            }
            Ok(Received::Terminated { ack, verified }) => {
                // X116-5-06: verified and acknowledged encrypted, except offline sessions
                // (X187-5-02: Alice does not answer Bob's terminate). X155-7-05: the
                // acknowledgement is made by the session of this thread, on its thread.
                if !offline {
                    step.send.extend(ack);
                }
                let why = if terminating { Ended::Acknowledged } else { Ended::ByPeer { verified } };
                step.event(Event::Terminated { peer: from.clone(), thread, offline, why });
                self.sessions.remove(i);
                self.forget_ended_offline();
            }
            Ok(_) => {}
            Err(e) => {
                let closed = o.est.phase() == Phase::Closed;
                step.event(Event::Failed { peer: from.clone(), failure: Failure::Session(e) });
                if closed {
                    self.sessions.remove(i);
                    step.event(Event::Terminated {
                        peer: from.clone(),
                        thread,
                        offline,
                        why: Ended::Failure,
                    });
                    self.forget_ended_offline();
                }
            }
        }
        step
    }

    // ------------------------------------------------------------------------------------------
    // Sending in sessions

    /// The active session that protects what goes to `peer`, or the refusal (traced): nothing
    /// goes out in clear by accident.
    fn protecting(&self, peer: &BareJid, what: &str) -> Result<usize, Error> {
        self.active(peer).ok_or_else(|| {
            tracing::debug!(peer = %peer, kind = what, "refused: no session protects this stanza, nothing sent");
            Error::NotProtected(peer.clone())
        })
    }

    /// Encrypts an outgoing one-to-one stanza inside the active session with its `to`.
    ///
    /// # Errors
    /// [`Error::NotProtected`] when there is no active session with the addressee: the stanza
    /// must not go out in clear by accident (XEP-0116 §4.1).
    // X116-4.1-04 X116-4.8.2-03: nothing one-to-one goes out in clear by accident.
    pub fn protect(&mut self, stanza: &Element, opts: EncryptOptions) -> Result<Element, Error> {
        let to_text = stanza.attr("to").unwrap_or_default();
        let to = Jid::new(to_text).map_err(|e| Error::bad_jid(to_text, e))?;
        let i = self.protecting(&to.to_bare(), stanza.name())?;
        let o = &mut self.sessions[i];
        let mut s = stanza.clone();
        if s.name() == "message" && s.get_child("thread", CLIENT_NS).is_none() {
            s.append_child(Element::builder("thread", CLIENT_NS).append(o.est.thread()).build());
        }
        o.est.encrypt(&s, opts, &mut self.rng).map_err(Error::Session)
    }

    /// A chat message to `peer` inside the active session (an empty `text` sends a stanza
    /// without a body, as for a bare re-key).
    ///
    /// # Errors
    /// As [`Engine::protect`].
    pub fn chat(&mut self, peer: &BareJid, text: &str, opts: EncryptOptions) -> Result<Element, Error> {
        let i = self.protecting(peer, "message")?;
        let to = self.sessions[i].est.peer().clone();
        let mut m = if text.is_empty() { Element::bare("message", CLIENT_NS) } else { body_message(text) };
        set_attr(&mut m, "to", to.as_str());
        set_attr(&mut m, "type", "chat");
        self.protect(&m, opts)
    }

    /// Terminates the active session with `peer` (the acknowledgement ends it).
    ///
    /// # Errors
    /// No active session.
    pub fn terminate(&mut self, peer: &BareJid) -> Result<Element, Error> {
        let i = self.protecting(peer, "terminate")?;
        self.sessions[i].est.terminate(false, &mut self.rng).map_err(Error::Session)
    }

    /// Terminates every active session (before going offline, XEP-0116 §5, XEP-0187 §3.1):
    /// the terminate stanzas, and the events.
    // X116-5-02: every session ends before going offline.
    pub fn terminate_all(&mut self) -> Step {
        let mut step = Step::default();
        for mut o in self.sessions.take_all() {
            // X187-4-01 X187-5-02: nothing is sent in an offline session Bob started.
            if !o.offline
                && let Ok(w) = o.est.terminate(false, &mut self.rng)
            {
                step.send.push(w);
            }
            step.event(Event::Terminated {
                peer: o.est.peer().clone(),
                thread: o.est.thread().to_owned(),
                offline: o.offline,
                why: Ended::Presence,
            });
        }
        for n in self.negotiations.drain(..) {
            step.event(Event::Failed {
                peer: n.peer,
                failure: Failure::Negotiation(esession_negotiate::Error::ApiMisuse("we went offline")),
            });
        }
        self.unsent(&mut step);
        // The offline sessions accepted on the last return end with it: their kept state goes.
        self.forget_ended_offline();
        step
    }
}

/// Tells the application that content parked for the session of a crossing request was not
/// sent ([`Failure::NotSent`]), and gives it back.
fn not_sent(c: Carried, step: &mut Step) {
    tracing::info!(peer = %c.peer.to_bare(), thread = %c.thread, "content carried over a crossing request not sent: given back");
    step.event(Event::Failed { peer: c.peer, failure: Failure::NotSent { stanza: c.content } });
}

/// A chat message with `text` as its body (no `to`: the session's peer is set when sent).
#[must_use]
pub fn body_message(text: &str) -> Element {
    let mut m = Element::builder("message", CLIENT_NS)
        .append(Element::builder("body", CLIENT_NS).append(text))
        .build();
    set_attr(&mut m, "type", "chat");
    m
}

fn push_unprotected(step: &mut Step, peer: &Jid, elements: Vec<String>) {
    if !elements.is_empty() {
        step.event(Event::Unprotected { peer: peer.clone(), elements });
    }
}

fn push_message(
    step: &mut Step,
    peer: &Jid,
    thread: &str,
    stanza: Element,
    offline: bool,
    petname: Option<String>,
    clear: Vec<String>,
) {
    if is_empty_content(&stanza) {
        return;
    }
    step.event(Event::Message {
        peer: peer.clone(),
        thread: thread.to_owned(),
        stanza,
        offline,
        petname,
        clear,
        id: None,
    });
}

/// An empty re-key stanza carries nothing for the application.
fn is_empty_content(stanza: &Element) -> bool {
    stanza.children().all(|c| c.name() == "thread")
}

/// The petname the user gave `key` (XEP-0116 §7.4), for the events that name its owner.
fn petname_of(trust: &dyn TrustStore, key: Option<&esession_crypto::PublicKey>) -> Option<String> {
    key.and_then(|k| trust.record(k)).and_then(|r| r.petname.clone())
}
