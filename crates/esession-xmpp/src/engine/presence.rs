//! Presence and IQs in the engine: which resources of each contact are available, what a
//! change of presence does to sessions, and the IQs the engine answers itself (disco#info with
//! the features of XEP-0116/0200, ping).

use super::{Ended, Engine, Event, Phase, Step, set_attr};
use chrono::{DateTime, Utc};
use esession_forms::esession::{ESESSION_NS, FEATURE_NEG_NS, INIT_NS, SsnAnswer, Wrapper};
use esession_negotiate::{BareJid, Jid};
use minidom::Element;
use std::collections::{HashMap, VecDeque};

/// disco#info (XEP-0030).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XMPP Ping (XEP-0199).
pub const PING: &str = "urn:xmpp:ping";
const XEP0200_NS: &str = "http://www.xmpp.org/extensions/xep-0200.html#ns";
const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// The available resources of each contact, as seen in presence, within bounds: contacts we
/// know (a key, a session, an offline session or options, or in the roster read at login:
/// at most [`ROSTER_MAX`], replaced by each roster read) are kept; strangers are
/// kept up to [`super::Limits::strangers`], the one remembered longest ago forgotten first; each
/// contact keeps up to [`super::Limits::resources`] resources, the one seen longest ago forgotten
/// first. Every operation is a hash lookup plus work bounded by those limits.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    contacts: HashMap<BareJid, Contact>,
    /// Strangers in the order they were remembered, with the mark they got then; an entry whose
    /// mark no longer matches the contact's is stale (skipped and compacted away).
    strangers: VecDeque<(BareJid, u64)>,
    /// How many contacts are strangers.
    stranger_count: usize,
    next_mark: u64,
    /// The account's roster contacts whose presence we receive (subscription `to` or `both`,
    /// [`Engine::roster_result`]), each with whether a presence of it (available or not) has
    /// come since the roster was read or the stream was reset.
    watched: HashMap<BareJid, bool>,
}

/// The roster namespace (RFC 6121).
pub const ROSTER_NS: &str = "jabber:iq:roster";
/// The most roster items read ([`Engine::roster_result`]).
pub const ROSTER_MAX: usize = 10_000;

/// The contacts of a roster result whose presence we receive (subscription `to` or `both`,
/// RFC 6121 §2.1.2.5), at most [`ROSTER_MAX`]; items that do not parse are skipped.
pub(crate) fn watched_in(result: &Element) -> Vec<BareJid> {
    let Some(q) = result.get_child("query", ROSTER_NS) else { return Vec::new() };
    q.children()
        .filter(|i| i.is("item", ROSTER_NS))
        .take(ROSTER_MAX)
        .filter(|i| matches!(i.attr("subscription"), Some("to" | "both")))
        .filter_map(|i| i.attr("jid").and_then(|j| crate::parse_jid(j).ok()))
        .filter(|j| j.node().is_some() || j.resource().is_none())
        .map(|j| j.to_bare())
        .collect()
}

#[derive(Debug, Default)]
struct Contact {
    /// Available resources, most recent last.
    resources: Vec<Jid>,
    /// We received its presence (available or unavailable): we are subscribed to it.
    subscribed: bool,
    /// `Some(mark)` while it is a stranger.
    stranger: Option<u64>,
}

impl Roster {
    fn evict_strangers(&mut self, cap: usize) {
        while self.stranger_count > cap {
            let Some((jid, mark)) = self.strangers.pop_front() else { break };
            if self.contacts.get(&jid).and_then(|c| c.stranger) == Some(mark) {
                self.contacts.remove(&jid);
                self.stranger_count -= 1;
            }
        }
        // Stale marks (strangers who went away or became known) are dropped in bulk.
        if self.strangers.len() > 2 * cap.max(1) + 64 {
            let contacts = &self.contacts;
            self.strangers.retain(|(j, m)| contacts.get(j).and_then(|c| c.stranger) == Some(*m));
        }
    }

    /// Forgets every contact's available resources (the stream was reset: the server sends
    /// presence again), keeping whether we are subscribed; returns the resources that were
    /// available. The roster's contacts are waited for again.
    pub(super) fn forget_resources(&mut self) -> Vec<Jid> {
        for heard in self.watched.values_mut() {
            *heard = false;
        }
        let mut gone = Vec::new();
        for c in self.contacts.values_mut() {
            gone.append(&mut c.resources);
        }
        gone
    }

    fn forget(&mut self, jid: &BareJid) {
        if let Some(c) = self.contacts.remove(jid)
            && c.stranger.is_some()
        {
            self.stranger_count -= 1;
        }
    }
}

impl Engine {
    /// Whether this engine accepts negotiation requests (true unless said otherwise). A
    /// resource that is about to go away (a one-shot command: it connects, does its job,
    /// leaves) does not: a session a contact established with it would vanish with it. Not
    /// accepting:
    ///
    /// * every session request is declined as XEP-0155 §4.3 says a client that "simply prefers
    ///   not to start a session" SHOULD: a form with FORM_TYPE and `accept` false and no other
    ///   field, on the request's thread ([`Failure::Declined`](super::Failure::Declined) tells
    ///   the application). The contact's engine reads it as a refusal (`Rejected`). A request
    ///   the server stored is still not answered at all (XEP-0155 §4.2), and the rate limit
    ///   still applies (beyond it, nothing is sent);
    /// * disco#info does not announce the features of XEP-0116 (nor feature negotiation, nor
    ///   the offline start): XEP-0116 §3 has a client that supports the protocol announce
    ///   them, so that a contact's client negotiates with a resource that does; this one
    ///   answers none (it still negotiates as Alice, and keeps the XEP-0200 feature: it
    ///   encrypts stanzas in the sessions it starts).
    ///
    /// Sessions already established and negotiations this engine started are not affected; a
    /// request that crosses one of ours is settled by the crossing rule (see the
    /// [module documentation](super)), as when accepting.
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
    }

    /// Whether negotiation requests are accepted ([`Engine::set_accepting`]).
    #[must_use]
    pub fn accepting(&self) -> bool {
        self.accepting
    }

    /// Declines the session request of `from` on `thread` (XEP-0155 §4.3, Example 3), and
    /// tells the application ([`Failure::Declined`](super::Failure::Declined)).
    pub(super) fn decline(&self, from: &Jid, thread: &str, step: &mut Step) {
        self.send_decline(from, thread, step);
        step.event(Event::Failed { peer: from.clone(), failure: super::Failure::Declined });
    }

    /// The decline of [`Engine::decline`], sent without telling the application (a crossing
    /// request refused: [`Engine::on_request`]).
    pub(super) fn send_decline(&self, from: &Jid, thread: &str, step: &mut Step) {
        // X155-4.3-04: declined rather than ignored; X155-4.3-05: FORM_TYPE and `accept` false;
        // X155-4.3-06: no other field. X155-4.2-02: the request's thread mirrored.
        let answer =
            SsnAnswer { accept: false, logging: None, disclosure: None, security: None, other: Vec::new() };
        let gajim = self.cfg.profile == esession_crypto::Profile::Gajim;
        let x = answer.to_form(self.cfg.profile).to_element_with(gajim);
        step.send.push(esession_negotiate::wire::message(from, thread, vec![Wrapper::Feature.wrap(x)]));
    }

    /// Reads the answer to our roster request (RFC 6121 §2.1.3): its contacts whose presence we
    /// receive (subscription `to` or `both`, at most [`ROSTER_MAX`]) are watched from now on:
    /// [`Engine::presence_known`] tells an unknown presence from an absent one, and
    /// [`Engine::awaiting_presence`] whether one of them has sent no presence yet (a server
    /// answers presence probes when it likes, so the answer to a ping says nothing of them).
    /// `heard` are contacts whose presence came before the roster did (the events the
    /// application has not read yet). Contacts watched are kept in the presence table beyond
    /// the strangers' bound.
    pub fn roster_result(&mut self, result: &Element, heard: &[BareJid]) {
        if result.attr("type") != Some("result") {
            return;
        }
        // RFC 6121 §2.1.3: the answer comes from our own account (no `from`, or our bare JID).
        if let Some(f) = result.attr("from")
            && !crate::parse_jid(f).is_ok_and(|j| self.me.as_ref() == Some(&j.to_bare()))
        {
            return;
        }
        // The roster as it is now: contacts that left it are no longer watched.
        let mut watched = HashMap::new();
        for b in watched_in(result) {
            let h = self.presence.watched.get(&b).copied().unwrap_or(false)
                || self.is_available(&b)
                || heard.contains(&b);
            watched.insert(b, h);
        }
        self.presence.watched = watched;
    }

    /// Whether `peer`'s presence is known: `Some(true)` available, `Some(false)` a presence of
    /// it said it is away (or it is in the roster and has sent none yet), `None` unknown: not
    /// a contact whose presence we receive, and no presence came.
    #[must_use]
    pub fn presence_known(&self, peer: &BareJid) -> Option<bool> {
        if self.is_available(peer) {
            return Some(true);
        }
        self.presence.watched.get(peer).map(|_| false)
    }

    /// Whether a roster contact whose presence we receive has sent no presence yet since the
    /// roster was read (or the stream was reset).
    #[must_use]
    pub fn awaiting_presence(&self) -> bool {
        self.presence.watched.values().any(|h| !h)
    }

    /// Whether the roster says we receive `peer`'s presence (subscription `to` or `both`).
    #[must_use]
    pub fn watches(&self, peer: &BareJid) -> bool {
        self.presence.watched.contains_key(peer)
    }

    /// The roster's contacts whose presence we receive, sorted.
    #[must_use]
    pub fn watched(&self) -> Vec<BareJid> {
        let mut v: Vec<BareJid> = self.presence.watched.keys().cloned().collect();
        v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        v
    }

    /// The available resources of `peer`, as seen in presence (most recent last).
    #[must_use]
    pub fn resources(&self, peer: &BareJid) -> Vec<Jid> {
        self.presence.contacts.get(peer).map(|c| c.resources.clone()).unwrap_or_default()
    }

    /// Whether some resource of `peer` is available.
    #[must_use]
    pub fn is_available(&self, peer: &BareJid) -> bool {
        self.presence.contacts.get(peer).is_some_and(|c| !c.resources.is_empty())
    }

    /// How many contacts the presence roster remembers, and how many of them are strangers
    /// (bounded by [`super::Limits::strangers`]).
    #[must_use]
    pub fn remembered(&self) -> (usize, usize) {
        (self.presence.contacts.len(), self.presence.stranger_count)
    }

    /// Whether we receive `peer`'s presence (we saw it, available or not): then we subscribe
    /// to it, and ask for its subscribers' offline options first (XEP-0187 §3.2).
    #[must_use]
    pub fn subscribed_to(&self, peer: &BareJid) -> bool {
        self.presence.contacts.get(peer).is_some_and(|c| c.subscribed)
    }

    /// A contact worth remembering beyond the strangers' bound: one we hold a key, a session,
    /// an offline session or offline options of, or one in the roster (only our server says
    /// who: at most [`ROSTER_MAX`]). A negotiation in progress is not enough (a
    /// request costs its sender nothing). Whether it is known is decided again at each of its
    /// presences.
    fn known(&self, peer: &BareJid) -> bool {
        self.presence.watched.contains_key(peer)
            || !self.stores.trust.for_jid(peer).is_empty()
            || !self.sessions.of(peer).is_empty()
            || self.outbox.has_session(peer)
            || self.has_offline_options(peer)
    }

    /// Records presence from `from`; `available` false for unavailable presence.
    fn remember(&mut self, from: &Jid, available: bool) {
        let bare = from.to_bare();
        let known = self.known(&bare);
        if !known && !available && !self.presence.contacts.contains_key(&bare) {
            // A stranger going away that we never remembered: nothing to do.
            return;
        }
        let limits = self.limits;
        let roster = &mut self.presence;
        let mark = roster.next_mark;
        let c = roster.contacts.entry(bare.clone()).or_default();
        c.subscribed = true;
        match (known, c.stranger) {
            (true, Some(_)) => {
                c.stranger = None;
                roster.stranger_count -= 1;
            }
            (false, None) => {
                c.stranger = Some(mark);
                roster.next_mark += 1;
                roster.stranger_count += 1;
                roster.strangers.push_back((bare.clone(), mark));
            }
            _ => {}
        }
        if let Some(i) = c.resources.iter().position(|j| j == from) {
            c.resources.remove(i);
        }
        if available {
            c.resources.push(from.clone());
            if c.resources.len() > limits.resources.max(1) {
                c.resources.remove(0);
            }
        }
        if !known && c.resources.is_empty() {
            roster.forget(&bare);
        }
        roster.evict_strangers(limits.strangers);
    }

    pub(super) fn on_presence(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element) -> Step {
        // Encrypted presence belongs to its session (XEP-0200 §5); its type stays clear.
        if s.children().any(|c| c.is("c", esession_stanza::NS)) {
            return self.on_session_stanza(now, from, s);
        }
        let mut step = Step::default();
        let bare = from.to_bare();
        if self.me.as_ref() == Some(&bare) {
            return step;
        }
        if matches!(s.attr("type"), None | Some("unavailable"))
            && let Some(h) = self.presence.watched.get_mut(&bare)
        {
            *h = true;
        }
        match s.attr("type") {
            None => {
                self.remember(from, true);
                step.event(Event::Presence { peer: from.clone(), available: true });
                // Bob: an offline session ends when its contact comes online (XEP-0187 §5).
                step.append(self.end_offline(now, &bare));
            }
            Some("unavailable") => {
                self.remember(from, false);
                step.event(Event::Presence { peer: from.clone(), available: false });
                // X155-8.4-02: we assume the resource's client is gone with its sessions (what we
                // would send in them now is lost, or reaches a client that cannot read it), so
                // X155-8.4-03: each is terminated explicitly (the encrypted terminate goes out:
                // the assumption may be wrong), and ends here; the application is told.
                // X155-8.4-04: a later session is a new negotiation on a new thread.
                while let Some(i) = self.sessions.oldest_of(&bare, |o| {
                    !o.offline && o.est.peer() == from && o.est.phase() != Phase::Closed
                }) {
                    let o = &mut self.sessions[i];
                    if o.est.phase() == Phase::Active
                        && let Ok(w) = o.est.terminate(false, &mut self.rng)
                    {
                        step.send.push(w);
                    }
                    self.end_session(i, Ended::PeerUnavailable, &mut step);
                }
                self.negotiations.retain(|n| n.peer != *from);
            }
            Some("subscribe") => step.event(Event::SubscriptionRequest { peer: bare }),
            _ => {}
        }
        step
    }

    pub(super) fn on_iq(&mut self, now: DateTime<Utc>, from: &Jid, s: &Element) -> Step {
        if s.children().any(|c| c.is("c", esession_stanza::NS))
            || s.get_child("error", "jabber:client")
                .is_some_and(|e| e.children().any(|c| c.is("c", esession_stanza::NS)))
        {
            return self.on_session_stanza(now, from, s);
        }
        let mut step = Step::default();
        match s.attr("type") {
            Some("get" | "set") => {}
            _ => {
                step.event(Event::IqResult { stanza: s.clone() });
                return step;
            }
        }
        let query = s.children().next();
        let mut reply = Element::bare("iq", "jabber:client");
        set_attr(&mut reply, "to", from.as_str());
        if let Some(id) = s.attr("id") {
            set_attr(&mut reply, "id", id);
        }
        match query {
            Some(q) if q.is("query", DISCO_INFO) && s.attr("type") == Some("get") => {
                // X116-3-03: service discovery is answered in clear, outside every session (a
                // clear iq never reaches a session: only one with `<c/>` does, above).
                set_attr(&mut reply, "type", "result");
                reply.append_child(disco_info(self.accepting));
            }
            Some(q) if q.is("ping", PING) && s.attr("type") == Some("get") => {
                set_attr(&mut reply, "type", "result")
            }
            _ => {
                step.event(Event::Iq { stanza: s.clone() });
                return step;
            }
        }
        step.send.push(reply);
        step
    }
}

/// Our disco#info: a client that does encrypted sessions; `accepting`: one that accepts
/// negotiation requests ([`Engine::set_accepting`]).
pub(crate) fn disco_info(accepting: bool) -> Element {
    let mut info = Element::bare("query", DISCO_INFO);
    let mut identity = Element::bare("identity", DISCO_INFO);
    set_attr(&mut identity, "category", "client");
    set_attr(&mut identity, "type", "pc");
    set_attr(&mut identity, "name", "esession");
    info.append_child(identity);
    // X116-3-04: the XEP-0116 feature (`ESESSION_NS`), with feature negotiation (XEP-0020), the
    // offline start (XEP-0187) and stanza encryption (XEP-0200).
    // Not accepting: no feature that would invite a negotiation (XEP-0116 §3, see
    // `Engine::set_accepting`).
    let negotiable: &[&str] = if accepting { &[FEATURE_NEG_NS, ESESSION_NS, INIT_NS] } else { &[] };
    for var in [DISCO_INFO, PING].iter().chain(negotiable).chain(&[XEP0200_NS]) {
        let mut f = Element::bare("feature", DISCO_INFO);
        set_attr(&mut f, "var", var);
        info.append_child(f);
    }
    info
}

/// An IQ error answering `request` with `condition` (the application's answer to a request it
/// does not serve is `service-unavailable`, RFC 6120 §8.4).
#[must_use]
pub fn iq_error(request: &Element, condition: &str) -> Element {
    let mut reply = Element::bare("iq", "jabber:client");
    for (k, v) in [("to", request.attr("from")), ("id", request.attr("id"))] {
        if let Some(v) = v {
            set_attr(&mut reply, k, v);
        }
    }
    set_attr(&mut reply, "type", "error");
    let mut error =
        Element::builder("error", "jabber:client").append(Element::bare(condition, STANZAS_NS)).build();
    set_attr(&mut error, "type", "cancel");
    reply.append_child(error);
    reply
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_roster_gives_the_contacts_whose_presence_we_receive() {
        let r: Element = "<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:roster'>\
            <item jid='a@x' subscription='both'/><item jid='b@x' subscription='to'/>\
            <item jid='c@x' subscription='from'/><item jid='d@x' subscription='none' ask='subscribe'/>\
            <item jid='e@x/res' subscription='to'/><item jid='@@' subscription='both'/>\
            <item subscription='both'/><other jid='f@x' subscription='both'/></query></iq>"
            .parse()
            .unwrap();
        let got: Vec<String> = watched_in(&r).iter().map(|b| b.to_string()).collect();
        assert_eq!(got, ["a@x", "b@x", "e@x"]);
        let none: Element = "<iq xmlns='jabber:client' type='result'/>".parse().unwrap();
        assert!(watched_in(&none).is_empty());
    }
}
