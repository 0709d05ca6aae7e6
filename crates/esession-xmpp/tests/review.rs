//! Review (security) of the issue-21 failure budget: stanzas a legitimate contact sends in
//! good faith spend its budget too, and cut it off.

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
