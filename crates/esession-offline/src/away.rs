//! The whole absence: Alice going offline and coming back ([`go_offline`], [`come_back`]), and
//! Bob's side of the offline sessions he started ([`Outbox`]).
//!
//! These functions put the single steps of [`publish`](crate::publish), [`send`](crate::send)
//! and [`receive`] together in the order XEP-0187 §3 gives, so that an
//! application only moves stanzas and stores sealed secrets.

use crate::publish::{Plan, Secrets, prepare};
use crate::replay::ReplayStore;
use crate::send::{Verified, amp_match_resource, start};
use crate::{Audience, Check, Error, Result, pep, receive};
use esession_crypto::Profile;
use esession_forms::esession::Wrapper;
use esession_negotiate::{BareJid, Config, Entropy, Established, Jid, Received, TrustStore};
use minidom::Element;
use rand_core::CryptoRng;

/// One published option set: the IQs to send (node creation, then publish) and the secrets to
/// seal and keep until the return.
#[derive(Debug)]
pub struct Published {
    /// Which set.
    pub audience: Audience,
    /// `<iq type='set'/>` stanzas for the user's own server, in order.
    pub iqs: Vec<Element>,
    /// What Alice keeps (seal it with [`Secrets::seal`] before going offline).
    pub secrets: Secrets,
}

fn iq_id(entropy: &mut dyn Entropy, what: &str) -> String {
    let tag: String = entropy.bytes(6).iter().map(|b| format!("{b:02x}")).collect();
    format!("esession-{what}-{tag}")
}

/// Alice goes offline: one option set per audience (each with its own N_A and exponents), and
/// the IQs that create, configure and fill each node (§3.1).
///
/// # Errors
/// The plan cannot be published (no group, no signing key, nothing to offer).
pub fn go_offline(
    plan: &Plan,
    audiences: &[Audience],
    now: chrono::DateTime<chrono::Utc>,
    entropy: &mut dyn Entropy,
) -> Result<Vec<Published>> {
    let mut out = Vec::new();
    for &audience in audiences {
        let (options, secrets) = prepare(plan, audience, now, entropy)?;
        // X187-3.1-10: the node is created (and configured: access model, no notifications,
        // last item never sent) before the publish; a server that has it already refuses the
        // creation harmlessly. X187-3.1-09: both go to her own server (no `to`).
        let iqs = vec![
            pep::create_node(audience, &iq_id(entropy, "create")),
            pep::publish(audience, &iq_id(entropy, "publish"), options),
        ];
        out.push(Published { audience, iqs, secrets });
    }
    Ok(out)
}

/// An offline session Alice accepted on her return. Its `Debug` shows no content.
pub struct Accepted {
    /// Alice's side (receive only: she never sends inside it).
    pub session: Established,
    /// The decrypted contents, in order: the start's, then those of later stanzas.
    pub contents: Vec<Element>,
    /// Children that came in clear beside the session's stanzas, outside what XEP-0200 §5
    /// leaves in clear: not covered by a MAC, dropped, named here (at most 16 per stanza).
    pub unprotected: Vec<String>,
    /// Whether the session is over (terminated by Bob, or a failure closed it).
    pub ended: bool,
}

/// A queued stanza that was dropped, silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Its index in the queue.
    pub index: usize,
    /// Why.
    pub check: Check,
}

impl core::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Accepted")
            .field("session", &self.session)
            .field("contents", &format_args!("<{} redacted>", self.contents.len()))
            .field("unprotected", &self.unprotected)
            .field("ended", &self.ended)
            .finish()
    }
}

/// What the return produced.
#[derive(Debug)]
pub struct Returned {
    /// The IQ that withdraws the subscribers' options (an empty `<item/>`, Example 8): send it
    /// first.
    pub withdraw: Element,
    /// The sessions accepted, in the order their starts were queued.
    pub sessions: Vec<Accepted>,
    /// The stanzas dropped.
    pub dropped: Vec<Dropped>,
    /// Indexes of queued stanzas that are no part of an offline session (for the application).
    pub other: Vec<usize>,
}

/// Alice comes back (§3.4, I27, I28): withdraws the subscribers' options, then processes the
/// stanzas queued while she was away, in order. Starts are checked against the subscribers' set
/// and then the everyone set; later encrypted stanzas go to the session with the same peer and
/// thread. Nothing is ever sent back: every failure is silent, and a termination is not
/// acknowledged (§5). The subscribers' secrets are consumed and destroyed (zeroized) when this
/// returns, used or not; the caller deletes its sealed copy. The everyone set stays valid until
/// it is replaced.
///
/// Replay entries of expired options are purged first.
///
/// # Errors
/// Only a replay store that cannot record or purge: then nothing may be trusted, and no session
/// is returned.
#[allow(clippy::too_many_arguments)]
pub fn come_back<R: CryptoRng + ?Sized>(
    subscribers: Option<Secrets>,
    everyone: Option<&Secrets>,
    queued: &[Element],
    now: chrono::DateTime<chrono::Utc>,
    profile: Profile,
    trust: &dyn TrustStore,
    replay: &mut dyn ReplayStore,
    rng: &mut R,
) -> Result<Returned> {
    // Entries of expired options can never match again: forget them (bounded growth).
    // X187-6.1-03: entries live until their options expire.
    replay.purge(now)?;
    // Every start is checked against the staged entries too, and all of them are committed in
    // one unit before anything is returned (the crash guarantee, one fsync per return).
    let mut staged = crate::replay::Staged::new(replay);
    let replay: &mut dyn ReplayStore = &mut staged;
    let withdraw = pep::withdraw(Audience::Subscribers, "esession-withdraw");
    let mut sessions: Vec<Accepted> = Vec::new();
    let mut dropped = Vec::new();
    let mut other = Vec::new();
    let sets: Vec<&Secrets> = subscribers.iter().chain(everyone).collect();
    for (index, stanza) in queued.iter().enumerate() {
        if matches!(Wrapper::find(stanza).map(Wrapper::unwrap), Some(Ok((Wrapper::Init, _)))) {
            let mut why = Check::UnknownNonce;
            let mut done = false;
            for s in &sets {
                match receive::accept(s, stanza, now, profile, trust, replay) {
                    Ok((session, content)) => {
                        let ended = session.phase() == esession_negotiate::Phase::Closed;
                        let (contents, unprotected) = match content {
                            Some(c) => (vec![c.stanza], c.unprotected),
                            None => (Vec::new(), Vec::new()),
                        };
                        sessions.push(Accepted { session, contents, unprotected, ended });
                        done = true;
                        break;
                    }
                    // Another set may have published this nonce.
                    Err(Error::Refused(Check::UnknownNonce)) => {}
                    Err(Error::Refused(c)) => {
                        why = c;
                        break;
                    }
                    Err(e @ Error::Store(_)) => return Err(e),
                    Err(_) => {
                        why = Check::Form;
                        break;
                    }
                }
            }
            if !done {
                dropped.push(Dropped { index, check: why });
            }
            continue;
        }
        if !stanza.children().any(|c| c.is("c", esession_stanza::NS)) {
            other.push(index);
            continue;
        }
        let from = stanza.attr("from").and_then(|f| Jid::new(f).ok()).map(|j| j.to_bare());
        let thread = stanza.get_child("thread", "jabber:client").map(Element::text).unwrap_or_default();
        let target = sessions
            .iter_mut()
            .find(|a| !a.ended && Some(a.session.peer().to_bare()) == from && a.session.thread() == thread);
        let Some(a) = target else {
            dropped.push(Dropped { index, check: Check::NoSession });
            continue;
        };
        // An acknowledgement is never sent in an offline session: `false` and the ack dropped.
        match a.session.receive(stanza, false, rng) {
            Ok(Received::Stanza { stanza, unprotected, .. }) => {
                a.contents.push(stanza);
                a.unprotected.extend(unprotected);
            }
            Ok(Received::Terminated { .. }) => a.ended = true,
            Ok(_) => {}
            Err(_) => {
                a.ended = true;
                dropped.push(Dropped { index, check: Check::Content });
            }
        }
    }
    drop(sets);
    // X187-6.1-01 X187-3.4-01: the subscribers' N_A and x are destroyed (zeroized) now.
    drop(subscribers);
    // Nothing accepted is handed out unless its replay entries are durable.
    staged.commit()?;
    Ok(Returned { withdraw, sessions, dropped, other })
}

/// Bob's offline sessions: at most one per contact, later stanzas with the same AMP rule, and
/// termination as soon as the contact is seen online (§3.3, §5).
#[derive(Debug, Default)]
pub struct Outbox {
    open: Vec<Outgoing>,
}

#[derive(Debug)]
struct Outgoing {
    alice: BareJid,
    session: Established,
    match_resource: bool,
    /// When the options the session was started from expire: nothing is sent after it.
    expires: chrono::DateTime<chrono::Utc>,
}

impl Outbox {
    /// An empty outbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an offline session with `jid` (any resource) is open.
    #[must_use]
    pub fn has_session(&self, jid: &BareJid) -> bool {
        self.open.iter().any(|o| o.alice == *jid)
    }

    /// The open offline session with `jid`, read only (its full JID, thread, counters).
    #[must_use]
    pub fn session(&self, jid: &BareJid) -> Option<&Established> {
        self.open.iter().find(|o| o.alice == *jid).map(|o| &o.session)
    }

    /// Starts an offline session with the verified options' owner, refusing a second one while
    /// one is open. With `terminate`, the session is closed at once (object encryption) and not
    /// kept.
    ///
    /// # Errors
    /// [`Error::Config`] when a session is open; [`start`]'s errors.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        v: Verified,
        cfg: &Config,
        thread: &str,
        content: Option<Element>,
        terminate: bool,
        now: chrono::DateTime<chrono::Utc>,
        entropy: &mut dyn Entropy,
    ) -> Result<Element> {
        // X187-3-02: one offline session per contact.
        if self.has_session(v.alice()) {
            return Err(Error::Config("an offline session with this contact is already open"));
        }
        let alice = v.alice().clone();
        let match_resource = v.options().match_resource.is_some();
        // `verify` parsed it; the options were valid at `now`.
        let expires = crate::parse_xep0082(&v.options().expires).ok_or(Error::Refused(Check::Form))?;
        let (stanza, session) = start(v, cfg, thread, content, terminate, now, entropy)?;
        if !terminate {
            self.open.push(Outgoing { alice, session, match_resource, expires });
        }
        Ok(stanza)
    }

    /// Encrypts a later stanza of the open session with `jid`: addressed as the start was (the
    /// session's full JID when the options named a resource, whatever `to` the content has),
    /// on the session's thread, with the AMP rule when the options named a resource.
    ///
    /// # Errors
    /// No open session; [`Error::Refused`] ([`Check::OptionsExpired`]) once the options the
    /// session was started from have expired (the session is then closed); encryption failed.
    pub fn send<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &BareJid,
        content: &Element,
        now: chrono::DateTime<chrono::Utc>,
        rng: &mut R,
    ) -> Result<Element> {
        let i = self
            .open
            .iter()
            .position(|o| o.alice == *jid)
            .ok_or(Error::Config("no offline session with this contact"))?;
        // X187-3.2-05: nothing encrypted goes to Alice after her options expired (now >= expires,
        // as `send::verify`): the session ends here.
        if now >= self.open[i].expires {
            let mut o = self.open.swap_remove(i);
            o.session.close();
            return Err(Error::Refused(Check::OptionsExpired));
        }
        let o = &mut self.open[i];
        // X187-3.3-06: every stanza of the session goes to the address of the start (Alice's
        // published resource), never to one the caller wrote, and on the session's thread.
        let mut content = content.clone();
        if let Ok(n) = esession_forms::xml::attr_name("to") {
            content.set_attr(minidom::rxml::Namespace::NONE, n, o.session.peer().to_string());
        }
        if content.name() == "message" {
            while content.remove_child("thread", "jabber:client").is_some() {}
            content
                .append_child(Element::builder("thread", "jabber:client").append(o.session.thread()).build());
        }
        let mut wire = o
            .session
            .encrypt(&content, esession_stanza::EncryptOptions::default(), rng)
            .map_err(|_| Error::Config("the offline session cannot encrypt"))?;
        if o.match_resource {
            // X187-3.3-06: ... and the AMP rule keeps it from any other resource.
            wire.append_child(amp_match_resource());
        }
        Ok(wire)
    }

    /// The contact came online (or Bob is done): the offline session ends. Returns the
    /// encrypted terminate to send (Alice will not acknowledge it), or `None` when no session
    /// was open or its options have expired (nothing encrypted is sent then; the session is
    /// dropped all the same). Like every stanza of the session, the terminate carries the AMP
    /// rule when the options named a resource.
    ///
    /// # Errors
    /// Encryption of the terminate failed (the session is dropped all the same).
    pub fn contact_online<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &BareJid,
        now: chrono::DateTime<chrono::Utc>,
        rng: &mut R,
    ) -> Result<Option<Element>> {
        // X187-5-01: the contact is online: terminate at once.
        let Some(i) = self.open.iter().position(|o| o.alice == *jid) else { return Ok(None) };
        let mut o = self.open.swap_remove(i);
        // X187-3.2-05: not even a terminate after the expiry.
        if now >= o.expires {
            o.session.close();
            return Ok(None);
        }
        let mut wire = o.session.terminate(false, rng).map_err(|_| Error::Config("terminate failed"))?;
        if o.match_resource {
            // X187-3.3-06: the terminate is a stanza of the session too.
            wire.append_child(amp_match_resource());
        }
        Ok(Some(wire))
    }
}
