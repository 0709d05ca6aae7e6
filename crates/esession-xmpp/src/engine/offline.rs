//! XEP-0187 in the engine: Alice going offline and coming back (the withdraw first, then
//! presence, then the starts, §3.4), Bob's offline sessions (the options he was handed, his
//! outbox, the terminate when Alice comes online, §5).

use super::{
    Ended, Engine, Event, Failure, Inbox, Kept, KeptSession, MemoryInbox, MessageId, Open, Step, set_attr,
};
use crate::Error;
use chrono::{DateTime, Utc};
use esession_crypto::PublicKey;
use esession_forms::names::{Compress, StanzaType};
use esession_forms::xml;
use esession_negotiate::{BareJid, Jid, KeyRecord, PooledEntropy, StoreError, StoreErrorKind, TrustStore};
use esession_offline::away::{Published, go_offline};
use esession_offline::publish::{Plan, Secrets};
use esession_offline::replay::ReplayStore;
use esession_offline::{Audience, pep, receive, send};
use minidom::Element;
use std::collections::{HashMap, HashSet};

use super::Limits;

/// What a held stanza costs against [`Limits::queue_octets`]: its names, attributes and text,
/// and a fixed amount per element for the tree that holds them.
pub(crate) fn held_cost(shape: xml::Shape) -> usize {
    shape.octets.saturating_add(shape.elements.saturating_mul(256))
}

/// How long the subscribers' secrets stay in memory after the return, for the starts the
/// server stored to arrive (then they are dropped, and zeroized; XEP-0187 §3.4 step 2 destroys
/// the stored copy at once).
const RETURN_WINDOW_SECS: i64 = 300;

/// The replay store as an offline start's checks see it: what the store holds, and the
/// entries the start would record, staged (written by the engine after the start's content is
/// kept in the inbox).
struct Staged<'a> {
    inner: &'a (dyn ReplayStore + Send),
    keys: Vec<(Vec<u8>, DateTime<Utc>)>,
}

impl ReplayStore for Staged<'_> {
    fn seen(&self, key: &[u8], now: DateTime<Utc>) -> bool {
        self.inner.seen(key, now) || self.keys.iter().any(|(k, e)| k == key && now <= *e)
    }

    fn record(
        &mut self,
        keys: &[Vec<u8>],
        expires: DateTime<Utc>,
    ) -> Result<(), esession_negotiate::StoreError> {
        self.keys.extend(keys.iter().map(|k| (k.clone(), expires)));
        Ok(())
    }

    fn purge(&mut self, _now: DateTime<Utc>) -> Result<(), esession_negotiate::StoreError> {
        Ok(())
    }
}

/// The trust store as the second look at an offline start whose only fault may be its key
/// sees it: every key is taken as trusted, so that every other check (M_B, the signature with
/// the key Bob presented, the content's MAC) runs as usual. What it accepts is never delivered
/// as such: it is held ([`Event::Untrusted`]) until the user trusts that key. Read only.
struct AnyKey<'a>(&'a dyn TrustStore);

impl TrustStore for AnyKey<'_> {
    fn for_jid(&self, jid: &BareJid) -> Vec<&KeyRecord> {
        self.0.for_jid(jid)
    }

    fn record(&self, key: &PublicKey) -> Option<&KeyRecord> {
        self.0.record(key)
    }

    fn records(&self) -> Vec<&KeyRecord> {
        self.0.records()
    }

    fn trusts(&self, _jid: &BareJid, _key: &PublicKey) -> bool {
        true
    }

    fn associate(&mut self, _jid: &BareJid, _key: PublicKey) -> Result<(), StoreError> {
        Err(StoreError::new(
            StoreErrorKind::Other,
            "the offline start's second look changes no key association",
        ))
    }

    fn sas_confirmed(&self, jid: &BareJid) -> bool {
        self.0.sas_confirmed(jid)
    }

    fn confirm_sas(&mut self, _jid: &BareJid) -> Result<(), StoreError> {
        Err(StoreError::new(StoreErrorKind::Other, "the offline start's second look confirms no SAS"))
    }
}

/// An offline session Alice accepted whose key awaits the user's decision: its later stanzas
/// are held too.
struct HeldSession {
    peer: BareJid,
    thread: String,
    key: PublicKey,
}

/// What the engine knows of an offline session Alice accepted, besides the session.
pub(crate) struct Accepted {
    /// The base of its messages' ids ([`MessageId`]), which also names its kept state.
    pub(crate) base: [u8; 32],
    /// The place of its next message.
    pub(crate) next: u32,
    /// When it ends at the latest: the expiry of the options its start answered.
    pub(crate) until: DateTime<Utc>,
    /// The replay entries of its start (kept with its state, for recovery).
    pub(crate) replay: Vec<(Vec<u8>, DateTime<Utc>)>,
    /// The key its start was signed with, when that key was not trusted (held).
    pub(crate) untrusted: Option<PublicKey>,
    /// The digests of the stanzas it took ([`super::inbox::taken_digest`]): a copy handed
    /// over again is ignored.
    pub(crate) taken: HashSet<[u8; 16]>,
}

/// Marker for the engine's offline mode in harnesses: stanzas are held while away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Away;

#[derive(Default)]
pub(crate) struct State {
    /// Stanzas held while away (only when going offline with `hold`).
    held: Option<Vec<Element>>,
    /// What the held stanzas cost, by [`held_cost`].
    held_octets: usize,
    /// Stanzas dropped because the queue was full, since the engine was made.
    held_dropped: u64,
    /// Offline option sets whose starts are accepted: (secrets, until when).
    sets: Vec<(Secrets, DateTime<Utc>)>,
    /// Bob: the options each contact published, as handed over (verified again at each start).
    fetched: HashMap<BareJid, Element>,
    /// Open offline sessions held for a trust decision ([`Event::Untrusted`]).
    held_sessions: Vec<HeldSession>,
    /// Messages held for a trust decision when the engine has no inbox (nothing survives the
    /// process; with an inbox they are kept there).
    pub(crate) held_here: MemoryInbox,
    /// The offline sessions whose state the inbox keeps ([`KeptSession`], by id base): each is
    /// forgotten there once no open session has it ([`Engine::forget_ended_offline`]).
    kept_sessions: HashSet<[u8; 32]>,
    /// Kept sessions that could not be opened again, told by the next [`Engine::tick`].
    pub(crate) unreadable: Vec<Event>,
}

impl State {
    pub(crate) fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Holds a stanza of `shape` (as measured on arrival); true when it had to be dropped:
    /// the queue holds [`Limits::queue`] stanzas and [`Limits::queue_octets`] at most.
    pub(crate) fn hold(&mut self, s: Element, shape: xml::Shape, limits: &Limits) -> bool {
        let cost = held_cost(shape);
        match self.held.as_mut() {
            Some(q)
                if q.len() < limits.queue && self.held_octets.saturating_add(cost) <= limits.queue_octets =>
            {
                q.push(s);
                self.held_octets += cost;
                false
            }
            _ => {
                self.held_dropped += 1;
                xml::dispose(s);
                true
            }
        }
    }

    /// Takes the held stanzas (the queue is empty afterwards; holding stops).
    fn take_held(&mut self) -> Vec<Element> {
        self.held_octets = 0;
        self.held.take().unwrap_or_default()
    }

    /// The key the open offline session (`peer`, `thread`) is held for, if it is.
    pub(crate) fn held_key(&self, peer: &Jid, thread: &str) -> Option<PublicKey> {
        self.held_sessions
            .iter()
            .find(|h| h.thread == thread && super::of(peer, &h.peer))
            .map(|h| h.key.clone())
    }

    /// Drops the sets past their time (their secrets are zeroized with them).
    pub(crate) fn expire(&mut self, now: DateTime<Utc>) {
        self.sets.retain(|(_, until)| now <= *until);
    }
}

impl Engine {
    /// Alice's plan for her offline options from this engine's configuration: the identity
    /// keys that sign them, how long they stay valid, the resource that may receive.
    ///
    /// # Errors
    /// [`Error::Config`] without an identity key (options must be signed).
    pub fn plan(
        &self,
        keys: Vec<esession_crypto::PrivateKey>,
        lifetime: chrono::Duration,
        match_resource: Option<String>,
    ) -> Result<Plan, Error> {
        if keys.is_empty() {
            return Err(Error::Config("offline options need an identity key (run `esession keygen`)".into()));
        }
        Ok(Plan {
            profile: self.cfg.profile,
            provider: self.cfg.provider.clone(),
            logging: self.cfg.logging.clone(),
            compress: vec![Compress::None],
            stanzas: self.cfg.stanzas.iter().filter(|s| **s != StanzaType::Iq).cloned().collect(),
            rekey_freq: self.cfg.rekey_freq,
            keys,
            lifetime,
            match_resource,
        })
    }

    /// Alice goes offline (XEP-0187 §3.1): every session ends first (XEP-0116 §5), then the
    /// options of each audience are prepared. The step holds the terminates and the PEP IQs
    /// (node creation, publish) in order; the [`Published`] sets hold the secrets, which the
    /// caller keeps (sealed, [`Secrets::seal`]) until [`Engine::come_back`]. With `hold`, the
    /// engine then holds every stanza it is handed until the return (a harness without a
    /// server to store them).
    ///
    /// # Errors
    /// The plan cannot be published.
    pub fn go_offline(
        &mut self,
        now: DateTime<Utc>,
        plan: &Plan,
        audiences: &[Audience],
        hold: bool,
    ) -> Result<(Step, Vec<Published>), Error> {
        let mut step = self.terminate_all();
        let sets = go_offline(
            plan,
            audiences,
            now,
            &mut PooledEntropy { rng: &mut self.rng, pool: &mut self.pool.as_ref() },
        )
        .map_err(Error::Offline)?;
        for p in &sets {
            step.send.extend(p.iqs.iter().cloned());
        }
        // X187-6.1-01: the sets of an earlier absence are destroyed (zeroized) now: only the
        // new N_A and x answer starts from here on.
        self.offline.sets.clear();
        if hold {
            self.offline.held = Some(Vec::new());
        }
        Ok((step, sets))
    }

    /// Alice comes back (XEP-0187 §3.4), in the order the specification gives: first the
    /// withdraw of the subscribers' options (Example 8; with `announce`, on a real server,
    /// also the deletion of their node, for servers that refuse an empty item), then (with
    /// `announce`) her available presence,
    /// then what arrived while she was away: the starts are checked against the sets given
    /// here, which stay in memory for the stored starts to arrive (the subscribers' for five
    /// minutes, the everyone set until it expires), then are dropped.
    ///
    /// # Errors
    /// None yet: the replay store's failures are reported per start ([`Failure::Offline`]).
    pub fn come_back(
        &mut self,
        now: DateTime<Utc>,
        subscribers: Option<Secrets>,
        everyone: Option<Secrets>,
        announce: bool,
    ) -> Result<Step, Error> {
        let mut step = Step::default();
        // X187-3.4-01: stop publishing for subscribers before anything else.
        step.send.push(pep::withdraw(Audience::Subscribers, &super::new_thread(&mut self.rng)));
        if announce {
            step.send.push(pep::delete_node(Audience::Subscribers, &super::new_thread(&mut self.rng)));
            step.send.push(Element::bare("presence", "jabber:client"));
        }
        if let Some(s) = subscribers {
            let until = (now + chrono::Duration::seconds(RETURN_WINDOW_SECS)).min(s.expires);
            self.offline.sets.push((s, until));
        }
        if let Some(s) = everyone {
            let until = s.expires;
            self.offline.sets.push((s, until));
        }
        for s in self.offline.take_held() {
            let Some(from) = s.attr("from").and_then(|f| Jid::new(f).ok()) else { continue };
            let inner = self.route(now, &from, &s);
            step.append(inner);
        }
        Ok(step)
    }

    /// Whether the engine holds stanzas (away, in a harness).
    #[must_use]
    pub fn is_away(&self) -> bool {
        self.offline.holding()
    }

    /// How many stanzas are held.
    #[must_use]
    pub fn held(&self) -> usize {
        self.offline.held.as_ref().map_or(0, Vec::len)
    }

    /// How many stanzas were dropped because the queue was full ([`Limits::queue`],
    /// [`Limits::queue_octets`]) since the engine was made; each was also reported as
    /// [`Failure::QueueFull`].
    #[must_use]
    pub fn held_dropped(&self) -> u64 {
        self.offline.held_dropped
    }

    /// An offline start (XEP-0187 §3.3) from `from`: checked against the sets we hold, in the
    /// order of I27; every failure is silent. Its replay entries are staged during the checks
    /// and written only after its content is kept in the inbox (see [`Inbox`](super::Inbox) for why
    /// this order makes a crash at any point harmless).
    pub(super) fn on_offline_start(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element) -> Step {
        let mut step = Step::default();
        let mut why = esession_offline::Check::UnknownNonce;
        let mut accepted = None;
        // Whether the start verified only once its key was taken as trusted: then it is held.
        let mut held = false;
        let mut staged = Staged { inner: self.stores.replay.as_ref(), keys: Vec::new() };
        let trust = self.stores.trust.as_ref();
        // The expiry of the options the start answered: its session ends then at the latest.
        let mut until = now;
        for (secrets, _) in &self.offline.sets {
            until = secrets.expires;
            match receive::accept(secrets, s, now, self.cfg.profile, trust, &mut staged) {
                Ok(done) => {
                    accepted = Some(done);
                    break;
                }
                // Another set may have published this nonce.
                Err(esession_offline::Error::Refused(esession_offline::Check::UnknownNonce)) => {}
                // The key Bob presented is not trusted for him: a second look with every key
                // taken as trusted, so that the message is held for the user's decision, not
                // lost, when nothing else is wrong (the MAC over his identity, his signature
                // with that key, the content's MAC all verify). Nothing has been staged yet:
                // the first look failed before recording.
                Err(esession_offline::Error::Refused(esession_offline::Check::KeyTrust)) => {
                    match receive::accept(secrets, s, now, self.cfg.profile, &AnyKey(trust), &mut staged) {
                        Ok(done) => {
                            held = true;
                            accepted = Some(done);
                        }
                        Err(esession_offline::Error::Refused(c)) => why = c,
                        Err(_) => why = esession_offline::Check::Form,
                    }
                    break;
                }
                Err(esession_offline::Error::Refused(c)) => {
                    why = c;
                    break;
                }
                Err(_) => {
                    why = esession_offline::Check::Form;
                    break;
                }
            }
        }
        let replay = staged.keys;
        if let Some((mut session, content)) = accepted {
            // X187-4-01: Alice never sends in it: her send keys go at once.
            session.receive_only();
            let thread = session.thread().to_owned();
            // Held: the key it is held for (never missing: a start identifies with a key).
            let untrusted = if held { session.peer_key().cloned() } else { None };
            if held && untrusted.is_none() {
                step.event(Event::Failed {
                    peer: from.clone(),
                    failure: Failure::Offline(esession_offline::Check::KeyTrust),
                });
                return step;
            }
            // A key taken on first use ([`Engine::set_trust_on_first_use`]) is remembered
            // (XEP-0116 §7.4) before anything is told from it, as an online negotiation does:
            // another key under the same JID (a later start of the same return, say) is then no
            // first use any more, and is held.
            if !held
                && let Some(key) = session.peer_key()
                && !self.stores.trust.record(key).is_some_and(|r| r.jids.contains(&from.to_bare()))
                && let Err(e) = self.stores.trust.associate(&from.to_bare(), key.clone())
            {
                step.event(Event::Failed { peer: from.clone(), failure: Failure::Store(e) });
                return step;
            }
            let petname = super::petname_of(self.stores.trust.as_ref(), session.peer_key());
            let base = super::inbox::id_base(&replay);
            // 1. The content kept (with the replay entries, for recovery) and, for a session
            // that goes on, its receiving state, in one write; 2. the replay entries recorded;
            // 3. the application told. A store failure refuses the start (nothing told; a
            // kept message is told after a restart, a kept session opened again).
            let mut told = Step::default();
            let k = content.map(|c| {
                super::push_unprotected(&mut told, from, c.unprotected);
                Kept {
                    id: MessageId::derive(&base, 0),
                    peer: from.clone(),
                    thread: thread.clone(),
                    stanza: c.stanza,
                    petname: petname.clone(),
                    clear: c.clear,
                    replay: replay.clone(),
                    untrusted: untrusted.clone(),
                }
            });
            let a = Accepted {
                base,
                next: 1,
                until,
                replay: replay.clone(),
                untrusted: untrusted.clone(),
                taken: HashSet::new(),
            };
            let kept = self.kept_session(&session, &a);
            match self.keep_offline_with(k.as_ref(), kept.as_ref(), None) {
                Ok(fresh) => {
                    if let Some(k) = k
                        && fresh
                        && !super::is_empty_content(&k.stanza)
                    {
                        told.event(self.told(&k));
                    }
                }
                Err(failure) => {
                    step.event(Event::Failed { peer: from.clone(), failure });
                    return step;
                }
            }
            if kept.is_some() {
                self.offline.kept_sessions.insert(base);
            }
            // X187-6.1-02 X187-6.1-03: d and N_B recorded durably before anything is told.
            if let Err(e) = self.stores.replay.record_all(&replay) {
                step.event(Event::Failed { peer: from.clone(), failure: Failure::Store(e) });
                return step;
            }
            // A held session is not told as a session: its messages are told as held.
            if !held {
                step.event(Event::Negotiated {
                    peer: session.peer().clone(),
                    thread: thread.clone(),
                    sas: None,
                    offline: true,
                    petname,
                });
            }
            step.append(told);
            self.open(now, Box::new(session), true, &mut step);
            if let Some(o) = self.sessions.iter_mut().rev().find(|o| o.offline && o.est.thread() == thread) {
                o.accepted = Some(Box::new(a));
            }
            // The held sessions that ended are forgotten here, and so is any under this
            // session's thread (a new start opens its session afresh).
            let sessions = &self.sessions;
            self.offline.held_sessions.retain(|h| {
                !(h.thread == thread && super::of(from, &h.peer))
                    && sessions
                        .iter()
                        .any(|o| o.offline && o.est.thread() == h.thread && super::of(o.est.peer(), &h.peer))
            });
            if let Some(key) = untrusted {
                // Its later stanzas are held too (in order, after this one).
                if self.sessions.iter().any(|o| o.offline && o.est.thread() == thread) {
                    self.offline.held_sessions.push(HeldSession { peer: from.to_bare(), thread, key });
                }
            }
            return step;
        }
        // X187-3.4-05 X187-3.4-07: refused without an error.
        step.event(Event::Failed { peer: from.clone(), failure: Failure::Offline(why) });
        step
    }

    /// Keeps an offline message before it is told: in the inbox; without an inbox, a message
    /// held for a trust decision is kept in memory (it must wait for the decision), any other
    /// is not kept. False when it was kept already (not to be told again). A message to hold
    /// when [`Limits::held`] are held already is refused ([`Failure::HeldFull`]).
    /// With `session` (only with an inbox), the state of the offline session `k` came in is
    /// kept in the same write, with the digest of its stanza ([`Inbox::keep_in_session`]).
    /// True without `k`.
    pub(super) fn keep_offline_with(
        &mut self,
        k: Option<&Kept>,
        session: Option<&KeptSession>,
        taken: Option<&[u8; 16]>,
    ) -> Result<bool, Failure> {
        if let Some(k) = k
            && k.untrusted.is_some()
        {
            let held = self.all_kept().map_err(Failure::Store)?.iter().filter(|k| self.is_held(k)).count();
            if held >= self.limits.held {
                return Err(Failure::HeldFull);
            }
        }
        match (self.inbox.as_mut(), k, session) {
            (Some(inbox), k, Some(s)) => inbox.keep_in_session(k, s, taken),
            (Some(inbox), Some(k), None) => inbox.keep(k),
            (None, Some(k), _) if k.untrusted.is_some() => self.offline.held_here.keep(k),
            _ => Ok(true),
        }
        .map_err(Failure::Store)
    }

    /// What the inbox keeps of the offline session `est` ([`KeptSession`]) as it is now: none
    /// without an inbox, for a session that ended, or one whose state is not kept (a
    /// compression context: Alice offers none offline).
    fn kept_session(&self, est: &esession_negotiate::Established, a: &Accepted) -> Option<KeptSession> {
        if self.inbox.is_none() || est.phase() == esession_negotiate::Phase::Closed {
            return None;
        }
        let state = match est.export_receiving() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "an offline session's state is not kept");
                return None;
            }
        };
        Some(KeptSession {
            base: a.base,
            next: a.next,
            peer: est.peer().clone(),
            until: a.until,
            replay: a.replay.clone(),
            untrusted: a.untrusted.clone(),
            taken: Vec::new(),
            state,
        })
    }

    /// A later stanza of the offline session at `i`, decrypted (the session moved on): kept
    /// with the session's new state and the stanza's digest in one write, then told. When the
    /// write fails, the failure is told and the session goes on (that stanza is lost, not the
    /// ones after it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take_offline(
        &mut self,
        i: usize,
        from: &Jid,
        stanza: Element,
        petname: Option<String>,
        clear: Vec<String>,
        untrusted: Option<PublicKey>,
        digest: Option<[u8; 16]>,
        step: &mut Step,
    ) {
        let o = &self.sessions[i];
        let Some(a) = o.accepted.as_deref() else { return };
        let k = Kept {
            id: MessageId::derive(&a.base, a.next),
            peer: from.clone(),
            thread: o.est.thread().to_owned(),
            stanza,
            petname,
            clear,
            replay: Vec::new(),
            // A session held for a trust decision holds all its stanzas.
            untrusted,
        };
        let base = a.base;
        let after = Accepted {
            base,
            next: a.next.saturating_add(1),
            until: a.until,
            replay: Vec::new(),
            untrusted: a.untrusted.clone(),
            taken: HashSet::new(),
        };
        let kept = self.kept_session(&o.est, &Accepted { replay: a.replay.clone(), ..after });
        let content = !super::is_empty_content(&k.stanza);
        // An empty stanza (a bare re-key) carries no message: only the session's state is kept.
        match self.keep_offline_with(content.then_some(&k), kept.as_ref(), digest.as_ref()) {
            Ok(fresh) => {
                if let Some(a) = self.sessions[i].accepted.as_deref_mut() {
                    a.next = a.next.saturating_add(1);
                    a.taken.extend(digest);
                }
                if kept.is_some() {
                    self.offline.kept_sessions.insert(base);
                }
                if fresh && content {
                    step.event(self.told(&k));
                }
            }
            Err(failure) => {
                step.event(Event::Failed { peer: from.clone(), failure });
                // This stanza is lost (and told); the session goes on from where it is, so that
                // its later stanzas still decrypt: the server does not hand this one over again
                // on this connection (stream management acknowledged it). Rolling the session
                // back to what the inbox keeps lost every later stanza instead (their counters
                // no longer matched). A copy handed over again is recognised by its digest; the
                // next write keeps the whole state.
                if let Some(a) = self.sessions[i].accepted.as_deref_mut() {
                    a.next = a.next.saturating_add(1);
                    a.taken.extend(digest);
                }
            }
        }
    }

    /// Opens again an offline session the inbox kept ([`Engine::set_inbox`]).
    pub(super) fn reopen_offline(&mut self, k: KeptSession) {
        self.offline.kept_sessions.insert(k.base);
        if self.sessions.iter().any(|o| o.accepted.as_ref().is_some_and(|a| a.base == k.base)) {
            return;
        }
        let est = match esession_negotiate::Established::import_receiving(k.state.expose_secret()) {
            Ok(est) => est,
            Err(e) => {
                // Not opened: forgotten by the next sweep, and told.
                self.offline.unreadable.push(Event::Failed {
                    peer: k.peer.clone(),
                    failure: Failure::Store(
                        StoreError::new(
                            StoreErrorKind::Corrupt,
                            "a kept offline session cannot be opened again: its later stanzas are lost",
                        )
                        .with_source(e),
                    ),
                });
                return;
            }
        };
        if let Some(key) = &k.untrusted {
            self.offline.held_sessions.push(HeldSession {
                peer: est.peer().to_bare(),
                thread: est.thread().to_owned(),
                key: key.clone(),
            });
        }
        self.sessions.push(Open {
            est: Box::new(est),
            offline: true,
            // Reopened before any tick: as recent as the newest session, not the epoch (the
            // least recently used is the first evicted when `Limits::sessions` is reached, and
            // a stranger opening sessions must not push a kept one out first).
            used: self.ticked.unwrap_or(DateTime::<Utc>::MAX_UTC),
            terminating_since: None,
            accepted: Some(Box::new(Accepted {
                base: k.base,
                next: k.next,
                until: k.until,
                replay: k.replay,
                untrusted: k.untrusted,
                taken: k.taken.into_iter().collect(),
            })),
        });
    }

    /// Forgets in the inbox the kept state of every offline session that is no longer open
    /// (ended by the peer, a failure, its expiry, going offline again, a refused key). What
    /// cannot be forgotten now is tried again at the next call (and opened again after a
    /// restart until then: harmless, nothing of it is told twice).
    pub(super) fn forget_ended_offline(&mut self) {
        if self.offline.kept_sessions.is_empty() {
            return;
        }
        let open: HashSet<[u8; 32]> =
            self.sessions.iter().filter_map(|o| o.accepted.as_ref().map(|a| a.base)).collect();
        let ended: Vec<[u8; 32]> =
            self.offline.kept_sessions.iter().filter(|b| !open.contains(*b)).copied().collect();
        for base in ended {
            let Some(inbox) = self.inbox.as_mut() else {
                self.offline.kept_sessions.remove(&base);
                continue;
            };
            match inbox.forget_session(&base) {
                Ok(_) => {
                    self.offline.kept_sessions.remove(&base);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a kept offline session could not be forgotten yet");
                }
            }
        }
    }

    /// Whether a kept message is held: its key is not trusted for its sender. Trusted means
    /// associated in the store (the user's decision, or a pin): not the first-use view of
    /// [`Engine::set_trust_on_first_use`], under which any key of a contact with no key yet
    /// passes, which would release held messages of any key, unpinned, without a decision.
    fn is_held(&self, k: &Kept) -> bool {
        let bare = k.peer.to_bare();
        k.untrusted
            .as_ref()
            .is_some_and(|key| !self.stores.trust.record(key).is_some_and(|r| r.jids.contains(&bare)))
    }

    /// Every kept offline message, in the order kept.
    pub(super) fn all_kept(&self) -> Result<Vec<Kept>, StoreError> {
        let mut all = match self.inbox.as_ref() {
            Some(inbox) => inbox.held()?,
            None => Vec::new(),
        };
        all.extend(self.offline.held_here.held()?);
        Ok(all)
    }

    /// How a kept message is told: as [`Event::Untrusted`] while the key it is held for is not
    /// trusted for its sender, else as the [`Event::Message`] it is.
    pub(super) fn told(&self, k: &Kept) -> Event {
        match &k.untrusted {
            Some(key) if self.is_held(k) => k.held_event(key),
            _ => k.event(),
        }
    }

    /// The messages held for a trust decision ([`Event::Untrusted`]), in the order they
    /// arrived (also part of [`Engine::unacknowledged`]).
    ///
    /// # Errors
    /// The inbox cannot be read.
    pub fn held_untrusted(&self) -> Result<Vec<Event>, Error> {
        Ok(self
            .all_kept()
            .map_err(Error::Store)?
            .iter()
            .map(|k| self.told(k))
            .filter(|e| matches!(e, Event::Untrusted { .. }))
            .collect())
    }

    /// The user compared `key`'s fingerprint with `peer` and trusts it: the key is associated
    /// with `peer` in the trust store (XEP-0116 §7.4), and every offline message held for it
    /// ([`Event::Untrusted`]) is delivered now, in the order it arrived, as the
    /// [`Event::Message`] (offline, same id) it would have been had the key been trusted when
    /// it came. They stay in the inbox until acknowledged ([`Engine::ack`]), like every offline
    /// message; later stanzas of their sessions are delivered as they come. Nothing is
    /// delivered as protected before this call (or, in another process, before the key is
    /// trusted in the account: [`crate::Account::trust`], then [`Engine::unacknowledged`]).
    ///
    /// # Errors
    /// The trust store or the inbox failed: nothing is delivered.
    pub fn trust_held(&mut self, peer: &BareJid, key: &PublicKey) -> Result<Step, Error> {
        // X116-7.4-01 (the user's decision): the association is recorded before anything is
        // told from it.
        self.stores.trust.associate(peer, key.clone()).map_err(Error::Store)?;
        self.offline.held_sessions.retain(|h| !(h.peer == *peer && h.key == *key));
        let mut step = Step::default();
        for k in self.all_kept().map_err(Error::Store)? {
            if k.untrusted.as_ref() == Some(key)
                && k.peer.to_bare() == *peer
                && !super::is_empty_content(&k.stanza)
            {
                step.event(k.event());
            }
        }
        Ok(step)
    }

    /// The user refuses `key` for `peer`: every offline message held for it is dropped (never
    /// delivered), and the held sessions it signed end without a word to anyone (XEP-0187
    /// §3.4: Alice answers nothing). Returns how many messages were dropped.
    ///
    /// # Errors
    /// The inbox could not be updated (what was not dropped stays held).
    pub fn refuse_held(&mut self, peer: &BareJid, key: &PublicKey) -> Result<usize, Error> {
        let mut dropped = 0;
        for k in self.all_kept().map_err(Error::Store)? {
            if k.untrusted.as_ref() == Some(key) && k.peer.to_bare() == *peer {
                self.ack(&k.id)?;
                dropped += 1;
            }
        }
        let gone: Vec<HeldSession> = {
            let (gone, kept) = std::mem::take(&mut self.offline.held_sessions)
                .into_iter()
                .partition(|h| h.peer == *peer && h.key == *key);
            self.offline.held_sessions = kept;
            gone
        };
        self.sessions.retain(|o| {
            !(o.offline
                && gone.iter().any(|h| h.thread == o.est.thread() && super::of(o.est.peer(), &h.peer)))
        });
        self.forget_ended_offline();
        Ok(dropped)
    }

    // ------------------------------------------------------------------------------------------
    // Bob

    /// Bob was handed `peer`'s offline options (fetched from PEP, XEP-0187 §3.2): they are
    /// verified now (a trusted signature, not expired) and kept for [`Engine::offline_start`].
    /// The event says whether they are usable.
    pub fn offline_options(&mut self, now: DateTime<Utc>, peer: &BareJid, x: &Element) -> Event {
        let refused = match send::verify(x, peer, self.stores.trust.as_ref(), now, self.cfg.profile) {
            Ok(_) => {
                self.offline.fetched.insert(peer.clone(), x.clone());
                None
            }
            Err(esession_offline::Error::Refused(c)) => Some(c),
            Err(_) => Some(esession_offline::Check::Form),
        };
        Event::OfflineOptions { peer: peer.clone(), refused }
    }

    /// Which of `peer`'s option sets to ask its server for, in order (XEP-0187 §3.2). The
    /// caller sends [`pep::items_request`] for each in turn and hands the first options found
    /// to [`Engine::offline_options`].
    #[must_use]
    pub fn options_audiences(&self, peer: &BareJid) -> Vec<Audience> {
        if self.subscribed_to(peer) {
            // X187-3.2-02: a presence subscriber asks for the subscribers' options;
            // X187-3.2-03: the everyone set only when there are none for subscribers.
            vec![Audience::Subscribers, Audience::Everyone]
        } else {
            // X187-3.2-03: without a subscription we know of, the request a non-subscriber must
            // use; the subscribers' node after it (the server refuses it unless we subscribe).
            vec![Audience::Everyone, Audience::Subscribers]
        }
    }

    /// Whether options of `peer` are held for an offline start.
    #[must_use]
    pub fn has_offline_options(&self, peer: &BareJid) -> bool {
        self.offline.fetched.contains_key(peer)
    }

    /// Bob starts an offline session with `peer` from the options he was handed, carrying
    /// `content` (a stanza whose children are the content); with `terminate`, object
    /// encryption. Returns the start to send.
    ///
    /// # Errors
    /// [`Error::NoOfflineOptions`] without options; [`Error::Offline`] when they no longer
    /// verify or cannot be satisfied, or a session is already open.
    pub fn offline_start(
        &mut self,
        now: DateTime<Utc>,
        peer: &BareJid,
        content: Element,
        terminate: bool,
    ) -> Result<Step, Error> {
        // X187-3-02: never an offline session while an (online) ESession with the contact is
        // established; the outbox refuses a second offline one.
        if self.active(peer).is_some() {
            return Err(Error::Offline(esession_offline::Error::Config(
                "an online session with this contact is established: send in it",
            )));
        }
        let x = self
            .offline
            .fetched
            .get(peer)
            .cloned()
            .ok_or_else(|| Error::NoOfflineOptions { peer: peer.clone(), condition: None })?;
        let v = send::verify(&x, peer, self.stores.trust.as_ref(), now, self.cfg.profile)
            .map_err(Error::Offline)?;
        // The key whose signature verified the options: its petname names Alice.
        let petname = super::petname_of(self.stores.trust.as_ref(), v.signer());
        let thread = super::new_thread(&mut self.rng);
        let w = self
            .outbox
            .start(
                v,
                &self.cfg,
                &thread,
                Some(content),
                terminate,
                now,
                &mut PooledEntropy { rng: &mut self.rng, pool: &mut self.pool.as_ref() },
            )
            .map_err(Error::Offline)?;
        let mut step = Step::default();
        let to = w.attr("to").and_then(|t| Jid::new(t).ok()).unwrap_or_else(|| Jid::from(peer.clone()));
        step.send.push(w);
        step.event(Event::Negotiated {
            peer: to.clone(),
            thread: thread.clone(),
            sas: None,
            offline: true,
            petname,
        });
        if terminate {
            step.event(Event::Terminated { peer: to, thread, offline: true, why: Ended::Object });
        }
        Ok(step)
    }

    /// Bob: a later stanza of the open offline session with `peer`, at `now` (addressed and
    /// marked as the start was, whatever `to` `content` has).
    ///
    /// # Errors
    /// No offline session is open; [`Error::Offline`] with
    /// [`esession_offline::Check::OptionsExpired`] once Alice's options have expired (the
    /// session is closed).
    pub fn offline_send(
        &mut self,
        now: DateTime<Utc>,
        peer: &BareJid,
        content: &Element,
    ) -> Result<Element, Error> {
        // X187-3.2-05: `Outbox::send` refuses after the options' expiry.
        self.outbox.send(peer, content, now, &mut self.rng).map_err(Error::Offline)
    }

    /// A chat message in the open offline session with `peer`, at `now`.
    ///
    /// # Errors
    /// As [`Engine::offline_send`].
    pub fn offline_chat(&mut self, now: DateTime<Utc>, peer: &BareJid, text: &str) -> Result<Element, Error> {
        let mut m = super::body_message(text);
        set_attr(&mut m, "type", "chat");
        self.offline_send(now, peer, &m)
    }

    /// Whether Bob has an offline session open with `peer`.
    #[must_use]
    pub fn has_offline_session(&self, peer: &BareJid) -> bool {
        self.outbox.has_session(peer)
    }

    /// Bob ends the offline session with `peer` (she came online, or he is done): the
    /// terminate to send (never acknowledged, XEP-0187 §5), if one was open and its options
    /// have not expired (after the expiry nothing encrypted is sent; the session ends all the
    /// same).
    pub fn end_offline(&mut self, now: DateTime<Utc>, peer: &BareJid) -> Step {
        let mut step = Step::default();
        let Some((to, thread)) = self.outbox.session(peer).map(|s| (s.peer().clone(), s.thread().to_owned()))
        else {
            return step;
        };
        // X187-5-01: terminated as soon as the contact is online.
        if let Ok(Some(w)) = self.outbox.contact_online(peer, now, &mut self.rng) {
            step.send.push(w);
        }
        step.event(Event::Terminated { peer: to, thread, offline: true, why: Ended::Presence });
        step
    }
}
