//! Engines relayed in memory: the harness of the tests, the demo, the fuzz targets and the docs.
//!
//! A [`Relay`] plays the part of a server for a few [`Engine`]s: it stamps `from` on what each
//! sends, delivers by `to` (full JID, or any available resource of a bare JID), stores
//! messages for an account that is offline and delivers them when it announces presence, and
//! keeps the PEP items its accounts publish (XEP-0163: publish, retract by an empty item,
//! items requests), so that XEP-0187 offline sessions run through it as through a real server.
//! A filter sees every stanza in flight and may change or drop it.
//!
//! ```
//! use esession_negotiate::{Config, Mode};
//! use esession_xmpp::relay::Relay;
//! use esession_xmpp::{Engine, EngineStores, Event};
//!
//! let mut relay = Relay::new(chrono::Utc::now());
//! let a = relay.add("alice@example.org/pda", Engine::new(Config::default(), EngineStores::in_memory()))?;
//! let b = relay.add("bob@example.com/laptop", Engine::new(Config::default(), EngineStores::in_memory()))?;
//! relay.start(a, "bob@example.com/laptop", Mode::Four)?;
//! relay.drive();
//! let sas: Vec<_> = relay.events(a).iter().chain(relay.events(b)).filter_map(|e| match e {
//!     Event::Negotiated { sas, .. } => sas.clone(),
//!     _ => None,
//! }).collect();
//! assert_eq!(sas.len(), 2);
//! assert_eq!(sas[0], sas[1], "both see the same SAS");
//! relay.chat(a, "bob@example.com", "hello")?;
//! relay.drive();
//! assert!(relay.events(b).iter().any(|e| e.body().as_deref() == Some("hello")));
//! # Ok::<(), esession_xmpp::Error>(())
//! ```

use crate::engine::{Engine, Event, iq_error, set_attr};
use crate::{Error, parse_jid};
use chrono::{DateTime, Utc};
use esession_negotiate::{BareJid, Jid, Mode};
use esession_offline::away::Published;
use esession_offline::publish::{Plan, Secrets};
use esession_offline::{Audience, pep};
use esession_stanza::EncryptOptions;
use minidom::Element;
use std::collections::{HashMap, HashSet, VecDeque};

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";

/// A filter over stanzas in flight: `(from party, stanza)` to the stanza to deliver, or `None`
/// to drop it.
pub type Filter = Box<dyn FnMut(usize, Element) -> Option<Element>>;

struct Party {
    jid: Jid,
    engine: Engine,
    online: bool,
    events: Vec<Event>,
    stored: Vec<Element>,
}

/// Engines relayed in memory; see the [module documentation](self).
pub struct Relay {
    parties: Vec<Party>,
    now: DateTime<Utc>,
    flight: VecDeque<(usize, Element)>,
    /// PEP nodes that exist (created by their owner: none is created by a publish).
    nodes: HashSet<(BareJid, String)>,
    pep: HashMap<(BareJid, String), Element>,
    filter: Option<Filter>,
    fetches: u64,
    /// Stanzas delivered so far (for tests that look at the wire).
    pub delivered: Vec<(usize, usize, Element)>,
    /// IQs the relay answered as the server (PEP), with their sender, in order.
    pub to_server: Vec<(usize, Element)>,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Relay")
            .field("parties", &self.parties.len())
            .field("in_flight", &self.flight.len())
            .finish()
    }
}

impl Relay {
    /// An empty relay whose clock starts at `now`.
    #[must_use]
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            parties: Vec::new(),
            now,
            flight: VecDeque::new(),
            nodes: HashSet::new(),
            pep: HashMap::new(),
            filter: None,
            fetches: 0,
            delivered: Vec::new(),
            to_server: Vec::new(),
        }
    }

    /// Adds an online party with its full JID; returns its index.
    ///
    /// # Errors
    /// [`Error::BadJid`].
    pub fn add(&mut self, jid: &str, engine: Engine) -> Result<usize, Error> {
        let jid = parse_jid(jid)?;
        self.parties.push(Party { jid, engine, online: true, events: Vec::new(), stored: Vec::new() });
        Ok(self.parties.len() - 1)
    }

    /// Sets the filter every stanza in flight goes through.
    pub fn set_filter(&mut self, f: Filter) {
        self.filter = Some(f);
    }

    /// The relay's clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Moves the clock (not past the last time a date can hold).
    pub fn advance(&mut self, by: chrono::Duration) {
        self.now = self.now.checked_add_signed(by).unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    /// Party `i`'s engine.
    pub fn engine(&mut self, i: usize) -> &mut Engine {
        &mut self.parties[i].engine
    }

    /// Party `i`'s JID.
    #[must_use]
    pub fn jid(&self, i: usize) -> &Jid {
        &self.parties[i].jid
    }

    /// The events party `i` reported so far.
    #[must_use]
    pub fn events(&self, i: usize) -> &[Event] {
        &self.parties[i].events
    }

    /// Takes the events party `i` reported so far.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.parties[i].events)
    }

    /// Puts what party `i` sends in flight, and keeps its events.
    pub fn output(&mut self, i: usize, step: crate::Step) {
        for s in step.send {
            self.flight.push_back((i, s));
        }
        self.parties[i].events.extend(step.events);
    }

    /// Puts `stanza` in flight as sent by party `i`.
    pub fn inject(&mut self, i: usize, stanza: Element) {
        self.flight.push_back((i, stanza));
    }

    /// Party `i` starts a negotiation with `peer`.
    ///
    /// # Errors
    /// The engine's.
    pub fn start(&mut self, i: usize, peer: &str, mode: Mode) -> Result<(), Error> {
        let peer = parse_jid(peer)?;
        let now = self.now;
        let step = self.parties[i].engine.start(now, &peer, mode)?;
        self.output(i, step);
        Ok(())
    }

    /// Party `i` sends `text` in its session with `peer`.
    ///
    /// # Errors
    /// The engine's.
    pub fn chat(&mut self, i: usize, peer: &str, text: &str) -> Result<(), Error> {
        let peer = parse_jid(peer)?.to_bare();
        let w = self.parties[i].engine.chat(&peer, text, EncryptOptions::default())?;
        self.flight.push_back((i, w));
        Ok(())
    }

    /// Party `i` fetches the offline options `peer` (a bare JID) published, as a client does:
    /// one items request per node in the order its engine gives
    /// ([`Engine::options_audiences`]), until one holds options, which go to its engine
    /// ([`Engine::offline_options`]). Returns the engine's verdict (also kept in the party's
    /// events), or `None` when no node held options.
    ///
    /// # Errors
    /// [`Error::BadJid`].
    pub fn fetch_options(&mut self, i: usize, peer: &str) -> Result<Option<Event>, Error> {
        let peer = parse_jid(peer)?.to_bare();
        for audience in self.parties[i].engine.options_audiences(&peer) {
            self.fetches += 1;
            let id = format!("relay-fetch-{}", self.fetches);
            self.inject(i, pep::items_request(audience, peer.as_str(), &id));
            self.drive();
            let reply = self.delivered.iter().rev().find_map(|(_, to, s)| {
                (*to == i && s.name() == "iq" && s.attr("id") == Some(id.as_str())).then_some(s)
            });
            let Some(x) = reply.and_then(pep::options_in).cloned() else { continue };
            let now = self.now;
            let ev = self.parties[i].engine.offline_options(now, &peer, &x);
            self.parties[i].events.push(ev.clone());
            return Ok(Some(ev));
        }
        Ok(None)
    }

    /// Party `i` publishes its offline options as a client about to go away does
    /// ([`Engine::go_offline`]: its sessions end, then each audience's node is created and the
    /// options published, through the relay). Returns the published sets, one per audience in
    /// order. The party is still online: [`Relay::disconnect`] takes it away.
    ///
    /// # Errors
    /// The engine's.
    pub fn publish(
        &mut self,
        i: usize,
        plan: &Plan,
        audiences: &[Audience],
    ) -> Result<Vec<Published>, Error> {
        let now = self.now;
        let (step, sets) = self.parties[i].engine.go_offline(now, plan, audiences, false)?;
        self.output(i, step);
        self.drive();
        Ok(sets)
    }

    /// Party `i` opens an offline session (XEP-0187) with `peer` (a bare JID), who is away, as
    /// a client does: it fetches the options `peer` published ([`Relay::fetch_options`]), makes
    /// the offline start with `content` ([`Engine::offline_start`]) and sends each of `later`
    /// in that session ([`Engine::offline_chat`]). Returns those stanzas in order, not yet in
    /// flight: [`Relay::inject`] sends them (a test may alter or keep some first).
    ///
    /// # Errors
    /// [`Error::NoOfflineOptions`] when no node held options its engine accepted; else the
    /// engine's.
    pub fn offline_start(
        &mut self,
        i: usize,
        peer: &str,
        content: Element,
        later: &[&str],
    ) -> Result<Vec<Element>, Error> {
        let bare = parse_jid(peer)?.to_bare();
        if !matches!(self.fetch_options(i, peer)?, Some(Event::OfflineOptions { refused: None, .. })) {
            return Err(Error::NoOfflineOptions { peer: bare, condition: None });
        }
        let now = self.now;
        let step = self.parties[i].engine.offline_start(now, &bare, content, false)?;
        self.parties[i].events.extend(step.events);
        let mut out = step.send;
        for text in later {
            out.push(self.parties[i].engine.offline_chat(now, &bare, text)?);
        }
        Ok(out)
    }

    /// Party `i` comes back from an absence ([`Engine::come_back`] with the subscribers' set it
    /// published: the withdraw, then its presence) and is online again: what was stored for it
    /// is delivered; then everything in flight is.
    ///
    /// # Errors
    /// The engine's.
    pub fn come_back(&mut self, i: usize, subscribers: Option<Secrets>) -> Result<(), Error> {
        let now = self.now;
        let step = self.parties[i].engine.come_back(now, subscribers, None, true)?;
        self.reconnect(i, step);
        self.drive();
        Ok(())
    }

    /// Party `i` goes offline: its stanzas are stored from now on.
    pub fn disconnect(&mut self, i: usize) {
        self.parties[i].online = false;
        let mut p = Element::bare("presence", "jabber:client");
        set_attr(&mut p, "type", "unavailable");
        self.flight.push_back((i, p));
    }

    /// Party `i` is back: what was stored for it is delivered after `step` (what its engine
    /// sends on return: the withdraw, then its presence).
    pub fn reconnect(&mut self, i: usize, step: crate::Step) {
        self.parties[i].online = true;
        self.output(i, step);
    }

    /// The stanzas in flight, `(sending party, stanza)`, oldest first: a test or a fuzz target
    /// may drop, duplicate, reorder or alter them before [`Relay::step`] or [`Relay::drive`]
    /// delivers them.
    pub fn in_flight(&mut self) -> &mut VecDeque<(usize, Element)> {
        &mut self.flight
    }

    /// Delivers the oldest stanza in flight (through the filter, then routed as
    /// [`Relay::drive`] does); `false` when nothing was in flight.
    pub fn step(&mut self) -> bool {
        let Some((from, s)) = self.flight.pop_front() else { return false };
        let s = match self.filter.as_mut() {
            Some(f) => f(from, s),
            None => Some(s),
        };
        if let Some(s) = s {
            self.route(from, s);
        }
        true
    }

    /// Delivers stanzas until nothing is in flight; returns how many were delivered.
    pub fn drive(&mut self) -> usize {
        let mut n = 0;
        while n < 100_000 && self.step() {
            // (Past 100,000, a loop between parties: stop, the test will see it.)
            n += 1;
        }
        n
    }

    fn route(&mut self, from: usize, mut s: Element) {
        let sender = self.parties[from].jid.clone();
        set_attr(&mut s, "from", sender.as_str());
        let to = s.attr("to").and_then(|t| Jid::new(t).ok());
        // Presence without `to` goes to every other party (a roster of everyone).
        if s.name() == "presence" && to.is_none() {
            let available = s.attr("type").is_none();
            for i in 0..self.parties.len() {
                if i != from {
                    self.deliver(from, i, s.clone());
                }
            }
            if available {
                let stored = std::mem::take(&mut self.parties[from].stored);
                for m in stored {
                    self.deliver(usize::MAX, from, m);
                }
            }
            return;
        }
        // IQs without `to`, or to our own bare JID: the server's (PEP).
        let for_server = s.name() == "iq"
            && (to.as_ref().is_none_or(|t| t.to_bare() == sender.to_bare() && t.resource().is_none())
                || to.as_ref().is_some_and(|t| t.resource().is_none())
                    && s.children().any(|c| c.is("pubsub", PUBSUB)));
        if for_server {
            let reply = self.pep(from, &s).map(|mut reply| {
                // The answer comes from the account the IQ was addressed to (PEP: a bare JID).
                let of = to.as_ref().map_or_else(|| sender.to_bare(), Jid::to_bare);
                set_attr(&mut reply, "from", of.as_str());
                reply
            });
            self.to_server.push((from, s));
            if let Some(reply) = reply {
                self.deliver(usize::MAX, from, reply);
            }
            return;
        }
        let Some(to) = to else { return };
        let target = self
            .parties
            .iter()
            .position(|p| p.jid == to)
            .or_else(|| self.parties.iter().position(|p| p.jid.to_bare() == to.to_bare()));
        let Some(t) = target else { return };
        if !self.parties[t].online {
            if s.name() == "message" {
                self.parties[t].stored.push(s);
            }
            return;
        }
        self.deliver(from, t, s);
    }

    fn deliver(&mut self, from: usize, to: usize, s: Element) {
        if !self.parties[to].online {
            return;
        }
        let now = self.now;
        let step = self.parties[to].engine.handle(now, &s);
        // Only what the engine could read is kept (a stanza beyond its limits may be too deep
        // to drop by recursion).
        if esession_forms::xml::measure(&s, self.parties[to].engine.limits().stanza).is_ok() {
            self.delivered.push((from, to, s));
        } else {
            esession_forms::xml::dispose(s);
        }
        self.output(to, step);
    }

    /// The server's part of XEP-0163 and XEP-0060, strictly: node creation (with its
    /// configuration), publish (an empty item withdraws), items requests, node deletion; the
    /// answer to send back. A node must be created before anything is published to it (no
    /// auto-creation: `item-not-found`), and is created once (`conflict`).
    fn pep(&mut self, from: usize, iq: &Element) -> Option<Element> {
        let owner = self.parties[from].jid.to_bare();
        let mut reply = Element::bare("iq", "jabber:client");
        if let Some(id) = iq.attr("id") {
            set_attr(&mut reply, "id", id);
        }
        set_attr(&mut reply, "to", self.parties[from].jid.as_str());
        set_attr(&mut reply, "type", "result");
        if iq.attr("type") == Some("result") || iq.attr("type") == Some("error") {
            return None;
        }
        if let Some(pubsub) = iq.get_child("pubsub", PUBSUB_OWNER) {
            if let Some(delete) = pubsub.get_child("delete", PUBSUB_OWNER) {
                let key = (owner, delete.attr("node").unwrap_or_default().to_owned());
                if !self.nodes.remove(&key) {
                    return Some(iq_error(iq, "item-not-found"));
                }
                self.pep.remove(&key);
            }
            return Some(reply);
        }
        let Some(pubsub) = iq.get_child("pubsub", PUBSUB) else { return Some(reply) };
        if let Some(create) = pubsub.get_child("create", PUBSUB) {
            let key = (owner.clone(), create.attr("node").unwrap_or_default().to_owned());
            if !self.nodes.insert(key) {
                return Some(iq_error(iq, "conflict"));
            }
        }
        if let Some(publish) = pubsub.get_child("publish", PUBSUB) {
            let key = (owner, publish.attr("node").unwrap_or_default().to_owned());
            if !self.nodes.contains(&key) {
                return Some(iq_error(iq, "item-not-found"));
            }
            match publish.get_child("item", PUBSUB).and_then(|i| i.children().next()) {
                Some(payload) => {
                    self.pep.insert(key, payload.clone());
                }
                None => {
                    self.pep.remove(&key);
                }
            }
        } else if let Some(items) = pubsub.get_child("items", PUBSUB) {
            let node = items.attr("node").unwrap_or_default().to_owned();
            let of = iq.attr("to").and_then(|t| Jid::new(t).ok()).map_or(owner, |j| j.to_bare());
            let key = (of, node.clone());
            if !self.nodes.contains(&key) {
                return Some(iq_error(iq, "item-not-found"));
            }
            let mut out = Element::bare("items", PUBSUB);
            set_attr(&mut out, "node", &node);
            if let Some(payload) = self.pep.get(&key) {
                out.append_child(Element::builder("item", PUBSUB).append(payload.clone()).build());
            }
            reply.append_child(Element::builder("pubsub", PUBSUB).append(out).build());
        }
        Some(reply)
    }
}
