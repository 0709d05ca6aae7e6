//! Which way a message to a contact goes: the engine's rule, which [`crate::Client`] carries
//! out (an application driving the engine itself asks the same).

use super::Engine;
use esession_negotiate::{Jid, Mode};

/// How a message to a contact goes out ([`Engine::route_message`]). Never in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// In the active online session with the contact.
    Session,
    /// Negotiate a session first, in this mode, then send in it: the contact is available
    /// (4-message with people: SAS, identity protection), or is a service (a JID without a
    /// node: 3-message, which answers at once and compares no SAS, XEP-0116 §4.5).
    Negotiate(Mode),
    /// In the offline session already started with the contact (XEP-0187).
    OfflineSession,
    /// Fetch the contact's offline options, verify them, and start an offline session with
    /// the message (XEP-0187 §3.3): the contact is not available.
    OfflineStart,
}

/// Whether an answer to disco#info announces XEP-0116 (XEP-0116 §3): a resource that does
/// is one to negotiate with ([`Engine::negotiation_targets`]).
#[must_use]
pub fn announces_esessions(answer: &minidom::Element) -> bool {
    answer.attr("type") == Some("result")
        && answer.get_child("query", super::DISCO_INFO).is_some_and(|q| {
            q.children().any(|f| {
                f.name() == "feature" && f.attr("var") == Some(esession_forms::esession::ESESSION_NS)
            })
        })
}

/// Whether an answer to disco#info says the resource is not there (an error answered by the
/// server for it: `service-unavailable`, `recipient-unavailable`, `item-not-found`,
/// `remote-server-not-found`, `gone`), as after a reconnection when our presence table still
/// names a resource that left: the contact is not reachable there, which is not "it does not
/// support encrypted sessions".
#[must_use]
pub fn resource_gone(answer: &minidom::Element) -> bool {
    answer.attr("type") == Some("error")
        && matches!(
            super::condition(answer).as_str(),
            "service-unavailable"
                | "recipient-unavailable"
                | "item-not-found"
                | "remote-server-not-found"
                | "gone"
        )
}

impl Engine {
    /// Whom to ask, in order, whether they announce XEP-0116 before negotiating with `peer`:
    /// a full JID or a service's (no node) as given; a bare JID, its available resources,
    /// newest first (a one-shot command of the contact's, newer than its chat, announces none,
    /// and the chat is found). The first that announces it ([`announces_esessions`]) is the
    /// one to negotiate with; empty when the contact has no available resource.
    #[must_use]
    pub fn negotiation_targets(&self, peer: &Jid) -> Vec<Jid> {
        if peer.resource().is_some() || peer.node().is_none() {
            return vec![peer.clone()];
        }
        let mut r = self.resources(&peer.to_bare());
        r.reverse();
        r
    }

    /// How a message to `peer` goes out now: in the session with it; else a new negotiation
    /// when it is available (or a service); else in the offline session with it, or a new one
    /// from its published options.
    #[must_use]
    pub fn route_message(&self, peer: &Jid) -> Route {
        let bare = peer.to_bare();
        let service = peer.node().is_none();
        if self.has_session(&bare) {
            Route::Session
        } else if service {
            Route::Negotiate(Mode::Three)
        } else if self.is_available(&bare) {
            Route::Negotiate(Mode::Four)
        } else if self.has_offline_session(&bare) {
            Route::OfflineSession
        } else {
            Route::OfflineStart
        }
    }
}
