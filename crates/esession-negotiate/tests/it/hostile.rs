//! Hostile peers: values a party must refuse before it answers or keeps anything.

use crate::*;
use esession_crypto::testing::TestRng;
use esession_crypto::{ModpGroup, Profile};

/// Alice's request, as she sends it.
fn request(cfg: &Arc<Config>, mode: Mode, seed: u64) -> Element {
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-h");
    alice.start(mode, &mut RngEntropy(&mut TestRng::new(seed))).unwrap();
    sent(&drain(&mut alice)).remove(0)
}

/// What Bob does with `stanza` as a first message: his result, the stanzas he sends, and
/// whether he is done (kept nothing).
fn bob_on(cfg: &Arc<Config>, stanza: &Element) -> (Result<()>, Vec<Element>, bool) {
    let mut bob = Responder::new(cfg.clone(), j(ALICE), "thread-h");
    let mut b = Side::new(2);
    let r = to_bob(&mut bob, &mut b, stanza);
    let out = sent(&drain(&mut bob));
    (r, out, bob.is_done())
}

fn refused_naming(r: &Result<()>, field: &str) -> bool {
    matches!(r, Err(Error::PeerMisbehaved { condition: Condition::NotAcceptable, fields, .. }) if fields == &[field.to_owned()])
}

/// A one-octet `my_nonce` (AA==) in Alice's request, or one of 8 octets in `Profile::Xep`
/// (16 at least), is refused with `<not-acceptable/>` naming `my_nonce`; Bob keeps nothing.
/// A 16-octet nonce is answered.
#[test]
fn short_request_nonces_are_refused() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let req = request(&cfg, Mode::Four, 1);
    for short in ["AA==", "AAECAwQFBgc="] {
        let (r, out, done) = bob_on(&cfg, &set_values(&req, "my_nonce", &[short]));
        assert!(refused_naming(&r, "my_nonce"), "{short}: {r:?}");
        assert_eq!(out.len(), 1, "one error reply");
        assert_eq!(error_fields(&out[0]), (Some("not-acceptable".into()), vec!["my_nonce".into()]));
        assert!(done, "Bob keeps no state");
    }
    let sixteen = esession_crypto::mpi::b64_encode(&[9; 16]);
    let (r, out, done) = bob_on(&cfg, &set_values(&req, "my_nonce", &[&sixteen]));
    assert!(r.is_ok() && !done, "{r:?}");
    assert!(values(&out[0], "dhkeys").is_some(), "answered with a response");
}

/// A one-octet `my_nonce` (N_B) in Bob's response, or one of 8 octets in `Profile::Xep`, is
/// refused by Alice naming `my_nonce`; the deployed dialect's 8 octets pass in `Profile::Gajim`.
#[test]
fn short_response_nonces_are_refused() {
    for (profile, short, refused) in [
        (Profile::Xep, "AA==", true),
        (Profile::Xep, "AAECAwQFBgc=", true),
        (Profile::Gajim, "AA==", true),
        (Profile::Gajim, "AAECAwQFBgc=", false),
    ] {
        let mut c = small_cfg(Config::new(profile));
        c.provider.modp = vec![ModpGroup::G5];
        let cfg = Arc::new(c);
        let (mut a, mut b) = (Side::new(1), Side::new(2));
        let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-h");
        let mut bob = Responder::new(cfg.clone(), j(ALICE), "thread-h");
        alice.start(Mode::Four, &mut RngEntropy(&mut TestRng::new(3))).unwrap();
        let req = sent(&drain(&mut alice)).remove(0);
        to_bob(&mut bob, &mut b, &req).unwrap();
        let resp = sent(&drain(&mut bob)).remove(0);
        let r = to_alice(&mut alice, &mut a, &set_values(&resp, "my_nonce", &[short]));
        let out = sent(&drain(&mut alice));
        assert_eq!(refused_naming(&r, "my_nonce"), refused, "{profile:?} {short}: {r:?}");
        if refused {
            assert_eq!(error_fields(&out[0]), (Some("not-acceptable".into()), vec!["my_nonce".into()]));
            assert!(alice.is_done());
        } else {
            assert!(r.is_ok(), "{profile:?}: {r:?}");
        }
    }
}

/// Five empty `dhhashes` values (one per offered group) commit to nothing: Bob refuses with
/// `<not-acceptable/>` naming `dhhashes` and keeps nothing. A 3-message request whose `dhkeys`
/// are empty is refused too (1 < e < p - 1 fails for the chosen group).
#[test]
fn empty_commitments_are_refused() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let req = request(&cfg, Mode::Four, 4);
    let groups = ["1", "2", "5", "14", "15"];
    let five = set_values(&set_options(&req, "modp", &groups), "dhhashes", &[""; 5]);
    assert_eq!(values(&five, "dhhashes").unwrap().len(), 5);
    let (r, out, done) = bob_on(&cfg, &five);
    assert!(refused_naming(&r, "dhhashes"), "{r:?}");
    assert_eq!(error_fields(&out[0]), (Some("not-acceptable".into()), vec!["dhhashes".into()]));
    assert!(done);
    let (ra, rb, _, _) = keys();
    let alice3 = Arc::new(small_cfg(Config::with_identity(ra)));
    let bob3 = Arc::new(small_cfg(Config::with_identity(rb)));
    let req3 = request(&alice3, Mode::Three, 5);
    let (r, out, done) = bob_on(&bob3, &set_values(&req3, "dhkeys", &[""]));
    assert!(
        matches!(&r, Err(Error::PeerMisbehaved { check: Check::ERange, fields, .. }) if fields == &["dhkeys".to_owned()]),
        "{r:?}"
    );
    assert_eq!(error_fields(&out[0]).1, vec!["dhkeys".to_owned()]);
    assert!(done);
}
