//! Presence and IQs in the engine: which resources of each contact are available, what a
//! change of presence does to sessions, and the IQs the engine answers itself (disco#info with
//! the features of XEP-0116/0200, ping).

use super::{Ended, Engine, Event, Phase, Step, set_attr};
use chrono::{DateTime, Utc};
use esession_forms::esession::{ESESSION_NS, FEATURE_NEG_NS, INIT_NS};
use esession_negotiate::{BareJid, Jid};
use minidom::Element;
use std::collections::HashMap;

/// disco#info (XEP-0030).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XMPP Ping (XEP-0199).
pub const PING: &str = "urn:xmpp:ping";
const XEP0200_NS: &str = "http://www.xmpp.org/extensions/xep-0200.html#ns";
const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// The available resources of each contact, as seen in presence.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    online: HashMap<BareJid, Vec<Jid>>,
}

impl Engine {
    /// The available resources of `peer`, as seen in presence (most recent last).
    #[must_use]
    pub fn resources(&self, peer: &BareJid) -> Vec<Jid> {
        self.presence.online.get(peer).cloned().unwrap_or_default()
    }

    /// Whether some resource of `peer` is available.
    #[must_use]
    pub fn is_available(&self, peer: &BareJid) -> bool {
        self.presence.online.get(peer).is_some_and(|v| !v.is_empty())
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
        match s.attr("type") {
            None => {
                let list = self.presence.online.entry(bare.clone()).or_default();
                if !list.contains(from) {
                    list.push(from.clone());
                }
                step.event(Event::Presence { peer: from.clone(), available: true });
                // Bob: an offline session ends when its contact comes online (XEP-0187 §5).
                step.append(self.end_offline(&bare));
            }
            Some("unavailable") => {
                if let Some(list) = self.presence.online.get_mut(&bare) {
                    list.retain(|j| j != from);
                    if list.is_empty() {
                        self.presence.online.remove(&bare);
                    }
                }
                step.event(Event::Presence { peer: from.clone(), available: false });
                // The resource's client is gone, and its sessions with it: what we would send
                // in them now is lost. They end here, and the application is told.
                let mut i = 0;
                while i < self.sessions.len() {
                    let o = &self.sessions[i];
                    if !o.offline && o.est.peer() == from && o.est.phase() != Phase::Closed {
                        let mut o = self.sessions.remove(i);
                        o.est.close();
                        step.event(Event::Terminated {
                            peer: from.clone(),
                            thread: o.est.thread().to_owned(),
                            offline: false,
                            why: Ended::PeerUnavailable,
                        });
                    } else {
                        i += 1;
                    }
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
                set_attr(&mut reply, "type", "result");
                reply.append_child(disco_info());
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

/// Our disco#info: a client that does encrypted sessions.
pub(crate) fn disco_info() -> Element {
    let mut info = Element::bare("query", DISCO_INFO);
    let mut identity = Element::bare("identity", DISCO_INFO);
    set_attr(&mut identity, "category", "client");
    set_attr(&mut identity, "type", "pc");
    set_attr(&mut identity, "name", "esession");
    info.append_child(identity);
    for var in [DISCO_INFO, PING, FEATURE_NEG_NS, ESESSION_NS, INIT_NS, XEP0200_NS] {
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
