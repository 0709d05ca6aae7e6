//! What the engine tells the application: [`Event`]s, with typed [`Failure`]s and reasons a
//! session [`Ended`]. `Debug` never shows message content.

use esession_crypto::{PublicKey, Sas};
use esession_forms::names::Security;
use esession_negotiate::{Alert, BareJid, Jid};
use minidom::Element;
use std::fmt;

/// What one input caused: stanzas to send (in order) and events for the application.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Step {
    /// Stanzas for the server, in order.
    pub send: Vec<Element>,
    /// Events, in order.
    pub events: Vec<Event>,
}

impl Step {
    /// Adds an event, and traces it (every event the engine gives passes here).
    pub(crate) fn event(&mut self, e: Event) {
        trace_event(&e);
        self.events.push(e);
    }

    pub(crate) fn append(&mut self, other: Step) {
        self.send.extend(other.send);
        self.events.extend(other.events);
    }
}

/// Something the application must know.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A session with `peer` is established. `sas` is the short authentication string of a
    /// 4-message negotiation, to compare with the peer out of band.
    Negotiated {
        /// The peer (full JID online; offline, as the start came).
        peer: Jid,
        /// The session's thread.
        thread: String,
        /// The SAS (4-message negotiations only).
        sas: Option<Sas>,
        /// An offline (XEP-0187) session.
        offline: bool,
        /// The petname the user gave the key the peer proved, if any: show it more
        /// prominently than the JID (XEP-0116 §7.4; [`Event::who`]).
        petname: Option<String>,
    },
    /// A stanza the peer protected, decrypted: exactly what its MAC covered (plus `<thread/>`,
    /// `<amp/>`, `<error/>`, which XEP-0200 §5 leaves in clear).
    Message {
        /// The sender.
        peer: Jid,
        /// The session's thread.
        thread: String,
        /// The decrypted stanza (`message`, `presence` or `iq`).
        stanza: Element,
        /// Inside an offline session.
        offline: bool,
        /// The petname of the session's peer key, if the user gave one ([`Event::who`]).
        petname: Option<String>,
        /// The children of `stanza` that XEP-0200 §5 leaves in clear besides `<thread/>`
        /// (`<amp/>` in a message, `<error/>` in an error stanza), by name: part of the stanza,
        /// but NOT covered by the MAC; anyone on the path may have changed them.
        clear: Vec<String>,
        /// Offline messages (`offline`): the stable id to acknowledge with
        /// [`crate::Engine::ack`] once the application has done with the message; until then it
        /// is kept (in the account's inbox) and delivered again after a restart
        /// ([`crate::Engine::unacknowledged`]). `None` for messages of online sessions.
        id: Option<super::MessageId>,
    },
    /// An offline message (XEP-0187) whose start verified in every respect except one: the key
    /// that signed it is not one we trust for its sender. It is **held**, sealed in the inbox,
    /// not delivered: nothing of its content is told until the user decides. Compare
    /// `fingerprint` with the sender out of band, then either trust the key
    /// ([`crate::Engine::trust_held`]: every message held for it is delivered as an
    /// [`Event::Message`], with the same `id`) or refuse it ([`crate::Engine::refuse_held`]: they
    /// are dropped). Later stanzas of the same offline session are held too, in order, each
    /// with an event of its own. Until the decision the message stays held across restarts
    /// ([`crate::Engine::unacknowledged`] tells it again as this event).
    Untrusted {
        /// The sender, as the start came.
        peer: Jid,
        /// The offline session's thread.
        thread: String,
        /// The key that signed the start (its signature verified; the key is not trusted).
        key: PublicKey,
        /// The key's fingerprint as a person compares it ([`crate::fingerprint`]).
        fingerprint: String,
        /// The held message's id: the id of the [`Event::Message`] it becomes once trusted.
        id: super::MessageId,
    },
    /// Children that came in clear beside an encrypted stanza, outside what XEP-0200 §5 leaves
    /// in clear: not covered by the MAC, so dropped and never part of a [`Event::Message`].
    /// Someone between the peers added them, or the peer's client is broken.
    Unprotected {
        /// The peer of the session.
        peer: Jid,
        /// The dropped children's names (`{namespace}name` outside the stanza's namespace).
        elements: Vec<String>,
    },
    /// A stanza that came in clear: not protected by any session (show it as such, if at all).
    Clear {
        /// The sender.
        peer: Jid,
        /// The stanza as received.
        stanza: Element,
    },
    /// A key-association or disclosure alert (XEP-0116 §7.4, §7.6).
    Alert {
        /// The peer concerned.
        peer: Jid,
        /// What happened (its `Display` says it in words).
        alert: Alert,
    },
    /// A session with `peer` ended.
    Terminated {
        /// The peer.
        peer: Jid,
        /// The session's thread.
        thread: String,
        /// An offline session.
        offline: bool,
        /// Why.
        why: Ended,
    },
    /// A negotiation, a stanza of a session, or a stanza from the network failed. Nothing was
    /// answered unless the failure's protocol says so; what the negotiation learned is gone.
    Failed {
        /// The peer.
        peer: Jid,
        /// What failed.
        failure: Failure,
    },
    /// A record the account kept for a restart (an offline message not yet acknowledged, or
    /// an open offline session) could not be read back: it was set aside
    /// ([`super::Inbox::set_aside`]) and the account started without it. What it held is
    /// lost, as this says.
    SetAside(super::SetAside),
    /// The peer accepted a plain stanza session instead of an ESession (XEP-0116 §4.4):
    /// nothing will be encrypted.
    StanzaSession {
        /// The peer.
        peer: Jid,
        /// The `security` it chose (`c2s` or `none`).
        security: Security,
    },
    /// `peer` became available or unavailable.
    Presence {
        /// The peer's full JID.
        peer: Jid,
        /// Available (true) or gone (false).
        available: bool,
    },
    /// `peer` asks to see our presence.
    SubscriptionRequest {
        /// The bare JID asking.
        peer: BareJid,
    },
    /// An IQ request addressed to us that the engine does not answer itself (it answers
    /// disco#info and ping): the application answers it (an error if it does not know it).
    Iq {
        /// The request.
        stanza: Element,
    },
    /// An IQ result or error: the answer to a request the application sent.
    IqResult {
        /// The answer.
        stanza: Element,
    },
    /// The connection to the server was lost and is back (the client reconnects by itself).
    /// `resumed`: the stream was resumed (XEP-0198) and nothing was lost. Otherwise the
    /// server forgot us (a restart): `jid` is our new full JID, and the online sessions and
    /// negotiations ended ([`Ended::ConnectionLost`], [`Failure::ConnectionLost`] follow).
    Reconnected {
        /// Our full JID now.
        jid: Jid,
        /// Whether the stream was resumed without loss.
        resumed: bool,
    },
    /// A protected message we sent in an online session may not have arrived: the server had
    /// not confirmed it (XEP-0198) when the connection was lost, and the stream could not be
    /// resumed, so the session it was encrypted in is gone ([`crate::Client`] tells this after
    /// [`Event::Reconnected`], only on streams with stream management, where it can know).
    /// Send it again, in a new session. `id` is the stanza's id
    /// ([`crate::Client::last_sent_id`] after the send).
    Unconfirmed {
        /// The addressee.
        peer: Jid,
        /// The message stanza's id.
        id: String,
    },
    /// Offline options of `peer` were checked (XEP-0187 §3.2): usable for offline sessions, or
    /// not (with the failed check).
    OfflineOptions {
        /// The publisher.
        peer: BareJid,
        /// `None` when they verified, else why not.
        refused: Option<esession_offline::Check>,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// The peer terminated it (XEP-0116 §5); `verified`: inside the encrypted content (a clear
    /// terminate is accepted but not authenticated, A14).
    ByPeer {
        /// Whether the terminate was authenticated.
        verified: bool,
    },
    /// The peer acknowledged our terminate.
    Acknowledged,
    /// Our terminate was never acknowledged: the session was closed after the negotiation
    /// timeout ([`crate::engine::Limits::pending_timeout`]), its last keys with it.
    NoAcknowledgement,
    /// The session was for one stanza (object encryption).
    Object,
    /// The peer's resource went unavailable: its client holds no session any more.
    PeerUnavailable,
    /// The peer answered with an error on the session's thread (it refused the negotiation or
    /// lost the session).
    PeerError,
    /// A stanza of the session failed verification: XEP-0200 ends the session.
    Failure,
    /// A new session with the same contact replaced it.
    Replaced,
    /// We went offline (XEP-0116 §5, XEP-0187 §3.1) or the contact came online (offline
    /// sessions, XEP-0187 §5).
    Presence,
    /// Our connection to the server was lost and established again without resumption (a
    /// server restart): the server announced our resource unavailable, so the peer ended the
    /// session ([`crate::Engine::connection_reset`]). Start a new one to go on. What was sent
    /// in it after the connection dropped (while the client was reconnecting) may not have
    /// reached the peer, which no longer holds the session: it is not known which, so an
    /// application that must not lose a message sends it again in the new session.
    ConnectionLost,
    /// An offline session Alice accepted outlived the options its start answered (XEP-0187
    /// §3.2): it ends, and what is kept of it goes ([`crate::engine::KeptSession`]).
    Expired,
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The negotiation failed (refused by us or by the peer).
    Negotiation(esession_negotiate::Error),
    /// A stanza of a session failed (the session may be over: see [`Event::Terminated`]).
    Session(esession_negotiate::Error),
    /// The peer sent an error stanza (never answered, RFC 6120 §8.3.1).
    PeerError {
        /// Its condition, when it named one.
        condition: Option<String>,
        /// The fields it named.
        fields: Vec<String>,
    },
    /// An offline start or stanza was dropped silently (XEP-0187).
    Offline(esession_offline::Check),
    /// An encrypted stanza or a negotiation message that belongs to no session or negotiation.
    NoSession,
    /// A stanza beyond the limits (depth, size): dropped unread.
    TooLarge,
    /// A negotiation that did not complete in time was dropped.
    Expired,
    /// A contact sent more requests than allowed: dropped.
    RateLimited,
    /// The contact's stanzas failed more often than [`crate::Limits::failures_per_minute`]
    /// allows: its stanzas are dropped unread until its budget refills (said once, when it
    /// starts).
    Flooded,
    /// The connection to the server was reset while the negotiation ran
    /// ([`crate::Engine::connection_reset`]): it is dropped.
    ConnectionLost,
    /// Too many negotiations at once (or too many octets held by them): the oldest was dropped.
    Overloaded,
    /// A stanza arrived while away and the held queue was full ([`crate::Limits::queue`],
    /// [`crate::Limits::queue_octets`]): it was dropped.
    QueueFull,
    /// A session request that the server had stored while we were offline (it carries a
    /// delay stamp): not answered, since an answer would tell that we had been offline
    /// (XEP-0155 §4.2). Start a new negotiation if a session is still wanted.
    Stored,
    /// A local store failed while keeping what a stanza delivered (the offline inbox, the
    /// replay store): the stanza is dropped, nothing is told from it.
    Store(esession_negotiate::StoreError),
    /// A session request that this engine declined because it does not accept negotiations
    /// ([`crate::Engine::set_accepting`]): the contact was sent a decline (XEP-0155 §4.3).
    Declined,
    /// An offline message from a key not trusted was dropped, unread and silently (XEP-0187):
    /// [`crate::Limits::held`] messages are held for a decision already.
    HeldFull,
    /// Content that was to go encrypted to this contact was not sent, and is given back: a
    /// request of ours that was to carry it ([`crate::Engine::start_with`]) was dropped for the
    /// contact's crossing request (see the [engine's documentation](crate::engine)), and the
    /// negotiation of that request ended without a session (it failed, expired, was replaced,
    /// or the connection was reset) or its session could not take the content. Send it again
    /// in a new session if it is still wanted.
    NotSent {
        /// The content, as it was given.
        stanza: Element,
    },
}

/// One `tracing` event per [`Event`]: who (bare JID), the thread, kinds and conditions. Never
/// the SAS, a key, a stanza or its text: a message is told by its peer and thread only.
fn trace_event(e: &Event) {
    use tracing::{debug, info, trace, warn};
    match e {
        Event::Negotiated { peer, thread, sas, offline, .. } => {
            info!(peer = %peer.to_bare(), thread = %thread, offline, with_sas = sas.is_some(), "session established");
        }
        Event::Message { peer, thread, offline, .. } => {
            debug!(peer = %peer.to_bare(), thread = %thread, offline, "protected stanza received");
        }
        Event::Unprotected { peer, elements } => {
            warn!(peer = %peer.to_bare(), dropped = elements.len(), "children in clear beside an encrypted stanza: dropped");
        }
        Event::Clear { peer, stanza } => {
            debug!(peer = %peer.to_bare(), kind = stanza.name(), "stanza in clear: not protected");
        }
        Event::Alert { peer, alert } => {
            warn!(peer = %peer.to_bare(), alert = alert.kind(), "key-association or disclosure alert");
        }
        Event::Terminated { peer, thread, offline, why } => {
            info!(peer = %peer.to_bare(), thread = %thread, offline, why = ?why, "session ended");
        }
        Event::Failed { peer, failure } => match failure {
            // What any stranger or a late stanza causes: not worth a warning.
            Failure::NoSession | Failure::Stored | Failure::Expired => {
                debug!(peer = %peer.to_bare(), kind = failure.kind(), condition = failure.condition(), "failed: {failure}");
            }
            _ => {
                warn!(peer = %peer.to_bare(), kind = failure.kind(), condition = failure.condition(), "failed: {failure}")
            }
        },
        Event::SetAside(lost) => tracing::error!(what = %lost, "a kept record set aside"),
        Event::StanzaSession { peer, security } => {
            warn!(peer = %peer.to_bare(), security = security.as_str(), "plain stanza session: nothing will be encrypted");
        }
        Event::Presence { peer, available } => trace!(peer = %peer.to_bare(), available, "presence"),
        Event::SubscriptionRequest { peer } => debug!(peer = %peer, "subscription request"),
        Event::Iq { stanza } => debug!(kind = stanza.attr("type"), "IQ request for the application"),
        Event::IqResult { stanza } => trace!(kind = stanza.attr("type"), "IQ answer"),
        Event::Untrusted { peer, thread, .. } => {
            warn!(peer = %peer.to_bare(), thread = %thread, "offline message held: signed by a key not trusted");
        }
        Event::Reconnected { jid, resumed } => info!(account = %jid.to_bare(), resumed, "reconnected"),
        Event::Unconfirmed { peer, .. } => {
            warn!(peer = %peer.to_bare(), "a message the server had not confirmed may be lost");
        }
        Event::OfflineOptions { peer, refused: None } => debug!(peer = %peer, "offline options verified"),
        Event::OfflineOptions { peer, refused: Some(c) } => {
            warn!(peer = %peer, check = c.as_str(), "offline options refused");
        }
    }
}

impl Failure {
    /// A stable name of the failure's kind (for logs and programs).
    fn kind(&self) -> &'static str {
        match self {
            Failure::Negotiation(_) => "negotiation",
            Failure::Session(_) => "session",
            Failure::PeerError { .. } => "peer-error",
            Failure::Offline(_) => "offline",
            Failure::NoSession => "no-session",
            Failure::TooLarge => "too-large",
            Failure::Expired => "expired",
            Failure::RateLimited => "rate-limited",
            Failure::ConnectionLost => "connection-lost",
            Failure::Flooded => "flooded",
            Failure::Overloaded => "overloaded",
            Failure::QueueFull => "queue-full",
            Failure::Stored => "stored",
            Failure::Store(_) => "store",
            Failure::Declined => "declined",
            Failure::HeldFull => "held-full",
            Failure::NotSent { .. } => "not-sent",
        }
    }

    /// The XMPP error condition that goes with it: what was sent back, what the peer sent, or
    /// `silent` where nothing is sent (XEP-0187), and a local name otherwise.
    #[must_use]
    pub fn condition(&self) -> &str {
        match self {
            Failure::Negotiation(e) | Failure::Session(e) => match e {
                esession_negotiate::Error::PeerMisbehaved { condition, .. } => condition.as_str(),
                esession_negotiate::Error::Rejected { condition, .. } => {
                    condition.as_deref().unwrap_or("rejected")
                }
                esession_negotiate::Error::Stanza(se) => se.condition().unwrap_or("not-acceptable"),
                _ => "undefined-condition",
            },
            Failure::PeerError { condition, .. } => condition.as_deref().unwrap_or("undefined-condition"),
            Failure::Offline(_) => "silent",
            Failure::NoSession => "item-not-found",
            Failure::TooLarge => "policy-violation",
            Failure::Expired => "remote-server-timeout",
            Failure::RateLimited => "resource-constraint",
            Failure::ConnectionLost => "connection-lost",
            Failure::Flooded => "resource-constraint",
            Failure::Overloaded => "resource-constraint",
            Failure::QueueFull => "resource-constraint",
            Failure::Stored => "silent",
            Failure::Store(_) => "internal-server-error",
            Failure::Declined => "declined",
            Failure::HeldFull => "silent",
            Failure::NotSent { .. } => "not-sent",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Negotiation(e) => write!(f, "negotiation failed: {e}"),
            Failure::Session(e) => write!(f, "session stanza failed: {e}"),
            Failure::PeerError { condition, fields } => {
                write!(
                    f,
                    "the peer answered with an error ({})",
                    condition.as_deref().unwrap_or("no condition")
                )?;
                if !fields.is_empty() {
                    write!(f, " about {}", fields.join(", "))?;
                }
                Ok(())
            }
            Failure::Offline(c) => write!(f, "offline stanza dropped: {}", c.as_str()),
            Failure::NoSession => f.write_str("no session or negotiation for this stanza"),
            Failure::TooLarge => f.write_str("stanza beyond the size or depth limits, dropped unread"),
            Failure::Expired => f.write_str("the negotiation did not complete in time"),
            Failure::RateLimited => f.write_str("too many requests from this contact, dropped"),
            Failure::Flooded => f.write_str(
                "this contact's stanzas failed too often: its stanzas are dropped unread for a while",
            ),
            Failure::ConnectionLost => {
                f.write_str("the connection to the server was reset during the negotiation: dropped")
            }
            Failure::Overloaded => f.write_str("too many negotiations at once, the oldest was dropped"),
            Failure::QueueFull => f.write_str("the queue of stanzas held while away is full: dropped"),
            Failure::Stored => {
                f.write_str("a session request stored while we were offline: not answered (start anew)")
            }
            Failure::Store(e) => write!(f, "a local store failed: {e}"),
            Failure::Declined => f.write_str("a session request was declined: this resource accepts none"),
            Failure::HeldFull => f.write_str(
                "an offline message from a key not trusted was dropped: too many are held for a decision \
                 (trust or refuse their keys)",
            ),
            Failure::NotSent { .. } => f.write_str(
                "content to send was not sent: the negotiation that was to carry it ended without a \
                 session (send it again)",
            ),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Negotiation(e) | Failure::Session(e) => Some(e),
            _ => None,
        }
    }
}

impl Event {
    /// Who a [`Event::Negotiated`] or [`Event::Message`] is with, as a person should see it:
    /// the petname first, quoted, then the JID (`"Alice" (alice@example.org/pda)`), or the JID
    /// alone without a petname (XEP-0116 §7.4).
    #[must_use]
    pub fn who(&self) -> Option<String> {
        match self {
            Event::Negotiated { peer, petname, .. } | Event::Message { peer, petname, .. } => {
                Some(shown(peer, petname.as_deref()))
            }
            _ => None,
        }
    }

    /// The text of the `<body/>` of a [`Event::Message`] or [`Event::Clear`] message.
    #[must_use]
    pub fn body(&self) -> Option<String> {
        match self {
            Event::Message { stanza, .. } | Event::Clear { stanza, .. } => {
                stanza.get_child("body", stanza.ns().as_str()).map(Element::text)
            }
            _ => None,
        }
    }
}

/// A peer as a person should see it: `"petname" (jid)`, or the JID alone (XEP-0116 §7.4).
#[must_use]
pub fn shown(peer: &Jid, petname: Option<&str>) -> String {
    // X116-7.4-05: the petname comes first and quoted; the JID follows in parentheses.
    match petname {
        Some(p) => format!("\"{p}\" ({peer})"),
        None => peer.to_string(),
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let content = |e: &Element| format!("<{} with {} children>", e.name(), e.children().count());
        match self {
            Event::Negotiated { peer, thread, sas, offline, petname } => f
                .debug_struct("Negotiated")
                .field("peer", peer)
                .field("thread", thread)
                .field("sas", sas)
                .field("offline", offline)
                .field("petname", petname)
                .finish(),
            Event::Message { peer, thread, stanza, offline, petname, clear, id } => f
                .debug_struct("Message")
                .field("id", id)
                .field("peer", peer)
                .field("thread", thread)
                .field("stanza", &content(stanza))
                .field("offline", offline)
                .field("petname", petname)
                .field("clear", clear)
                .finish(),
            Event::Untrusted { peer, thread, key: _, fingerprint, id } => f
                .debug_struct("Untrusted")
                .field("id", id)
                .field("peer", peer)
                .field("thread", thread)
                .field("fingerprint", fingerprint)
                .finish_non_exhaustive(),
            Event::Unprotected { peer, elements } => {
                f.debug_struct("Unprotected").field("peer", peer).field("elements", elements).finish()
            }
            Event::Clear { peer, stanza } => {
                f.debug_struct("Clear").field("peer", peer).field("stanza", &content(stanza)).finish()
            }
            Event::Alert { peer, alert } => {
                f.debug_struct("Alert").field("peer", peer).field("alert", alert).finish()
            }
            Event::Terminated { peer, thread, offline, why } => f
                .debug_struct("Terminated")
                .field("peer", peer)
                .field("thread", thread)
                .field("offline", offline)
                .field("why", why)
                .finish(),
            Event::Failed { peer, failure } => {
                f.debug_struct("Failed").field("peer", peer).field("failure", failure).finish()
            }
            Event::SetAside(lost) => f.debug_tuple("SetAside").field(lost).finish(),
            Event::StanzaSession { peer, security } => {
                f.debug_struct("StanzaSession").field("peer", peer).field("security", security).finish()
            }
            Event::Presence { peer, available } => {
                f.debug_struct("Presence").field("peer", peer).field("available", available).finish()
            }
            Event::SubscriptionRequest { peer } => {
                f.debug_struct("SubscriptionRequest").field("peer", peer).finish()
            }
            Event::Iq { stanza } => f.debug_struct("Iq").field("stanza", &content(stanza)).finish(),
            Event::IqResult { stanza } => {
                f.debug_struct("IqResult").field("stanza", &content(stanza)).finish()
            }
            Event::Reconnected { jid, resumed } => {
                f.debug_struct("Reconnected").field("jid", jid).field("resumed", resumed).finish()
            }
            Event::Unconfirmed { peer, id } => {
                f.debug_struct("Unconfirmed").field("peer", peer).field("id", id).finish()
            }
            Event::OfflineOptions { peer, refused } => {
                f.debug_struct("OfflineOptions").field("peer", peer).field("refused", refused).finish()
            }
        }
    }
}
