//! The sans-IO core of a client: every peer's negotiation and sessions, routed by bare JID and
//! thread, Bob's offline sessions (outbox) and Alice's return. [`crate::Client`] feeds it the
//! stanzas a real connection delivers and sends what it returns; tests can drive it directly.

use crate::Error;
use crate::KeyPool;
use esession_crypto::PrivateKey;
use esession_forms::esession::Wrapper;
use esession_forms::names::{Compress, StanzaType};
use esession_negotiate::{
    Config, Established, Initiator, Mode, Output, PooledEntropy, Received, Responder, RetainedStore, Stores,
    TrustStore, bare,
};
use esession_offline::away::{Outbox, Returned, come_back};
use esession_offline::publish::{Plan, Secrets};
use esession_offline::replay::ReplayStore;
use esession_offline::send::Verified;
use esession_stanza::EncryptOptions;
use minidom::Element;
use std::fmt;
use std::sync::Arc;

/// The operating system's CSPRNG.
pub(crate) type Rng = getrandom::rand_core::UnwrapErr<getrandom::SysRng>;

pub(crate) fn os_rng() -> Rng {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

/// Something the application must know. `Debug` never shows message content.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// A session with `peer` is established. `sas` is the short authentication string of a
    /// 4-message negotiation, to compare with the peer out of band.
    Negotiated {
        /// The peer's full JID.
        peer: String,
        /// The session's thread.
        thread: String,
        /// The SAS (4-message negotiations only).
        sas: Option<String>,
        /// An offline (XEP-0187) session.
        offline: bool,
    },
    /// A decrypted stanza from `peer`.
    Message {
        /// The sender's full JID.
        peer: String,
        /// The `<body/>` text, when the stanza has one.
        body: Option<String>,
        /// The whole decrypted stanza.
        stanza: Element,
    },
    /// A key-association or disclosure alert (XEP-0116 §7.4, §7.6).
    Alert {
        /// The peer concerned.
        peer: String,
        /// What happened.
        alert: String,
    },
    /// The session with `peer` ended.
    Terminated {
        /// The peer.
        peer: String,
        /// An offline session.
        offline: bool,
    },
    /// A negotiation or a stanza of a session failed; the session state learned was discarded.
    Failed {
        /// The peer.
        peer: String,
        /// The XMPP error condition (or `silent` for offline refusals, which send nothing).
        condition: String,
        /// A description without secrets.
        detail: String,
    },
    /// `peer` became available or unavailable.
    Presence {
        /// The peer's full JID.
        peer: String,
        /// Available (true) or gone (false).
        available: bool,
    },
    /// `peer` asks to see our presence; answer with [`crate::Client::approve`].
    SubscriptionRequest {
        /// The bare JID asking.
        peer: String,
    },
    /// Children that came in clear beside an encrypted stanza of a session, outside what
    /// XEP-0200 §5 leaves in clear: not covered by the MAC, so dropped and never part of a
    /// [`Event::Message`]. Someone between the peers added them, or the peer's client is broken.
    Unprotected {
        /// The peer of the session.
        peer: String,
        /// The dropped children's names (`{namespace}name` outside the stanza's namespace).
        elements: Vec<String>,
    },
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Message { peer, body, .. } => f
                .debug_struct("Message")
                .field("peer", peer)
                .field("body", &body.as_ref().map(|b| format!("<{} octets>", b.len())))
                .finish_non_exhaustive(),
            Event::Negotiated { peer, thread, sas, offline } => f
                .debug_struct("Negotiated")
                .field("peer", peer)
                .field("thread", thread)
                .field("sas", sas)
                .field("offline", offline)
                .finish(),
            Event::Alert { peer, alert } => {
                f.debug_struct("Alert").field("peer", peer).field("alert", alert).finish()
            }
            Event::Terminated { peer, offline } => {
                f.debug_struct("Terminated").field("peer", peer).field("offline", offline).finish()
            }
            Event::Failed { peer, condition, detail } => f
                .debug_struct("Failed")
                .field("peer", peer)
                .field("condition", condition)
                .field("detail", detail)
                .finish(),
            Event::Presence { peer, available } => {
                f.debug_struct("Presence").field("peer", peer).field("available", available).finish()
            }
            Event::SubscriptionRequest { peer } => {
                f.debug_struct("SubscriptionRequest").field("peer", peer).finish()
            }
            Event::Unprotected { peer, elements } => {
                f.debug_struct("Unprotected").field("peer", peer).field("elements", elements).finish()
            }
        }
    }
}

/// What one input caused: stanzas to send (in order) and events for the application.
#[derive(Debug, Default)]
pub struct Step {
    /// Stanzas for the server, in order.
    pub send: Vec<Element>,
    /// Events, in order.
    pub events: Vec<Event>,
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

/// A negotiation in progress.
struct Pending {
    peer: String,
    thread: String,
    machine: Machine,
    sas: Option<String>,
}

/// An established session (online, or an offline one Alice accepted: receive only).
struct Open {
    peer: String,
    est: Box<Established>,
    offline: bool,
}

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

/// Every session of one account.
pub struct Engine {
    cfg: Arc<Config>,
    stores: EngineStores,
    pending: Vec<Pending>,
    open: Vec<Open>,
    outbox: Outbox,
    rng: Rng,
    pool: Option<KeyPool>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("pending", &self.pending.len())
            .field("open", &self.open.len())
            .finish_non_exhaustive()
    }
}

fn now_secs(now: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

fn thread_of(s: &Element) -> Option<String> {
    s.get_child("thread", "jabber:client").map(Element::text)
}

fn failure_of(e: &esession_negotiate::Error) -> String {
    match e {
        esession_negotiate::Error::PeerMisbehaved { condition, .. } => condition.as_str().to_owned(),
        esession_negotiate::Error::Rejected { condition, .. } => {
            condition.clone().unwrap_or_else(|| "rejected".into())
        }
        esession_negotiate::Error::Stanza(se) => se.condition().unwrap_or("not-acceptable").to_owned(),
        _ => "undefined-condition".into(),
    }
}

/// A fresh thread id.
pub(crate) fn new_thread(rng: &mut Rng) -> String {
    let mut b = [0u8; 8];
    rand_core::Rng::fill_bytes(rng, &mut b);
    let tag: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("esession-{tag}")
}

impl Engine {
    /// An engine with `cfg` (offers, identity, profile) over `stores`.
    #[must_use]
    pub fn new(cfg: Config, stores: EngineStores) -> Self {
        Self {
            cfg: Arc::new(cfg),
            stores,
            pending: Vec::new(),
            open: Vec::new(),
            outbox: Outbox::new(),
            rng: os_rng(),
            pool: None,
        }
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

    /// Whether an active session with `peer` (any resource) exists.
    #[must_use]
    pub fn has_session(&self, peer: &str) -> bool {
        self.active(peer).is_some()
    }

    /// Whether a negotiation with `peer` is in progress.
    #[must_use]
    pub fn negotiating(&self, peer: &str) -> bool {
        self.pending.iter().any(|p| bare(&p.peer) == bare(peer) && !p.machine.is_done())
    }

    /// The SAS of the active session with `peer`, when it has one.
    #[must_use]
    pub fn sas(&self, peer: &str) -> Option<String> {
        self.active(peer).and_then(|i| self.open[i].est.sas.as_ref().map(ToString::to_string))
    }

    /// The user compared the SAS of the session with `peer` and found it equal: the key
    /// association is verified (XEP-0116 §7.4).
    ///
    /// # Errors
    /// No session with a SAS; the store failed.
    pub fn confirm_sas(&mut self, peer: &str) -> Result<(), Error> {
        if self.sas(peer).is_none() {
            return Err(Error::NotProtected(bare(peer).to_owned()));
        }
        self.stores.trust.confirm_sas(bare(peer)).map_err(|e| Error::Store(e.to_string()))
    }

    /// Whether Bob has an offline session open with `peer`.
    #[must_use]
    pub fn has_offline_session(&self, peer: &str) -> bool {
        self.outbox.has_session(peer)
    }

    fn active(&self, peer: &str) -> Option<usize> {
        self.open.iter().rposition(|o| {
            !o.offline && bare(&o.peer) == bare(peer) && o.est.phase() == esession_negotiate::Phase::Active
        })
    }

    /// Starts a negotiation with `peer` (a full JID): returns the request to send.
    ///
    /// # Errors
    /// The configuration cannot make a request.
    pub fn start(&mut self, peer: &str, mode: Mode) -> Result<Step, Error> {
        let thread = new_thread(&mut self.rng);
        let mut a = Initiator::new(self.cfg.clone(), peer, &thread);
        a.start(mode, &mut PooledEntropy { rng: &mut self.rng, pool: &mut self.pool.as_ref() })
            .map_err(|e| Error::Protocol(e.to_string()))?;
        self.pending.retain(|p| bare(&p.peer) != bare(peer));
        self.pending.push(Pending { peer: peer.to_owned(), thread, machine: Machine::Alice(a), sas: None });
        let mut step = Step::default();
        self.drain(&mut step);
        Ok(step)
    }

    fn drain(&mut self, step: &mut Step) {
        let mut finished = Vec::new();
        for (i, p) in self.pending.iter_mut().enumerate() {
            while let Some(o) = p.machine.poll_output() {
                match o {
                    Output::Send(s) => step.send.push(s),
                    Output::SasReady(sas) => p.sas = Some(sas.to_string()),
                    Output::Established(e) => {
                        let sas = e.sas.as_ref().map(ToString::to_string).or_else(|| p.sas.clone());
                        step.events.push(Event::Negotiated {
                            peer: p.peer.clone(),
                            thread: e.thread.clone(),
                            sas,
                            offline: false,
                        });
                        finished.push((i, Some(e)));
                    }
                    Output::Rejected(e) => {
                        step.events.push(Event::Failed {
                            peer: p.peer.clone(),
                            condition: failure_of(&e),
                            detail: e.to_string(),
                        });
                        finished.push((i, None));
                    }
                    Output::Alert(a) => {
                        step.events.push(Event::Alert { peer: p.peer.clone(), alert: format!("{a:?}") });
                    }
                    Output::Received { content, unprotected } => {
                        push_unprotected(step, &p.peer, unprotected);
                        push_message(step, &p.peer, content);
                    }
                    Output::StanzaSession { security } => step.events.push(Event::Failed {
                        peer: p.peer.clone(),
                        condition: "feature-not-implemented".into(),
                        detail: format!("the peer offered only a {security} stanza session"),
                    }),
                    _ => {}
                }
            }
            if p.machine.is_done() && !finished.iter().any(|(j, _)| *j == i) {
                finished.push((i, None));
            }
        }
        finished.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, est) in finished {
            let p = self.pending.remove(i);
            if let Some(est) = est {
                // One active session per peer: a new one replaces the old.
                self.open.retain(|o| bare(&o.peer) != bare(&p.peer) || o.offline);
                self.open.push(Open { peer: p.peer, est, offline: false });
            }
        }
    }

    /// Handles one stanza from the server.
    pub fn handle(&mut self, now: chrono::DateTime<chrono::Utc>, s: &Element) -> Step {
        let mut step = Step::default();
        let Some(from) = s.attr("from").map(str::to_owned) else { return step };
        let thread = thread_of(s);
        let negotiation = Wrapper::find(s).is_some();
        let encrypted = s.children().any(|c| c.name() == "c");
        let pending = self.pending.iter().position(|p| {
            bare(&p.peer) == bare(&from) && (thread.is_none() || thread.as_deref() == Some(p.thread.as_str()))
        });
        if negotiation && (pending.is_some() || !encrypted) {
            let i = match pending {
                Some(i) => i,
                None => {
                    // A new request: a new responder. A request without a <thread/> is not a
                    // session request (XEP-0155 §4.1): ignored.
                    let Some(thread) = thread else { return step };
                    let b = Responder::new(self.cfg.clone(), &from, &thread);
                    self.pending.retain(|p| bare(&p.peer) != bare(&from));
                    self.pending.push(Pending {
                        peer: from.clone(),
                        thread,
                        machine: Machine::Bob(b),
                        sas: None,
                    });
                    self.pending.len() - 1
                }
            };
            let p = &mut self.pending[i];
            p.peer.clone_from(&from);
            let mut stores =
                Stores { trust: self.stores.trust.as_mut(), retained: self.stores.retained.as_mut() };
            let mut pool = self.pool.as_ref();
            let mut entropy = PooledEntropy { rng: &mut self.rng, pool: &mut pool };
            let ts = now_secs(now);
            let _ = match &mut p.machine {
                Machine::Alice(a) => a.handle(ts, s, &mut entropy, &mut stores),
                Machine::Bob(b) => b.handle(ts, s, &mut entropy, &mut stores),
            };
            self.drain(&mut step);
            return step;
        }
        if s.attr("type") == Some("error") {
            let condition = esession_negotiate::wire::error_of(s)
                .and_then(|(c, _)| c)
                .unwrap_or_else(|| "undefined-condition".into());
            // An error about a negotiation ends it.
            self.pending.retain(|p| bare(&p.peer) != bare(&from));
            step.events.push(Event::Failed {
                peer: from,
                condition,
                detail: "error stanza from the peer".into(),
            });
            return step;
        }
        if !encrypted {
            return step;
        }
        let Some(i) = self.open.iter().rposition(|o| {
            bare(&o.peer) == bare(&from)
                && (thread.is_none() || thread.as_deref() == Some(o.est.thread.as_str()))
        }) else {
            step.events.push(Event::Failed {
                peer: from,
                condition: "item-not-found".into(),
                detail: "no session for this stanza".into(),
            });
            return step;
        };
        let o = &mut self.open[i];
        match o.est.receive(s, false, &mut self.rng) {
            Ok(Received::Stanza { stanza, unprotected }) => {
                push_unprotected(&mut step, &from, unprotected);
                push_message(&mut step, &from, stanza);
            }
            Ok(Received::Terminated { ack, .. }) => {
                step.send.extend(ack);
                step.events.push(Event::Terminated { peer: from, offline: o.offline });
                self.open.remove(i);
            }
            Err(e) => {
                step.events.push(Event::Failed {
                    peer: from,
                    condition: failure_of(&e),
                    detail: e.to_string(),
                });
                if o.est.session.is_closed() {
                    self.open.remove(i);
                }
            }
            Ok(_) => {}
        }
        step
    }

    /// Encrypts an outgoing one-to-one stanza inside the active session with its `to`.
    ///
    /// # Errors
    /// [`Error::NotProtected`] when there is no active session with the addressee: the stanza
    /// must not go out in clear by accident (XEP-0116 §4.1).
    // X116-4.1-04 X116-4.8.2-03: nothing one-to-one goes out in clear by accident.
    pub fn protect(&mut self, stanza: &Element, opts: EncryptOptions) -> Result<Element, Error> {
        let to = stanza.attr("to").unwrap_or_default().to_owned();
        let i = self.active(&to).ok_or_else(|| Error::NotProtected(bare(&to).to_owned()))?;
        let o = &mut self.open[i];
        let mut s = stanza.clone();
        if s.name() == "message" && s.get_child("thread", "jabber:client").is_none() {
            s.append_child(Element::builder("thread", "jabber:client").append(o.est.thread.as_str()).build());
        }
        o.est.encrypt(&s, opts, &mut self.rng).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// A chat message to `peer` inside the active session (an empty `text` sends a stanza
    /// without a body, as for a bare re-key).
    ///
    /// # Errors
    /// As [`Engine::protect`].
    pub fn chat(&mut self, peer: &str, text: &str, opts: EncryptOptions) -> Result<Element, Error> {
        let i = self.active(peer).ok_or_else(|| Error::NotProtected(bare(peer).to_owned()))?;
        let to = self.open[i].peer.clone();
        // An empty text makes an empty stanza (a re-key without content).
        let mut m =
            if text.is_empty() { Element::bare("message", "jabber:client") } else { body_message(text) };
        set_attr(&mut m, "to", &to);
        self.protect(&m, opts)
    }

    /// Terminates the active session with `peer` (the acknowledgement ends it).
    ///
    /// # Errors
    /// No active session.
    pub fn terminate(&mut self, peer: &str) -> Result<Element, Error> {
        let i = self.active(peer).ok_or_else(|| Error::NotProtected(bare(peer).to_owned()))?;
        self.open[i].est.terminate(false, &mut self.rng).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Terminates every active session (before going offline, XEP-0187 §3.1).
    // X116-5-02: every session ends before going offline.
    pub fn terminate_all(&mut self) -> Vec<Element> {
        let mut out = Vec::new();
        for o in self.open.iter_mut().filter(|o| !o.offline) {
            if let Ok(w) = o.est.terminate(false, &mut self.rng) {
                out.push(w);
            }
        }
        self.open.clear();
        self.pending.clear();
        out
    }

    /// Bob: starts an offline session with verified options, carrying `text`.
    ///
    /// # Errors
    /// The start cannot be made (see [`Outbox::start`]).
    pub fn offline_start(
        &mut self,
        v: &Verified,
        text: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Element, Error> {
        let thread = new_thread(&mut self.rng);
        let content = body_message(text);
        self.outbox
            .start(
                v,
                &self.cfg,
                &thread,
                Some(content),
                false,
                now,
                &mut PooledEntropy { rng: &mut self.rng, pool: &mut self.pool.as_ref() },
            )
            .map_err(|e| Error::Offline(e.to_string()))
    }

    /// Bob: a later message of the open offline session with `peer`.
    ///
    /// # Errors
    /// No offline session is open.
    pub fn offline_send(&mut self, peer: &str, text: &str) -> Result<Element, Error> {
        self.outbox.send(peer, &body_message(text), &mut self.rng).map_err(|e| Error::Offline(e.to_string()))
    }

    /// Bob: `peer` came online; the offline session ends (its terminate, when one was open).
    pub fn contact_online(&mut self, peer: &str) -> Option<Element> {
        self.outbox.contact_online(peer, &mut self.rng).ok().flatten()
    }

    /// Alice: the plan for her offline options from this engine's configuration.
    ///
    /// # Errors
    /// [`Error::Config`] without an identity key (options must be signed).
    pub fn plan(&self, keys: Vec<PrivateKey>, lifetime: chrono::Duration) -> Result<Plan, Error> {
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
            match_resource: None,
        })
    }

    /// Alice is back: processes the stanzas stored while she was away (in order) with her
    /// secrets; returns the withdraw IQ to send and the events. Offline sessions accepted stay
    /// open (receive only) so that Bob's terminate is recognised.
    ///
    /// # Errors
    /// The replay store failed: nothing was accepted.
    pub fn come_back(
        &mut self,
        subscribers: Option<Secrets>,
        everyone: Option<&Secrets>,
        queued: &[Element],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Step, Vec<usize>), Error> {
        let r: Returned = come_back(
            subscribers,
            everyone,
            queued,
            now,
            self.cfg.profile,
            self.stores.trust.as_ref(),
            self.stores.replay.as_mut(),
            &mut self.rng,
        )
        .map_err(|e| Error::Store(e.to_string()))?;
        let mut step = Step::default();
        step.send.push(r.withdraw);
        let mut events: Vec<(usize, Event)> = Vec::new();
        for d in &r.dropped {
            let peer = queued.get(d.index).and_then(|s| s.attr("from")).unwrap_or_default().to_owned();
            events.push((
                d.index,
                Event::Failed { peer, condition: "silent".into(), detail: d.check.as_str().to_owned() },
            ));
        }
        for a in r.sessions {
            let peer = a.session.peer.clone();
            step.events.push(Event::Negotiated {
                peer: peer.clone(),
                thread: a.session.thread.clone(),
                sas: None,
                offline: true,
            });
            push_unprotected(&mut step, &peer, a.unprotected);
            for c in a.contents {
                push_message(&mut step, &peer, c);
            }
            if a.ended {
                step.events.push(Event::Terminated { peer, offline: true });
            } else {
                self.open.push(Open { peer, est: Box::new(a.session), offline: true });
            }
        }
        events.sort_by_key(|(i, _)| *i);
        step.events.extend(events.into_iter().map(|(_, e)| e));
        Ok((step, r.other))
    }
}

fn body_message(text: &str) -> Element {
    let mut m = Element::builder("message", "jabber:client")
        .append(Element::builder("body", "jabber:client").append(text))
        .build();
    set_attr(&mut m, "type", "chat");
    m
}

/// Sets an attribute (names are fixed ASCII names: they always parse).
pub(crate) fn set_attr(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
    }
}

fn push_unprotected(step: &mut Step, peer: &str, elements: Vec<String>) {
    if !elements.is_empty() {
        step.events.push(Event::Unprotected { peer: peer.to_owned(), elements });
    }
}

fn push_message(step: &mut Step, peer: &str, clear: Element) {
    // An empty re-key stanza carries nothing for the application.
    if clear.children().all(|c| c.name() == "thread") {
        return;
    }
    let body = clear.get_child("body", "jabber:client").map(Element::text);
    step.events.push(Event::Message { peer: peer.to_owned(), body, stanza: clear });
}
