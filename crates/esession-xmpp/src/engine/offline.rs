//! XEP-0187 in the engine: Alice going offline and coming back (the withdraw first, then
//! presence, then the starts, §3.4), Bob's offline sessions (the options he was handed, his
//! outbox, the terminate when Alice comes online, §5).

use super::{Ended, Engine, Event, Failure, Kept, MessageId, Step, set_attr};
use crate::Error;
use chrono::{DateTime, Utc};
use esession_forms::names::{Compress, StanzaType};
use esession_forms::xml;
use esession_negotiate::{BareJid, Jid, PooledEntropy};
use esession_offline::away::{Published, go_offline};
use esession_offline::publish::{Plan, Secrets};
use esession_offline::replay::ReplayStore;
use esession_offline::{Audience, pep, receive, send};
use minidom::Element;
use std::collections::HashMap;

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
    keys: Vec<(Vec<u8>, u64)>,
}

impl ReplayStore for Staged<'_> {
    fn seen(&self, key: &[u8], now: u64) -> bool {
        self.inner.seen(key, now) || self.keys.iter().any(|(k, e)| k == key && now <= *e)
    }

    fn record(&mut self, keys: &[Vec<u8>], expires: u64) -> Result<(), esession_negotiate::StoreError> {
        self.keys.extend(keys.iter().map(|k| (k.clone(), expires)));
        Ok(())
    }

    fn purge(&mut self, _now: u64) -> Result<(), esession_negotiate::StoreError> {
        Ok(())
    }
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
        let mut staged = Staged { inner: self.stores.replay.as_ref(), keys: Vec::new() };
        for (secrets, _) in &self.offline.sets {
            match receive::accept(secrets, s, now, self.cfg.profile, self.stores.trust.as_ref(), &mut staged)
            {
                Ok(done) => {
                    accepted = Some(done);
                    break;
                }
                // Another set may have published this nonce.
                Err(esession_offline::Error::Refused(esession_offline::Check::UnknownNonce)) => {}
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
        if let Some((session, content)) = accepted {
            let thread = session.thread().to_owned();
            let petname = super::petname_of(self.stores.trust.as_ref(), session.peer_key());
            let base = super::inbox::id_base(&replay);
            // 1. The content kept (with the replay entries, for recovery), 2. the replay
            // entries recorded, 3. the application told. A store failure refuses the start
            // (nothing told; a kept message is told after a restart).
            let mut told = Step::default();
            if let Some(c) = content {
                super::push_unprotected(&mut told, from, c.unprotected);
                let k = Kept {
                    id: MessageId::derive(&base, 0),
                    peer: from.clone(),
                    thread: thread.clone(),
                    stanza: c.stanza,
                    petname: petname.clone(),
                    clear: c.clear,
                    replay: replay.clone(),
                };
                if let Err(e) = self.deliver_offline(k, &mut told) {
                    step.event(Event::Failed { peer: from.clone(), failure: Failure::Store(e) });
                    return step;
                }
            }
            // X187-6.1-02 X187-6.1-03: d and N_B recorded durably before anything is told.
            if let Err(e) = self.stores.replay.record_all(&replay) {
                step.event(Event::Failed { peer: from.clone(), failure: Failure::Store(e) });
                return step;
            }
            step.event(Event::Negotiated {
                peer: session.peer().clone(),
                thread: thread.clone(),
                sas: None,
                offline: true,
                petname,
            });
            step.append(told);
            self.open(now, Box::new(session), true, &mut step);
            if let Some(o) = self.sessions.iter_mut().rev().find(|o| o.offline && o.est.thread() == thread) {
                o.ids = Some((base, 1));
            }
            return step;
        }
        // X187-3.4-05 X187-3.4-07: refused without an error.
        step.event(Event::Failed { peer: from.clone(), failure: Failure::Offline(why) });
        step
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
