//! The connection to the server, as the engine sees it: what a stream reset (a reconnection
//! that lost the server's state of us, such as after a server restart) does to sessions.

use super::{Ended, Engine, Event, Failure, Step};
use chrono::{DateTime, Utc};

impl Engine {
    /// The stream to the server was established again **with loss of state** (tokio-xmpp's
    /// `Online { resumed: false }` after the first login: the server restarted, or the stream
    /// could not be resumed with XEP-0198). The server has announced our old resource
    /// unavailable to our contacts, whose clients then end their sessions with it (XEP-0116 §5,
    /// XEP-0155 §6: a session is bound to both full JIDs), so:
    ///
    /// * every online session ends here too ([`Ended::ConnectionLost`]); nothing is sent (the
    ///   peer holds the session no more, and a terminate would reach it as a stanza of no
    ///   session). Its keys are destroyed with it. A stanza encrypted in it and not yet
    ///   delivered when the connection dropped is lost with it: what the application sends
    ///   from now on needs a new session;
    /// * every negotiation in progress fails ([`Failure::ConnectionLost`]): its peer may have
    ///   answered a resource that no longer exists; content a request of ours was to carry
    ///   into the session of a crossing request is given back ([`Failure::NotSent`]);
    /// * every contact's resources are forgotten, each one that was available told
    ///   unavailable ([`Event::Presence`]): the server sends presence again once we announce
    ///   ours;
    /// * offline sessions are kept: they are bound to bare JIDs (XEP-0187), not to our
    ///   resource;
    /// * our presence is announced again: the step's last stanza is `<presence/>` (an
    ///   application that drives the engine itself sends it, and no presence of its own);
    ///   not while the engine is away ([`Engine::is_away`]): the return announces it, after
    ///   withdrawing the subscribers' options (XEP-0187 §3.4). Options for subscribers
    ///   published while online ([`crate::Client::publish_offline`]) stay published: withdraw
    ///   them before such a reset can happen, or go away first.
    ///
    /// The sessions are ended and the presence forgotten before the presence is sent: every
    /// stanza the new stream brings is read against the new state.
    ///
    /// A resumed stream (XEP-0198, nothing lost) changes nothing: do not call this then.
    pub fn connection_reset(&mut self, now: DateTime<Utc>) -> Step {
        let mut step = Step::default();
        for o in self.sessions.take_all() {
            if o.offline {
                self.sessions.push(o);
                continue;
            }
            // The peer may not know yet: what it still sends in it is not its fault.
            self.forgive(&o.est.peer().to_bare(), o.est.thread());
            step.event(Event::Terminated {
                peer: o.est.peer().clone(),
                thread: o.est.thread().to_owned(),
                offline: false,
                why: Ended::ConnectionLost,
            });
            // `o` drops here: Established zeroizes its keys.
        }
        for n in self.negotiations.drain(..) {
            step.event(Event::Failed { peer: n.peer, failure: Failure::ConnectionLost });
        }
        // Content parked for the session of a crossing request goes back to the application.
        self.unsent(&mut step);
        for peer in self.presence.forget_resources() {
            step.event(Event::Presence { peer, available: false });
        }
        self.ticked = Some(now);
        // Away (holding stanzas, options published): no presence until the return, which
        // withdraws the options first (XEP-0187 §3.4).
        if !self.offline.holding() {
            step.send.push(minidom::Element::bare("presence", "jabber:client"));
        }
        step
    }
}
