//! Replays (XEP-0187 §3.4 step 2, §6.1): d and N_B each refuse a second start, before any
//! key is computed, in memory and across a reopened durable store; the everyone set's entries
//! live until its options expire, not until the return.

use chrono::{DateTime, Duration, Utc};
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptoProvider, ModpGroup, Profile};
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::{Config, MemoryTrust, RngEntropy};
use esession_offline::away::{Dropped, Outbox, come_back, go_offline};
use esession_offline::publish::{Plan, Secrets};
use esession_offline::replay::MemoryReplay;
use esession_offline::replay::durable::DurableReplay;
use esession_offline::{Audience, Check, Error, pep, receive, send};
use minidom::Element;

fn t0() -> DateTime<Utc> {
    "2026-04-01T08:00:00Z".parse().unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("esession-offline-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("replay.redb")
}

/// Alice's set for `audience` (24 h), Bob's start from it (stamped from Bob), and Alice's trust.
fn start_for(audience: Audience) -> (Secrets, Element, MemoryTrust) {
    let (rsa, bob_key) = (crate::keys().0, crate::keys().0);
    let alice_pub = rsa.public_key();
    // Bob's identity is an RSA key too: the options offer only what Alice's key signs with.
    let plan = Plan {
        profile: Profile::Xep,
        provider: CryptoProvider { modp: vec![ModpGroup::G1, ModpGroup::G2], ..CryptoProvider::default() },
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![rsa],
        lifetime: Duration::hours(24),
        match_resource: None,
    };
    let set = go_offline(&plan, &[audience], t0(), &mut RngEntropy(&mut TestRng::new(60))).unwrap().remove(0);
    let mut trust = MemoryTrust::default();
    trust.trust(&crate::bare("alice@example.org"), alice_pub);
    let options = pep::options_in(&set.iqs[1]).unwrap().clone();
    let at = t0() + Duration::hours(1);
    let v = send::verify(&options, &crate::bare("alice@example.org"), &trust, at, Profile::Xep).unwrap();
    let content = Element::builder("message", "jabber:client")
        .append(Element::builder("body", "jabber:client").append("once"))
        .build();
    let mut start = Outbox::new()
        .start(
            v,
            &crate::weak_ok(Config::with_identity(bob_key)),
            "t-replay",
            Some(content),
            false,
            at,
            &mut RngEntropy(&mut TestRng::new(61)),
        )
        .unwrap();
    start.set_attr(
        minidom::rxml::Namespace::NONE,
        esession_forms::xml::attr_name("from").unwrap(),
        "bob@example.com/laptop".to_owned(),
    );
    let mut alice_trust = MemoryTrust::default();
    alice_trust.trust(&crate::bare("bob@example.com"), crate::keys().0.public_key());
    (set.secrets, start, alice_trust)
}

/// `start` with the first octet of the first value of `var` changed (the base64 stays valid).
fn flipped(start: &Element, var: &str) -> Element {
    let text = String::from(start);
    let at = text.find(&format!("var='{var}'")).or_else(|| text.find(&format!("var=\"{var}\""))).unwrap();
    let v = at + text[at..].find("<value>").unwrap() + 7;
    let mut b = text.into_bytes();
    b[v] = if b[v] == b'A' { b'B' } else { b'A' };
    esession_forms::xml::parse(&String::from_utf8(b).unwrap()).unwrap()
}

#[test]
fn a_start_that_reuses_d_or_n_b_alone_is_a_replay() {
    // X187-3.4-03 X187-6.1-02: after an accepted start, the same start with another N_B
    // (my_nonce) is refused as a replay because of its d, and the same start with another d
    // because of its N_B: each key on its own, checked before the signature (which the changed
    // copy would fail: Signature, M_B, never Replay, if the check were late or partial).
    let (secrets, start, trust) = start_for(Audience::Subscribers);
    let back = t0() + Duration::hours(2);
    let other_nb = flipped(&start, "my_nonce");
    let other_d = flipped(&start, "dhkeys");
    {
        let mut replay = MemoryReplay::default();
        // Unseen, each changed copy fails a later check: they prove nothing by themselves.
        assert_eq!(
            receive::accept(&secrets, &other_nb, back, Profile::Xep, &trust, &mut replay).err(),
            Some(Error::Refused(Check::Signature))
        );
        assert!(receive::accept(&secrets, &other_d, back, Profile::Xep, &trust, &mut replay).is_err());
        assert!(receive::accept(&secrets, &start, back, Profile::Xep, &trust, &mut replay).is_ok());
        for (what, s) in [("another N_B", &other_nb), ("another d", &other_d)] {
            assert_eq!(
                receive::accept(&secrets, s, back, Profile::Xep, &trust, &mut replay).err(),
                Some(Error::Refused(Check::Replay)),
                "{what}"
            );
        }
    }
    // The same across a restart: the durable store reopened.
    let path = tmp("partial");
    {
        let mut replay = DurableReplay::open(&path).unwrap();
        assert!(receive::accept(&secrets, &start, back, Profile::Xep, &trust, &mut replay).is_ok());
    }
    let mut replay = DurableReplay::open(&path).unwrap();
    for (what, s) in [("another N_B", &other_nb), ("another d", &other_d), ("the same", &start)] {
        assert_eq!(
            receive::accept(&secrets, s, back, Profile::Xep, &trust, &mut replay).err(),
            Some(Error::Refused(Check::Replay)),
            "{what}, reopened"
        );
    }
}

#[test]
fn the_everyone_sets_entries_outlive_the_return_until_the_options_expire() {
    // X187-6.1-03: the everyone set is not replaced on return, so its d values are kept until
    // its options expire (+24 h): a return at +2 h accepts the start; a second return at +10 h,
    // with the durable store reopened (and purged at +10 h), drops the same start as a replay.
    let (everyone, start, trust) = start_for(Audience::Everyone);
    let path = tmp("everyone");
    {
        let mut replay = DurableReplay::open(&path).unwrap();
        let r = come_back(
            None,
            Some(&everyone),
            std::slice::from_ref(&start),
            t0() + Duration::hours(2),
            Profile::Xep,
            &trust,
            &mut replay,
            &mut TestRng::new(62),
        )
        .unwrap();
        assert_eq!(r.sessions.len(), 1, "{:?}", r.dropped);
    }
    let mut replay = DurableReplay::open(&path).unwrap();
    let r = come_back(
        None,
        Some(&everyone),
        std::slice::from_ref(&start),
        t0() + Duration::hours(10),
        Profile::Xep,
        &trust,
        &mut replay,
        &mut TestRng::new(63),
    )
    .unwrap();
    assert!(r.sessions.is_empty());
    assert_eq!(r.dropped, vec![Dropped { index: 0, check: Check::Replay }]);
    // After the expiry the entries are purged, and the start is refused as expired.
    let r = come_back(
        None,
        Some(&everyone),
        std::slice::from_ref(&start),
        t0() + Duration::hours(25),
        Profile::Xep,
        &trust,
        &mut replay,
        &mut TestRng::new(64),
    )
    .unwrap();
    assert_eq!(r.dropped, vec![Dropped { index: 0, check: Check::OptionsExpired }]);
    assert!(replay.is_empty(), "bounded: purged with the options");
}
