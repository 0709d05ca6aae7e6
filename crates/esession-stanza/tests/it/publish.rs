//! XEP-0200 §10: which old MAC keys are published, and when; the bounds on what a session keeps
//! for publication and for unanswered re-keys (§9.1).

use crate::rules::{c_of, p, recv, rekey, send};
use crate::{TestRng, chat, pair, pair_with_keys};
use esession_crypto::{HashAlg, Profile, mpi};
use esession_stanza::hazmat::verify;
use esession_stanza::{EncryptOptions, Encrypted, Error, MAX_PUBLISHABLE, MAX_STORED_SETS, NS, Session};
use minidom::Element;

const PUBLISH: EncryptOptions = EncryptOptions { rekey: false, publish_old: true };

/// The `<old/>` values of a sent stanza.
fn olds(wire: &Element) -> Vec<Vec<u8>> {
    c_of(wire).children().filter(|c| c.is("old", NS)).map(|o| mpi::b64_decode(&o.text()).unwrap()).collect()
}

/// A stanza sent with every old MAC key that may be published now.
fn publish(s: &mut Session, text: &str) -> Element {
    s.encrypt(&chat(text), PUBLISH, &mut TestRng::new(98)).unwrap()
}

fn parsed(wire: &Element) -> Encrypted {
    Encrypted::parse(Profile::Xep, c_of(wire)).unwrap()
}

/// Whether `key` verifies `wire` at the counter its receiver expects next.
fn verifies(key: &[u8], wire: &Element, receiver: &Session) -> bool {
    verify(Profile::Xep, &HashAlg::Sha256, key, &parsed(wire), receiver.recv_counter()).is_ok()
}

/// X200-10-02: Alice publishes her old KM_A only after she sent a re-key and received a stanza
/// from Bob under her new key (`<new>1</new>`); a reply of Bob's without `<new/>` is not enough.
#[test]
fn old_mac_key_published_only_after_the_peer_used_the_new_key() {
    let (mut a, mut b, raw) = pair_with_keys(&p(), 70);
    let w1 = rekey(&mut a, Some("key 1"), 71);
    // Before any reply: nothing may be published.
    let probe = publish(&mut a, "probe 1");
    assert!(olds(&probe).is_empty(), "no reply from Bob yet");
    // Bob writes before he has the key: his stanza uses the old keys, no <new/>.
    let early = send(&mut b, "before the key");
    assert!(c_of(&early).get_child("new", NS).is_none());
    assert_eq!(recv(&mut a, &early).as_deref(), Some("before the key"));
    assert_eq!(a.publishable_old_keys(), 0, "a stanza under the old key confirms nothing");
    let probe2 = publish(&mut a, "probe 2");
    assert!(olds(&probe2).is_empty());
    // Bob receives the key (and the probes) and answers under the new key.
    for w in [&w1, &probe, &probe2] {
        assert!(recv(&mut b, w).is_some());
    }
    let answer = send(&mut b, "under your new key");
    assert_eq!(c_of(&answer).get_child("new", NS).map(|n| n.text()).as_deref(), Some("1"));
    assert_eq!(recv(&mut a, &answer).as_deref(), Some("under your new key"));
    // Now Alice's pre-re-key KM_A, and Bob's replaced KM_B, may be published.
    let out = publish(&mut a, "old keys");
    let published = olds(&out);
    let own: Vec<&Vec<u8>> = published.iter().filter(|k| k.as_slice() == raw.km.expose_secret()).collect();
    assert_eq!(own.len(), 1, "exactly one <old/> is Alice's old KM_A");
    assert!(published.iter().any(|k| k.as_slice() == raw.bob_km.expose_secret()), "Bob's old KM_B");
    assert_eq!(published.len(), 2, "nothing else");
    assert_eq!(a.publishable_old_keys(), 0, "published once");
    assert!(olds(&publish(&mut a, "again")).is_empty());
    // Bob ignores them (§10) and the session goes on.
    assert_eq!(b.decrypt(&out).unwrap().1.old_published, 2);
}

/// X200-10-02 with two re-keys in flight: Bob answers with `<new>1</new>` (he has key 1, not
/// key 2). The MAC key that sealed the stanza carrying key 2 must not be published: that
/// stanza may still be in flight, and a published key could forge it.
#[test]
fn second_rekey_in_flight_keeps_its_mac_key_unpublished() {
    let (mut a, mut b) = pair(&p());
    let w1 = rekey(&mut a, Some("key 1"), 81);
    let w2 = rekey(&mut a, Some("key 2"), 82);
    assert_eq!(a.stored_sets(), 3);
    assert_eq!(recv(&mut b, &w1).as_deref(), Some("key 1"));
    let answer = send(&mut b, "have key 1");
    assert_eq!(c_of(&answer).get_child("new", NS).map(|n| n.text()).as_deref(), Some("1"));
    assert_eq!(recv(&mut a, &answer).as_deref(), Some("have key 1"));
    assert_eq!(a.stored_sets(), 2);
    let out = publish(&mut a, "publishing");
    let published = olds(&out);
    assert!(!published.is_empty(), "the key before re-key 1 may go");
    for k in &published {
        assert!(!verifies(k, &w2, &b), "a published key verifies the stanza carrying key 2");
    }
    // w2 is delivered late and still verifies with Bob's keys; then the rest.
    assert_eq!(recv(&mut b, &w2).as_deref(), Some("key 2"));
    assert_eq!(recv(&mut b, &out).as_deref(), Some("publishing"));
    let answer2 = send(&mut b, "have key 2");
    assert_eq!(recv(&mut a, &answer2).as_deref(), Some("have key 2"));
    assert_eq!(a.stored_sets(), 1);
    // Now the key that sealed w2 may go: it verifies w2 (at w2's counter) and nothing later.
    let out2 = publish(&mut a, "more");
    assert!(!olds(&out2).is_empty());
}

/// X200-10-02 with crossing re-keys: after each side accepted the other's key, every stored set
/// holds the peer's current MAC key. Dropping the older set must not publish it: no `<old/>`
/// either side sends verifies the other's next stanza.
#[test]
fn crossing_rekeys_never_publish_a_live_key() {
    let (mut a, mut b) = pair(&p());
    let wa = rekey(&mut a, Some("from alice"), 21);
    let wb = rekey(&mut b, Some("from bob"), 22);
    assert_eq!(recv(&mut b, &wa).as_deref(), Some("from alice"));
    assert_eq!(recv(&mut a, &wb).as_deref(), Some("from bob"));
    // Alice's a0 carries <new>1</new>: Bob drops his set 0, which holds Alice's current KM_A.
    let a0 = send(&mut a, "a0");
    assert_eq!(c_of(&a0).get_child("new", NS).map(|n| n.text()).as_deref(), Some("1"));
    assert_eq!(recv(&mut b, &a0).as_deref(), Some("a0"));
    let b0 = publish(&mut b, "b0 with old keys");
    let bob_published = olds(&b0);
    assert!(!bob_published.is_empty(), "Bob's and Alice's retired keys");
    assert_eq!(recv(&mut a, &b0).as_deref(), Some("b0 with old keys"));
    let a1 = publish(&mut a, "a1 with old keys");
    let alice_published = olds(&a1);
    assert!(!alice_published.is_empty());
    for k in &bob_published {
        assert!(!verifies(k, &a1, &b), "Bob published Alice's live MAC key");
    }
    assert_eq!(recv(&mut b, &a1).as_deref(), Some("a1 with old keys"));
    let b1 = send(&mut b, "b1");
    for k in &alice_published {
        assert!(!verifies(k, &b1, &a), "Alice published Bob's live MAC key");
    }
    assert_eq!(recv(&mut a, &b1).as_deref(), Some("b1"));
}

/// X200-9.1-02: what a session keeps is bounded. Old MAC keys wait for publication at most
/// MAX_PUBLISHABLE at a time (the oldest dropped); receive sets for unanswered re-keys at most
/// MAX_STORED_SETS, a further re-key being refused until the peer answers.
#[test]
fn old_keys_and_stored_sets_are_bounded() {
    // A client that never publishes: every round adds Alice's and Bob's retired MAC keys.
    let (mut a, mut b) = pair(&p());
    for round in 0..2 * MAX_PUBLISHABLE as u64 {
        let w = rekey(&mut a, Some("k"), 100 + round);
        assert!(recv(&mut b, &w).is_some());
        let w = send(&mut b, "answer");
        assert!(recv(&mut a, &w).is_some());
        assert!(a.publishable_old_keys() <= MAX_PUBLISHABLE, "round {round}");
    }
    assert_eq!(a.publishable_old_keys(), MAX_PUBLISHABLE);
    let out = publish(&mut a, "the newest old keys");
    let published = olds(&out);
    assert_eq!(published.len(), MAX_PUBLISHABLE);
    for (i, k) in published.iter().enumerate() {
        assert!(!published[..i].contains(k), "each key once");
    }
    assert!(recv(&mut b, &out).is_some());

    // A silent peer: Alice may re-key until MAX_STORED_SETS sets are stored, then no more.
    let (mut a, mut b) = pair(&p());
    let mut sent = Vec::new();
    for i in 1..MAX_STORED_SETS as u64 {
        sent.push(rekey(&mut a, Some("k"), 200 + i));
    }
    assert_eq!(a.stored_sets(), MAX_STORED_SETS);
    let again = a.encrypt(
        &chat("one more"),
        EncryptOptions { rekey: true, publish_old: false },
        &mut TestRng::new(299),
    );
    assert_eq!(again, Err(Error::RekeysUnanswered { stored: MAX_STORED_SETS }));
    assert!(!a.is_closed(), "a refused re-key does not end the session");
    sent.push(send(&mut a, "without a key"));
    assert_eq!(a.stored_sets(), MAX_STORED_SETS);
    // Bob answers: he had every key, Alice is back to one set and may re-key again.
    for w in &sent {
        assert!(recv(&mut b, w).is_some());
    }
    let answer = send(&mut b, "all keys");
    let n = (MAX_STORED_SETS - 1).to_string();
    assert_eq!(c_of(&answer).get_child("new", NS).map(|x| x.text()), Some(n));
    assert!(recv(&mut a, &answer).is_some());
    assert_eq!(a.stored_sets(), 1);
    assert!(recv(&mut b, &rekey(&mut a, Some("k"), 300)).is_some());
    // A forced re-key (block budget) is not started either while the sets are full: past the
    // budget the session refuses to send.
    let mut prm = p();
    prm.max_blocks = 64;
    let (mut a, _) = pair(&prm);
    for i in 1..MAX_STORED_SETS as u64 {
        let _ = rekey(&mut a, None, 400 + i);
    }
    let long = "y".repeat(2000);
    assert_eq!(
        a.encrypt(&chat(&long), EncryptOptions::default(), &mut TestRng::new(1)),
        Err(Error::KeyExhausted)
    );
    assert_eq!(a.stored_sets(), MAX_STORED_SETS);
}

/// X116-5-05 (through the stanza layer): after our terminate only the receive keys stay. With
/// an old MAC key waiting to be published and re-key sets stored, `stop_sending` drops the send
/// keys, the unpublished keys and every exponent; the peer's stanzas still verify, a re-key of
/// the peer's now ends the session, and nothing can be sent.
#[test]
fn stop_sending_keeps_only_the_receive_keys() {
    let (mut a, mut b, _) = pair_with_keys(&p(), 80);
    // Alice re-keys and Bob answers under the new key: Alice holds an old key to publish.
    let w1 = rekey(&mut a, Some("key 1"), 81);
    assert!(recv(&mut b, &w1).is_some());
    let answer = send(&mut b, "under your new key");
    assert!(recv(&mut a, &answer).is_some());
    assert!(a.publishable_old_keys() > 0, "an old key waits for publication");
    a.stop_sending();
    assert!(!a.is_sending() && !a.is_closed());
    assert_eq!(a.send_counter(), None, "send keys destroyed");
    assert_eq!(a.publishable_old_keys(), 0, "unpublished old MAC keys destroyed");
    assert!(matches!(
        a.encrypt(&chat("late"), EncryptOptions::default(), &mut TestRng::new(82)),
        Err(Error::SessionClosed)
    ));
    // The receive keys still verify the peer's stanzas (the acknowledgement).
    let ack_like = send(&mut b, "acknowledgement");
    assert_eq!(recv(&mut a, &ack_like).as_deref(), Some("acknowledgement"));
    // A re-key of the peer's cannot be taken (our exponents are gone): the session ends.
    let r = rekey(&mut b, Some("rekey"), 83);
    assert!(a.decrypt(&r).is_err());
    assert!(a.is_closed(), "a re-key after our terminate ends the session");
}
