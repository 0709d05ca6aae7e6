//! Review (security) of the issue-21 failure budget: stanzas a legitimate contact sends in
//! good faith spend its budget too, and cut it off. Then the review of the offline sessions
//! kept across a crash: a failed write and the options' expiry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use esession_negotiate::Mode;
use esession_stanza::EncryptOptions;
use esession_xmpp::relay::Relay;
use esession_xmpp::{Event, Failure, Limits};
use minidom::Element;

fn stamped(mut s: Element, from: &str) -> Element {
    set(&mut s, "from", from);
    s
}

/// After a reconnection without resumption, Alice ends her online sessions without a word
/// (`Engine::connection_reset`). Bob (a bot, say) keeps sending in his session until he hears
/// of her new presence: each of his stanzas is one "of no session" and spends his failure
/// budget, and once it is spent his new negotiation request, the very thing that would heal
/// the situation, is dropped unread for up to a minute (Failure::Flooded). A legitimate
/// contact is cut off by the engine's own reset.
#[test]
fn stale_stanzas_after_a_connection_reset_cut_the_contact_off() {
    // A few stale stanzas: Bob's new negotiation succeeds (the control).
    assert!(renegotiates_after(3).1);
    let budget = Limits::default().failures_per_minute as usize;
    let (flooded, ok) = renegotiates_after(budget + 1);
    assert!(ok, "Bob's new negotiation was dropped (cut off: {flooded}): a legitimate contact lost stanzas");
}

/// Bob sends `burst` messages in the session Alice dropped, then negotiates again: whether
/// Alice was told he is cut off, and whether the new session opened.
fn renegotiates_after(burst: usize) -> (bool, bool) {
    let (mut r, a, b) = pair();
    r.start(a, BOB, Mode::Four).unwrap();
    r.drive();
    assert!(r.engine(a).has_session(&bare(BOB)));
    let t = r.now();
    r.engine(a).connection_reset(t);
    r.take_events(a);
    // Bob's burst in his (now stale) session.
    let mut flooded = false;
    for i in 0..burst {
        let sealed = r.engine(b).chat(&bare(ALICE), &format!("m{i}"), EncryptOptions::default()).unwrap();
        let step = r.engine(a).handle(t, &stamped(sealed, BOB));
        flooded |= step.events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Flooded, .. }));
    }
    // Bob notices and negotiates again, a few seconds later.
    r.engine(b).terminate_all();
    r.start(b, ALICE, Mode::Four).unwrap();
    r.drive();
    (flooded, r.engine(a).has_session(&bare(BOB)))
}

/// Issue 19/20: an offline message held for a trust decision (Event::Untrusted) must not be
/// delivered as protected before the user trusts its key (`Engine::trust_held`). Turning trust
/// on first use on afterwards (the bot restarts with it, say) makes `FirstUseTrust::trusts`
/// answer yes for any key of a contact with no key associated: the held message is then told
/// as an Event::Message, though nobody decided and nothing was pinned (no Negotiated event
/// comes for it, so `client::trust_on_first_use` never runs).
#[test]
fn trust_on_first_use_turned_on_later_releases_held_messages_unpinned() {
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let ap = ak.public_key();
    let mut r = Relay::new(now());
    let a = r.add(ALICE, engine(Some(ak), &[])).unwrap();
    let b = r.add(BOB, engine(Some(bk), &[("alice@example.org", ap)])).unwrap();
    let set = away(&mut r, a, chrono::Duration::hours(24));
    for s in
        r.offline_start(b, "alice@example.org", esession_xmpp::engine::body_message("held"), &[]).unwrap()
    {
        r.inject(b, s);
    }
    r.drive();
    let ea = alice_returns(&mut r, a, set);
    assert!(bodies(&ea).is_empty(), "held first: {ea:?}");
    assert_eq!(r.engine(a).held_untrusted().unwrap().len(), 1);
    // Nobody trusts Bob's key; trust on first use is merely turned on.
    r.engine(a).set_trust_on_first_use(true);
    let told = r.engine(a).unacknowledged().unwrap();
    assert!(
        bodies(&told).is_empty(),
        "a held message was told as protected without a decision or a pin: {told:?}"
    );
}

/// Trust on first use (issue 20) trusts "whoever answers first" for a contact with no key.
/// Two offline starts under one stranger's JID with two different keys, in the same return,
/// must not both be delivered as protected: online, the first key is associated as the
/// session is established (so a second key is no longer a first use); offline starts were
/// never associated, so every start of the batch passed as a first use, and the client's pin
/// afterwards (FirstUse::Changed for the second) comes after the message was delivered.
#[test]
fn trust_on_first_use_accepts_one_key_per_stranger_in_a_return() {
    let (ak, bk) = (rsa("rsa.pem"), bob_key());
    let mut r = Relay::new(now());
    let ap = ak.public_key();
    let mut alice = engine(Some(ak), &[]);
    alice.set_trust_on_first_use(true);
    let a = r.add(ALICE, alice).unwrap();
    let b = r.add(BOB, engine(Some(bk), &[("alice@example.org", ap.clone())])).unwrap();
    // Someone else under Bob's JID (another resource), with another key.
    let m =
        r.add("bob@example.com/other", engine(Some(rsa("rsa.pem")), &[("alice@example.org", ap)])).unwrap();
    let set = away(&mut r, a, chrono::Duration::hours(24));
    for (i, text) in [(b, "from bob"), (m, "from someone else")] {
        for s in
            r.offline_start(i, "alice@example.org", esession_xmpp::engine::body_message(text), &[]).unwrap()
        {
            r.inject(i, s);
        }
        r.drive();
    }
    let ea = alice_returns(&mut r, a, set);
    let delivered = bodies(&ea);
    assert_eq!(delivered, ["from bob"], "two keys taken as Bob's first key: {delivered:?}");
    // The other is held for the user's decision, not lost.
    let held = ea.iter().filter(|e| matches!(e, Event::Untrusted { .. })).count();
    assert_eq!(held, 1, "{ea:?}");
}

// ---------------------------------------------------------------------------------------------
// Offline sessions kept across a crash (review of 2026-12-04)

use esession_negotiate::{StoreError, StoreErrorKind};
use esession_xmpp::engine::{Inbox, Kept, KeptSession, MemoryInbox, MessageId};

/// A memory inbox whose `fail_at`-th write of an offline session's stanza fails once (a
/// transient disk error).
struct FailOnce {
    inner: MemoryInbox,
    writes: usize,
    fail_at: usize,
}

impl Inbox for FailOnce {
    fn keep(&mut self, m: &Kept) -> Result<bool, StoreError> {
        self.inner.keep(m)
    }
    fn held(&self) -> Result<Vec<Kept>, StoreError> {
        self.inner.held()
    }
    fn ack(&mut self, id: &MessageId) -> Result<bool, StoreError> {
        self.inner.ack(id)
    }
    fn keep_in_session(
        &mut self,
        m: Option<&Kept>,
        s: &KeptSession,
        taken: Option<&[u8; 16]>,
    ) -> Result<bool, StoreError> {
        self.writes += 1;
        if self.writes == self.fail_at + 1 {
            return Err(StoreError::new(StoreErrorKind::Io, "disk full (transient)"));
        }
        self.inner.keep_in_session(m, s, taken)
    }
    fn sessions(&self) -> Result<Vec<KeptSession>, StoreError> {
        self.inner.sessions()
    }
    fn forget_session(&mut self, base: &[u8; 32]) -> Result<bool, StoreError> {
        self.inner.forget_session(base)
    }
}

/// Alice away for a day; Bob's offline session: the start ("first") and three later stanzas,
/// stamped and not yet delivered (handed to Alice's engine by each test); half an hour later.
fn offline_session_of_four() -> (Relay, usize, esession_offline::away::Published, Vec<Element>) {
    let (mut r, a, b) = pair();
    let published = away(&mut r, a, chrono::Duration::hours(24));
    let content = esession_xmpp::engine::body_message("first");
    let mut stanzas =
        r.offline_start(b, "alice@example.org", content, &["second", "third", "fourth"]).unwrap();
    for s in &mut stanzas {
        set(s, "from", BOB);
    }
    r.advance(chrono::Duration::minutes(30));
    (r, a, published, stanzas)
}

/// One failed write of a later stanza loses that stanza (told), not the session: the engine
/// once rolled the session back to the state kept on disk, as if the server would hand the
/// stanza over again; it does not (stream management acknowledged it), so the next stanza
/// failed its MAC and ended the session, losing every later message.
#[test]
fn one_failed_write_loses_that_stanza_not_the_session() {
    let (mut r, a, published, stanzas) = offline_session_of_four();
    // Write 0: the start; write 1 ("second") fails.
    r.engine(a)
        .set_inbox(Box::new(FailOnce { inner: MemoryInbox::default(), writes: 0, fail_at: 1 }))
        .unwrap();
    let mut events = alice_returns(&mut r, a, published);
    let now = r.now();
    for s in &stanzas {
        events.extend(r.engine(a).handle(now, s).events);
    }
    assert_eq!(bodies(&events), ["first", "third", "fourth"], "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::Failed { failure: Failure::Store(_), .. })));
    assert!(!events.iter().any(|e| matches!(e, Event::Terminated { .. })), "{events:?}");
}

/// X187-3.4-02: once her options have expired, Alice decrypts no stanza of an offline session,
/// even when no tick came since (ticks run at most once a second): the session ends, Expired.
#[test]
fn no_stanza_of_an_offline_session_is_decrypted_after_the_options_expire() {
    let (mut r, a, published, stanzas) = offline_session_of_four();
    let expires = published.secrets.expires;
    r.engine(a).set_inbox(Box::new(MemoryInbox::default())).unwrap();
    alice_returns(&mut r, a, published);
    let now = r.now();
    let step = r.engine(a).handle(now, &stanzas[0]);
    assert_eq!(bodies(&step.events), ["first"]);
    let _ = r.engine(a).tick(expires - chrono::Duration::milliseconds(400));
    let step = r.engine(a).handle(expires + chrono::Duration::milliseconds(500), &stanzas[1]);
    assert!(bodies(&step.events).is_empty(), "decrypted after the expiry: {:?}", step.events);
    assert!(
        step.events.iter().any(|e| matches!(e, Event::Terminated { why: esession_xmpp::Ended::Expired, .. })),
        "{:?}",
        step.events
    );
}
