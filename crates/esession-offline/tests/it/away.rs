//! The whole absence: both option sets, Bob's outbox, Alice's return with a queue.

use crate::keys;
use chrono::{DateTime, Duration, TimeZone, Utc};
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptoProvider, ModpGroup, Profile};
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::{Config, MemoryTrust, RngEntropy};
use esession_offline::away::{Dropped, Outbox, come_back, go_offline};
use esession_offline::publish::Plan;
use esession_offline::replay::MemoryReplay;
use esession_offline::{Audience, Check, Error, pep, send};
use minidom::Element;

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap()
}

fn chat(body: &str) -> Element {
    let mut m = Element::bare("message", "jabber:client");
    m.append_child(Element::builder("body", "jabber:client").append(body).build());
    m
}

fn stamped(mut s: Element, from: &str) -> Element {
    s.set_attr(
        minidom::rxml::Namespace::NONE,
        esession_forms::xml::attr_name("from").unwrap(),
        from.to_owned(),
    );
    s
}

fn body_of(e: &Element) -> Option<String> {
    e.get_child("body", "jabber:client").map(Element::text)
}

#[test]
fn both_sets_an_outbox_and_a_return() {
    let (rsa, dsa) = keys();
    // Alice signs with both keys; Bob's identity is a DSA key.
    let (alice_pub, bob_pub) = (rsa.public_key(), keys().1.public_key());
    let plan = Plan {
        profile: Profile::Xep,
        provider: CryptoProvider { modp: vec![ModpGroup::G1, ModpGroup::G2], ..CryptoProvider::default() },
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![rsa, dsa],
        lifetime: Duration::hours(24),
        match_resource: Some("home".into()),
    };
    let mut sets = go_offline(
        &plan,
        &[Audience::Subscribers, Audience::Everyone],
        t0(),
        &mut RngEntropy(&mut TestRng::new(1)),
    )
    .unwrap();
    assert_eq!(sets.len(), 2);
    assert_ne!(sets[0].secrets.na, sets[1].secrets.na, "each set has its own N_A");
    for p in &sets {
        assert_eq!(p.iqs.len(), 2);
        assert!(String::from(&p.iqs[0]).contains(p.audience.node()));
        assert!(pep::options_in(&p.iqs[1]).is_some());
    }
    let options = |i: usize| pep::options_in(&sets[i].iqs[1]).unwrap().clone();
    let (subs_options, everyone_options) = (options(0), options(1));
    let everyone = sets.pop().unwrap().secrets;
    let subscribers = sets.pop().unwrap().secrets;

    // Bob (a subscriber, DSA identity) and Carol (anyone, the same key for brevity).
    let mut trust_alice = MemoryTrust::default();
    trust_alice.trust(&crate::bare("alice@example.org"), alice_pub);
    let now = t0() + Duration::hours(3);
    let bob_cfg = crate::weak_ok(Config::with_identity(keys().1));
    let mut bob = Outbox::new();
    let v = send::verify(&subs_options, &crate::bare("alice@example.org"), &trust_alice, now, Profile::Xep)
        .unwrap();
    let mut e = RngEntropy(&mut TestRng::new(2));
    let start = bob.start(v, &bob_cfg, "t-bob", Some(chat("one")), false, now, &mut e).unwrap();
    assert_eq!(start.attr("to"), Some("alice@example.org/home"));
    assert!(bob.has_session(&crate::bare("alice@example.org/anything")));
    let v = send::verify(&subs_options, &crate::bare("alice@example.org"), &trust_alice, now, Profile::Xep)
        .unwrap();
    assert_eq!(
        bob.start(v, &bob_cfg, "t-bob2", None, false, now, &mut e).err(),
        Some(Error::Config("an offline session with this contact is already open")),
        "never a second session while one exists"
    );
    let later = bob.send(&crate::bare("alice@example.org"), &chat("two"), now, &mut TestRng::new(3)).unwrap();
    assert!(later.children().any(|c| c.name() == "amp"), "later stanzas carry the AMP rule");
    let terminate =
        bob.contact_online(&crate::bare("alice@example.org"), now, &mut TestRng::new(4)).unwrap().unwrap();
    assert!(!bob.has_session(&crate::bare("alice@example.org")));
    assert_eq!(
        bob.contact_online(&crate::bare("alice@example.org"), now, &mut TestRng::new(4)).unwrap(),
        None
    );

    let mut carol = Outbox::new();
    let v2 =
        send::verify(&everyone_options, &crate::bare("alice@example.org"), &trust_alice, now, Profile::Xep)
            .unwrap();
    let carol_start = carol
        .start(
            v2,
            &bob_cfg,
            "t-carol",
            Some(chat("hi from carol")),
            true,
            now,
            &mut RngEntropy(&mut TestRng::new(5)),
        )
        .unwrap();
    assert!(!carol.has_session(&crate::bare("alice@example.org")), "object encryption keeps no session");

    // Alice returns with a queue.
    let mut trust_peers = MemoryTrust::default();
    trust_peers.trust(&crate::bare("bob@example.com"), bob_pub.clone());
    trust_peers.trust(&crate::bare("carol@example.net"), bob_pub);
    let bob_jid = "bob@example.com/laptop";
    let queue = vec![
        stamped(start.clone(), bob_jid),
        stamped(later.clone(), bob_jid),
        stamped(chat("plain"), "dave@example.com/x"),
        stamped(terminate, bob_jid),
        stamped(later.clone(), bob_jid), // after the end: nobody to receive it
        stamped(carol_start, "carol@example.net/phone"),
        stamped(start.clone(), bob_jid), // a replay
    ];
    let mut replay = MemoryReplay::default();
    let back = t0() + Duration::hours(6);
    let r = come_back(
        Some(subscribers),
        Some(&everyone),
        &queue,
        back,
        Profile::Xep,
        &trust_peers,
        &mut replay,
        &mut TestRng::new(6),
    )
    .unwrap();
    assert!(pep::options_in(&r.withdraw).is_none());
    assert!(String::from(&r.withdraw).contains(Audience::Subscribers.node()));
    assert_eq!(r.sessions.len(), 2);
    let bodies: Vec<Option<String>> = r.sessions[0].contents.iter().map(body_of).collect();
    assert_eq!(bodies, vec![Some("one".into()), Some("two".into())]);
    assert!(r.sessions[0].ended, "Bob's terminate ended it");
    assert_eq!(
        r.sessions[1].contents.iter().map(body_of).collect::<Vec<_>>(),
        vec![Some("hi from carol".into())]
    );
    assert!(r.sessions[1].ended);
    assert_eq!(r.other, vec![2]);
    let shown = format!("{r:?}");
    assert!(!shown.contains("hi from carol") && !shown.contains("two"), "Debug shows no content: {shown}");
    assert_eq!(
        r.dropped,
        vec![Dropped { index: 4, check: Check::NoSession }, Dropped { index: 6, check: Check::Replay }]
    );

    // The everyone set stays valid; the same start is still a replay later on.
    let again = come_back(
        None,
        Some(&everyone),
        &queue[6..],
        back,
        Profile::Xep,
        &trust_peers,
        &mut replay,
        &mut TestRng::new(7),
    )
    .unwrap();
    assert_eq!(
        again.dropped,
        vec![Dropped { index: 0, check: Check::UnknownNonce }],
        "the subscribers' secrets are gone"
    );

    assert_eq!(replay.len(), 4, "d and N_B of two starts");
    // Expired when she returns: everything is dropped unread, and the old entries are purged.
    let late = t0() + Duration::hours(25);
    let r = come_back(
        None,
        Some(&everyone),
        &queue[5..6],
        late,
        Profile::Xep,
        &trust_peers,
        &mut replay,
        &mut TestRng::new(8),
    )
    .unwrap();
    assert!(replay.is_empty());
    assert!(r.sessions.is_empty());
    assert_eq!(r.dropped, vec![Dropped { index: 0, check: Check::OptionsExpired }]);
}

/// A replay store that counts its calls and can be made to fail.
#[derive(Default)]
struct Counting {
    inner: MemoryReplay,
    records: usize,
    batches: Vec<usize>,
    fail: bool,
}

impl esession_offline::replay::ReplayStore for Counting {
    fn seen(&self, key: &[u8], now: DateTime<Utc>) -> bool {
        self.inner.seen(key, now)
    }
    fn record(
        &mut self,
        keys: &[Vec<u8>],
        expires: DateTime<Utc>,
    ) -> Result<(), esession_negotiate::StoreError> {
        self.records += 1;
        self.inner.record(keys, expires)
    }
    fn record_all(
        &mut self,
        entries: &[(Vec<u8>, DateTime<Utc>)],
    ) -> Result<(), esession_negotiate::StoreError> {
        if self.fail {
            return Err(esession_negotiate::StoreError::new(
                esession_negotiate::StoreErrorKind::Io,
                "disk full",
            ));
        }
        self.batches.push(entries.len());
        for (k, e) in entries {
            self.inner.record(std::slice::from_ref(k), *e)?;
        }
        Ok(())
    }
    fn purge(&mut self, now: DateTime<Utc>) -> Result<(), esession_negotiate::StoreError> {
        self.inner.purge(now)
    }
}

#[test]
fn a_return_commits_its_replay_entries_once_and_fails_closed() {
    // Issue 9: the return records every accepted start in one durable unit, after all of them
    // were checked and before any is handed out; a duplicate inside the batch is still a replay,
    // and a store that cannot commit gives no session at all.
    let (rsa, dsa) = keys();
    let alice_pub = rsa.public_key();
    let plan = Plan {
        profile: Profile::Xep,
        provider: CryptoProvider { modp: vec![ModpGroup::G1], ..CryptoProvider::default() },
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![rsa, dsa],
        lifetime: Duration::hours(24),
        match_resource: None,
    };
    let set = go_offline(&plan, &[Audience::Everyone], t0(), &mut RngEntropy(&mut TestRng::new(20)))
        .unwrap()
        .pop()
        .unwrap();
    let options = pep::options_in(&set.iqs[1]).unwrap().clone();
    let mut trust_alice = MemoryTrust::default();
    trust_alice.trust(&crate::bare("alice@example.org"), alice_pub);
    let now = t0() + Duration::hours(1);
    let verified = || {
        send::verify(&options, &crate::bare("alice@example.org"), &trust_alice, now, Profile::Xep).unwrap()
    };
    let bob_key = keys().1;
    let mut trust_peers = MemoryTrust::default();
    let mut queue = Vec::new();
    for i in 0..3u64 {
        let jid = format!("peer{i}@example.com");
        trust_peers.trust(&crate::bare(&jid), bob_key.public_key());
        let mut out = Outbox::new();
        let s = out
            .start(
                verified(),
                &crate::weak_ok(Config::with_identity(keys().1)),
                &format!("t{i}"),
                Some(chat(&format!("m{i}"))),
                false,
                now,
                &mut RngEntropy(&mut TestRng::new(30 + i)),
            )
            .unwrap();
        queue.push(stamped(s, &format!("{jid}/r")));
    }
    queue.push(queue[1].clone()); // a replay inside the same batch
    let back = t0() + Duration::hours(2);
    let run = |store: &mut Counting| {
        come_back(
            None,
            Some(&set.secrets),
            &queue,
            back,
            Profile::Xep,
            &trust_peers,
            store,
            &mut TestRng::new(9),
        )
    };
    let mut failing = Counting { fail: true, ..Counting::default() };
    assert!(matches!(run(&mut failing), Err(Error::Store(_))), "no session without a durable record");
    assert!(failing.inner.is_empty());
    let mut store = Counting::default();
    let r = run(&mut store).unwrap();
    assert_eq!(r.sessions.len(), 3);
    assert_eq!(r.dropped, vec![Dropped { index: 3, check: Check::Replay }]);
    assert_eq!((store.records, store.batches.clone()), (0, vec![6]), "one unit: d and N_B of three starts");
    // Later returns see them as replays.
    let again = run(&mut store).unwrap();
    assert!(again.sessions.is_empty());
    assert_eq!(again.dropped.len(), 4);
    assert!(again.dropped.iter().all(|d| d.check == Check::Replay));
}

/// Alice's options for `home` (match_resource) verified by Bob at `now`.
fn home_options(lifetime: Duration) -> (send::Verified, Config) {
    let (rsa, bob_key) = (keys().0, keys().0);
    let alice_pub = rsa.public_key();
    let plan = Plan {
        profile: Profile::Xep,
        provider: CryptoProvider { modp: vec![ModpGroup::G1], ..CryptoProvider::default() },
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![rsa],
        lifetime,
        match_resource: Some("home".into()),
    };
    let set = go_offline(&plan, &[Audience::Subscribers], t0(), &mut RngEntropy(&mut TestRng::new(40)))
        .unwrap()
        .remove(0);
    let mut trust = MemoryTrust::default();
    trust.trust(&crate::bare("alice@example.org"), alice_pub);
    let options = pep::options_in(&set.iqs[1]).unwrap().clone();
    let v = send::verify(
        &options,
        &crate::bare("alice@example.org"),
        &trust,
        t0() + Duration::hours(1),
        Profile::Xep,
    )
    .unwrap();
    (v, crate::weak_ok(Config::with_identity(bob_key)))
}

/// The `<amp/>` of a stanza must be exactly XEP-0187's restriction to one resource, as A15
/// reads it: `action='error' condition='match-resource' value='other'`, without `per-hop`.
fn assert_amp_to_that_resource_only(s: &Element) {
    let amp = s.get_child("amp", "http://jabber.org/protocol/amp").unwrap_or_else(|| panic!("no AMP: {s:?}"));
    assert_eq!(amp.attr("per-hop"), None, "a per-hop match-resource rule is ignored (XEP-0079)");
    let rules: Vec<_> = amp.children().collect();
    assert_eq!(rules.len(), 1);
    let r = rules[0];
    assert_eq!(
        (r.name(), r.attr("action"), r.attr("condition"), r.attr("value")),
        ("rule", Some("error"), Some("match-resource"), Some("other"))
    );
}

#[test]
fn every_stanza_of_the_session_goes_to_the_published_resource_only() {
    // X187-3.3-06: the start, later stanzas (even when the caller wrote another `to`) and the
    // terminate are addressed to Alice's published resource, each with the AMP rule.
    let (v, cfg) = home_options(Duration::hours(24));
    let now = t0() + Duration::hours(1);
    let mut bob = Outbox::new();
    let start = bob
        .start(v, &cfg, "t-home", Some(chat("one")), false, now, &mut RngEntropy(&mut TestRng::new(41)))
        .unwrap();
    assert_eq!(start.attr("to"), Some("alice@example.org/home"));
    assert_amp_to_that_resource_only(&start);
    let alice = crate::bare("alice@example.org");
    for to in [None, Some("alice@example.org/elsewhere"), Some("alice@example.org")] {
        let mut m = chat("later");
        if let Some(to) = to {
            m.set_attr(
                minidom::rxml::Namespace::NONE,
                esession_forms::xml::attr_name("to").unwrap(),
                to.to_owned(),
            );
        }
        let wire = bob.send(&alice, &m, now, &mut TestRng::new(42)).unwrap();
        assert_eq!(wire.attr("to"), Some("alice@example.org/home"), "written to {to:?}");
        assert_eq!(wire.get_child("thread", "jabber:client").map(Element::text).as_deref(), Some("t-home"));
        assert_amp_to_that_resource_only(&wire);
    }
    let terminate = bob.contact_online(&alice, now, &mut TestRng::new(43)).unwrap().unwrap();
    assert_eq!(terminate.attr("to"), Some("alice@example.org/home"));
    assert_amp_to_that_resource_only(&terminate);
}

#[test]
fn nothing_is_sent_in_the_session_after_the_options_expire() {
    // X187-3.2-05: options valid for 24 h; the session started at +1 h sends at +2 h, not at
    // +25 h (refused, and the session ends: nothing more, not even a terminate).
    let (v, cfg) = home_options(Duration::hours(24));
    let mut bob = Outbox::new();
    let alice = crate::bare("alice@example.org");
    bob.start(
        v,
        &cfg,
        "t-exp",
        None,
        false,
        t0() + Duration::hours(1),
        &mut RngEntropy(&mut TestRng::new(44)),
    )
    .unwrap();
    assert!(bob.send(&alice, &chat("in time"), t0() + Duration::hours(2), &mut TestRng::new(45)).is_ok());
    assert_eq!(
        bob.send(&alice, &chat("too late"), t0() + Duration::hours(25), &mut TestRng::new(46)).err(),
        Some(Error::Refused(Check::OptionsExpired))
    );
    assert!(!bob.has_session(&alice), "the session ended with its options");
    // A terminate is an encrypted stanza too: none after the expiry.
    let (v, cfg) = home_options(Duration::hours(24));
    bob.start(
        v,
        &cfg,
        "t-exp2",
        None,
        false,
        t0() + Duration::hours(1),
        &mut RngEntropy(&mut TestRng::new(47)),
    )
    .unwrap();
    assert_eq!(bob.contact_online(&alice, t0() + Duration::hours(24), &mut TestRng::new(48)).unwrap(), None);
    assert!(!bob.has_session(&alice));
}
