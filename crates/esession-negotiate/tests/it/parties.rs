//! What the two parties show of themselves (accessors, `Debug`), the configuration checks of
//! `Initiator::start`, the integrity check of a shaped request, Bob's choice in his own profile,
//! his own nonce, and the alerts each side raises: the survivors of the mutation run of
//! initiator.rs and responder.rs (docs/conformance.md, "Mutation testing"), each seen failing
//! with its mutant applied by hand.

use crate::*;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup, Profile};
use esession_forms::names::PubkeyMethod;

/// Alice's request, as she sends it after `start`.
fn request_of(mut alice: Initiator, mode: Mode) -> Element {
    let mut rng = TestRng::new(3);
    alice.start(mode, &mut RngEntropy(&mut rng)).unwrap();
    match alice.poll_output() {
        Some(Output::Send(s)) => s,
        other => panic!("no request: {other:?}"),
    }
}

fn start_err(c: Config, mode: Mode) -> Option<String> {
    let mut alice = Initiator::new(Arc::new(c), j(BOB), "t");
    let mut rng = TestRng::new(3);
    alice.start(mode, &mut RngEntropy(&mut rng)).err().map(|e| e.to_string())
}

#[test]
fn the_parties_show_their_thread_and_peer_and_whether_they_are_done() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let mut alice = Initiator::new(cfg.clone(), j(BOB), "thread-1");
    let mut bob = Responder::new(cfg, j(ALICE), "thread-1");
    assert_eq!(alice.thread(), "thread-1");
    assert_eq!(bob.thread(), "thread-1");
    let (da, db) = (format!("{alice:?}"), format!("{bob:?}"));
    assert!(da.contains("thread-1") && da.contains(BOB), "{da}");
    assert!(db.contains("thread-1") && db.contains(ALICE), "{db}");
    assert!(!alice.is_done());
    let mut rng = TestRng::new(4);
    alice.start(Mode::Four, &mut RngEntropy(&mut rng)).unwrap();
    assert!(!alice.is_done(), "a request in flight is not the end");
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    drive(at(0), &mut alice, &mut bob, &mut a, &mut b, &mut no_tamper());
    assert!(a.established.is_some() && b.established.is_some());
    assert!(alice.is_done());
}

/// XEP-0116 note 22 (X116-N22-01): asked to, Alice puts `hash` first among the methods she offers
/// Bob for his identity; otherwise the configuration's order stands.
#[test]
fn a_known_contact_is_asked_for_the_fingerprint_first() {
    let mut c = small_cfg(Config::default());
    c.resp_pubkey = vec![PubkeyMethod::Key, PubkeyMethod::Hash];
    let c = Arc::new(c);
    let plain = request_of(Initiator::new(c.clone(), j(BOB), "t"), Mode::Four);
    assert_eq!(options(&plain, "resp_pubkey").unwrap(), ["key", "hash"]);
    let mut alice = Initiator::new(c, j(BOB), "t");
    alice.ask_fingerprint_first();
    let first = request_of(alice, Mode::Four);
    assert_eq!(options(&first, "resp_pubkey").unwrap(), ["hash", "key"]);
}

/// `none` is an identity method of the 4-message negotiation only (§4.3 item 9): a 3-message
/// request never offers it, whatever the configuration lists.
#[test]
fn none_is_offered_in_four_message_requests_only() {
    let (ra, _, _, _) = keys();
    let mut c = small_cfg(Config::with_identity(ra));
    c.init_pubkey = vec![PubkeyMethod::Key, PubkeyMethod::None];
    c.resp_pubkey = vec![PubkeyMethod::Key, PubkeyMethod::None];
    let c = Arc::new(c);
    let three = request_of(Initiator::new(c.clone(), j(BOB), "t"), Mode::Three);
    let four = request_of(Initiator::new(c, j(BOB), "t"), Mode::Four);
    for var in ["init_pubkey", "resp_pubkey"] {
        assert_eq!(options(&three, var).unwrap(), ["key"], "{var}");
        assert_eq!(options(&four, var).unwrap(), ["key", "none"], "{var}");
    }
}

/// `start` refuses a configuration that leaves any list it must offer from empty, each alone,
/// and says so in words (in the Gajim profile, that only SHA-256 is usable).
#[test]
fn start_refuses_an_empty_offer_of_any_kind() {
    assert_eq!(start_err(small_cfg(Config::default()), Mode::Four), None);
    type Edit = fn(&mut Config);
    let edits: [(&str, Edit); 5] = [
        ("modp", |c| c.provider.modp.clear()),
        ("crypt_algs", |c| c.provider.crypt_algs.clear()),
        ("hash_algs", |c| c.provider.hash_algs.clear()),
        ("init_pubkey", |c| c.init_pubkey.clear()),
        ("resp_pubkey", |c| c.resp_pubkey.clear()),
    ];
    for (what, edit) in edits {
        let mut c = small_cfg(Config::default());
        edit(&mut c);
        let e = start_err(c, Mode::Four).unwrap_or_else(|| panic!("{what}: started"));
        assert!(e.starts_with("configuration: no "), "{what}: {e}");
        assert!(!e.contains("Gajim"), "{what}: {e}");
    }
    let mut g = Config::new(Profile::Gajim);
    g.provider.hash_algs.clear();
    let e = start_err(g, Mode::Four).unwrap();
    assert!(e.contains("Gajim profile: sha256 only"), "{e}");
}

/// A shaper may change the form's layout, never Alice's nonce or her DH values: a request whose
/// `my_nonce` or `dhhashes` it rewrote is not sent.
#[test]
fn a_shaper_cannot_change_the_nonce_or_the_dh_values() {
    struct Rewrite(&'static str);
    impl Shaper for Rewrite {
        fn shape(&mut self, kind: FormKind, x: Element) -> Element {
            if kind == FormKind::Request {
                set_values(&x, self.0, &["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="])
            } else {
                x
            }
        }
    }
    for var in ["my_nonce", "dhhashes"] {
        let c = Arc::new(small_cfg(Config::default()));
        let mut alice = Initiator::new(c, j(BOB), "t").with_shaper(Box::new(Rewrite(var)));
        let mut rng = TestRng::new(3);
        assert!(alice.start(Mode::Four, &mut RngEntropy(&mut rng)).is_err(), "{var} rewritten, sent");
        assert!(alice.poll_output().is_none(), "{var}");
    }
}

/// Bob picks the hash in his configuration's profile, whatever `support.profile` says: in
/// Gajim's, Whirlpool (64 octets) cannot key a cipher, so a request offering it first gets
/// SHA-256.
#[test]
fn bob_picks_the_hash_in_his_own_profile() {
    let mk = || {
        let mut c = Config::new(Profile::Gajim);
        c.provider.modp = vec![ModpGroup::G5];
        c.provider.crypt_algs = vec![CryptAlg::Aes128Ctr];
        c.support.crypto = CryptoProvider::all();
        // Left at the default profile on purpose: the configuration's profile decides.
        c.support.profile = Profile::Xep;
        c
    };
    struct WhirlpoolFirst;
    impl Shaper for WhirlpoolFirst {
        fn shape(&mut self, kind: FormKind, x: Element) -> Element {
            if kind == FormKind::Request { set_options(&x, "hash_algs", &["whirlpool", "sha256"]) } else { x }
        }
    }
    let alice = Initiator::new(Arc::new(mk()), j(BOB), "thread-1").with_shaper(Box::new(WhirlpoolFirst));
    let bob = Responder::new(Arc::new(mk()), j(ALICE), "thread-1");
    let (mut a, mut b) = (Side::new(5), Side::new(6));
    let mut chosen = None;
    run_parties(
        Mode::Four,
        alice,
        bob,
        &mut a,
        &mut b,
        Box::new(|i, _, s: Element| {
            if i == 1 {
                chosen = values(&s, "hash_algs");
            }
            Some(s)
        }),
    );
    assert_eq!(chosen.unwrap(), ["sha256"]);
}

/// X116-4.5.2-05's sibling: Bob's own N_B shorter than the profile's minimum (a failing
/// generator) ends the negotiation with an RNG error; one of exactly the minimum is used.
#[test]
fn bob_refuses_his_own_nonce_when_it_is_too_short() {
    for (len, refused) in [(15usize, true), (16, false)] {
        let c = Arc::new(small_cfg(Config::default()));
        let request = request_of(Initiator::new(c.clone(), j(BOB), "thread-1"), Mode::Four);
        let mut bob = Responder::new(c, j(ALICE), "thread-1");
        let mut e = hazmat::ScriptedEntropy::new(TestRng::new(8));
        e.nonce = Some(vec![0x5a; len]);
        let mut s = Side::new(9);
        let r = bob.handle(
            at(0),
            &request,
            &mut e,
            &mut Stores { trust: &mut s.trust, retained: &mut s.retained },
        );
        assert_eq!(
            matches!(r, Err(Error::Crypto(esession_crypto::Error::Rng))),
            refused,
            "{len} octets: {r:?}"
        );
        let answered = std::iter::from_fn(|| bob.poll_output()).any(|o| matches!(o, Output::Send(_)));
        assert_eq!(answered, !refused, "{len} octets");
    }
}

fn alerted(side: &Side, want: fn(&Alert) -> bool) -> bool {
    side.alerts.iter().any(want)
}

/// Alice's alerts after a negotiation (X116-4.7): the first one with a contact tells her there
/// was no retained secret and that the SAS is not confirmed, and nothing about a mismatch; once
/// a secret is shared and the SAS confirmed, the next one tells her nothing.
#[test]
fn alice_is_told_what_the_sas_and_the_retained_secrets_say() {
    let (ca, cb) = (Arc::new(small_cfg(Config::default())), Arc::new(small_cfg(Config::default())));
    let (mut a, mut b) = (Side::new(11), Side::new(12));
    negotiate(Mode::Four, ca.clone(), cb.clone(), &mut a, &mut b, no_tamper());
    assert!(a.established.is_some());
    assert!(alerted(&a, |x| matches!(x, Alert::NoRetainedSecret { .. })), "{:?}", a.alerts);
    assert!(alerted(&a, |x| matches!(x, Alert::SasNotConfirmed { .. })), "{:?}", a.alerts);
    assert!(!alerted(&a, |x| matches!(x, Alert::RetainedSecretMismatch { .. })), "{:?}", a.alerts);
    a.trust.confirm_sas(&bare(BOB)).unwrap();
    for side in [&mut a, &mut b] {
        side.established = None;
        side.alerts.clear();
    }
    negotiate(Mode::Four, ca, cb, &mut a, &mut b, no_tamper());
    assert!(a.established.as_ref().unwrap().retained_secret_used());
    assert!(a.alerts.is_empty(), "{:?}", a.alerts);
}

/// X116-7.4-02 on Alice's side: Bob's key, already associated with another JID, is told.
#[test]
fn alice_is_told_of_a_key_she_knows_under_another_jid() {
    let (ra, rb, _, _) = keys();
    let (pa, pb) = (ra.public_key(), rb.public_key());
    let (ca, cb) =
        (Arc::new(small_cfg(Config::with_identity(ra))), Arc::new(small_cfg(Config::with_identity(rb))));
    let (mut a, mut b) = (Side::new(13), Side::new(14));
    a.trust.trust(&bare(BOB), pb.clone());
    a.trust.trust(&bare("carol@example.net"), pb);
    b.trust.trust(&bare(ALICE), pa);
    negotiate(Mode::Three, ca, cb, &mut a, &mut b, no_tamper());
    assert!(a.established.is_some(), "{:?}", a.rejected);
    assert!(
        a.alerts.iter().any(|x| matches!(x, Alert::KeyUnderOtherJid { known_as, .. }
            if known_as == &vec![bare("carol@example.net")])),
        "{:?}",
        a.alerts
    );
}

/// Small configurations for `mode`, identified by RSA keys for a 3-message negotiation (none
/// for a 4-message one), and two sides (seeds `seed`, `seed + 1`) that trust each other's key.
fn parties_for(mode: Mode, seed: u64) -> (Arc<Config>, Arc<Config>, Side, Side) {
    let (ra, rb, _, _) = keys();
    let (pa, pb) = (ra.public_key(), rb.public_key());
    let (ca, cb) = match mode {
        Mode::Three => (Config::with_identity(ra), Config::with_identity(rb)),
        Mode::Four => (Config::default(), Config::default()),
    };
    let (mut a, mut b) = (Side::new(seed), Side::new(seed + 1));
    a.trust.trust(&bare(BOB), pb);
    b.trust.trust(&bare(ALICE), pa);
    (Arc::new(small_cfg(ca)), Arc::new(small_cfg(cb)), a, b)
}

/// A negotiation without piggybacked content gives no content and no error beside the session
/// (the final stanza of either flow has no `<c/>` to open).
#[test]
fn a_negotiation_without_content_gives_none_and_no_error() {
    for mode in [Mode::Three, Mode::Four] {
        let (ca, cb, mut a, mut b) = parties_for(mode, 21);
        negotiate(mode, ca, cb, &mut a, &mut b, no_tamper());
        assert!(a.established.is_some() && b.established.is_some(), "{mode:?}");
        assert!(a.rejected.is_none() && b.rejected.is_none(), "{mode:?}: {:?} {:?}", a.rejected, b.rejected);
        assert!(a.received.is_empty() && b.received.is_empty(), "{mode:?}");
    }
}

/// The established session: both sides' key check is HMAC-SHA-256(K, "esession key check"),
/// shown in `Debug` by its first four octets only; `Debug` of the session and of what it
/// receives names the peer and the thread, never the content; the terminate and its
/// acknowledgement are addressed to the peer and have no `type` (I17); a receive-only session
/// (an offline session Alice accepted) sends nothing and acknowledges no terminate.
#[test]
fn the_established_session_shows_what_it_may_and_addresses_its_terminate() {
    use hmac::{KeyInit, Mac};
    let (ca, cb) = (Arc::new(small_cfg(Config::default())), Arc::new(small_cfg(Config::default())));
    let (mut a, mut b) = (Side::new(23), Side::new(24));
    negotiate(Mode::Four, ca.clone(), cb.clone(), &mut a, &mut b, no_tamper());
    let (ea, eb) = (a.established.as_mut().unwrap(), b.established.as_mut().unwrap());
    let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(ea.k().expose_secret()).unwrap();
    mac.update(b"esession key check");
    let expected: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(ea.key_check().as_bytes(), &expected);
    assert_eq!(eb.key_check().as_bytes(), &expected);
    assert_eq!(format!("{:?}", ea.key_check()), format!("KeyCheck({}..)", hex::encode(&expected[..4])));
    let shown = format!("{ea:?}");
    assert!(shown.contains("Established") && shown.contains(BOB) && shown.contains("thread-1"), "{shown}");
    assert!(!shown.contains(&hex::encode(ea.k().expose_secret())), "{shown}");
    let mut rng = TestRng::new(25);
    let wire = ea.session_mut().encrypt(&chat("a secret text"), EncryptOptions::default(), &mut rng).unwrap();
    let got = eb.receive(&wire, false, &mut rng).unwrap();
    let shown = format!("{got:?}");
    assert!(shown.starts_with("Stanza") && shown.contains("\"message\""), "{shown}");
    assert!(!shown.contains("a secret text"), "{shown}");
    // Alice terminates: addressed to Bob, no type; Bob's acknowledgement addressed to Alice.
    let t = ea.terminate(false, &mut rng).unwrap();
    assert_eq!((t.attr("to"), t.attr("type")), (Some(BOB), None), "{}", String::from(&t));
    let got = eb.receive(&t, false, &mut rng).unwrap();
    assert_eq!(format!("{got:?}"), "Terminated { ack: true, verified: true }");
    let Received::Terminated { ack: Some(ack), .. } = got else { panic!("{got:?}") };
    assert_eq!((ack.attr("to"), ack.attr("type")), (Some(ALICE), None), "{}", String::from(&ack));
    // Receive-only: no sending, no acknowledgement.
    let (mut a, mut b) = (Side::new(26), Side::new(27));
    negotiate(Mode::Four, ca, cb, &mut a, &mut b, no_tamper());
    let (ea, eb) = (a.established.as_mut().unwrap(), b.established.as_mut().unwrap());
    assert!(eb.session().is_sending());
    eb.receive_only();
    assert!(!eb.session().is_sending());
    let t = ea.terminate(false, &mut rng).unwrap();
    let got = eb.receive(&t, false, &mut rng).unwrap();
    assert!(matches!(got, Received::Terminated { ack: None, verified: true }), "{got:?}");
}

/// `Established::export_receiving` / `import_receiving` (an offline session Alice accepted, kept
/// across a restart): refused while the session still sends; the imported session has the
/// peer, thread, key, key check and flags of the exported one and decrypts what follows; every
/// truncation, another version, a bad key flag, bad flags and a trailing octet are refused.
#[test]
fn a_receive_only_session_is_kept_and_read_back_exactly() {
    for mode in [Mode::Three, Mode::Four] {
        let (ca, cb, mut a, mut b) = parties_for(mode, 31);
        // Twice: the second 4-message session used a retained secret (a flag the kept state
        // carries).
        negotiate(mode, ca.clone(), cb.clone(), &mut a, &mut b, no_tamper());
        negotiate(mode, ca, cb, &mut a, &mut b, no_tamper());
        let (ea, eb) = (a.established.as_mut().unwrap(), b.established.as_mut().unwrap());
        assert_eq!(eb.retained_secret_used(), mode == Mode::Four, "{mode:?}");
        assert!(eb.export_receiving().is_err(), "{mode:?}: a session that sends is not kept");
        eb.receive_only();
        let mut rng = TestRng::new(33);
        let first = ea.session_mut().encrypt(&chat("one"), EncryptOptions::default(), &mut rng).unwrap();
        eb.receive(&first, false, &mut rng).unwrap();
        let kept = eb.export_receiving().unwrap();
        let kept = kept.expose_secret();
        let mut back = Established::import_receiving(kept).unwrap();
        assert_eq!((back.peer(), back.thread()), (eb.peer(), eb.thread()), "{mode:?}");
        assert_eq!(back.peer_key(), eb.peer_key(), "{mode:?}");
        assert_eq!(back.peer_key().is_some(), mode == Mode::Three, "{mode:?}");
        assert_eq!(back.key_check().as_bytes(), eb.key_check().as_bytes());
        assert_eq!(back.retained_secret_used(), eb.retained_secret_used());
        assert_eq!((back.logging(), back.disclosure()), (eb.logging(), eb.disclosure()));
        assert!(!back.session().is_sending());
        assert_eq!(back.phase(), eb.phase(), "{mode:?}: not terminating");
        let second = ea.session_mut().encrypt(&chat("two"), EncryptOptions::default(), &mut rng).unwrap();
        let Received::Stanza { stanza, .. } = back.receive(&second, false, &mut rng).unwrap() else {
            panic!("{mode:?}: not a stanza")
        };
        assert_eq!(stanza.get_child("body", "jabber:client").map(Element::text).as_deref(), Some("two"));
        // What does not read back is refused, never half read.
        for cut in 0..kept.len() {
            assert!(Established::import_receiving(&kept[..cut]).is_err(), "{mode:?}: cut at {cut}");
        }
        let mut longer = kept.to_vec();
        longer.push(0);
        assert!(Established::import_receiving(&longer).is_err(), "{mode:?}: a trailing octet");
        let mut version = kept.to_vec();
        version[0] ^= 0xff;
        assert!(Established::import_receiving(&version).is_err(), "{mode:?}: another version");
        let n = kept.len();
        for (at, what) in [(n - 1, "terminating"), (n - 2, "retained secret used"), (n - 35, "key flag")] {
            let mut bad = kept.to_vec();
            bad[at] = 7;
            assert!(Established::import_receiving(&bad).is_err(), "{mode:?}: a bad {what} octet");
        }
    }
}

/// Each profile's layout of `<required/>` in the request (the MACs cover the forms as sent, so
/// the layout is part of the dialect): before the values and options in Gajim's, after them in
/// the XEP's. The other forms of a negotiation have no required field.
#[test]
fn required_is_laid_out_as_each_profile_writes_it() {
    for profile in [Profile::Xep, Profile::Gajim] {
        let mk = || {
            let mut c = Config::new(profile);
            c.provider.modp = vec![ModpGroup::G5];
            c.provider.crypt_algs = vec![CryptAlg::Aes128Ctr];
            c.provider.hash_algs = vec![HashAlg::Sha256];
            c.support.crypto = CryptoProvider::all();
            Arc::new(c)
        };
        let (mut a, mut b) = (Side::new(41), Side::new(42));
        let mut seen: Vec<Element> = Vec::new();
        negotiate(
            Mode::Four,
            mk(),
            mk(),
            &mut a,
            &mut b,
            Box::new(|_, _, s: Element| {
                seen.push(s.clone());
                Some(s)
            }),
        );
        assert!(a.established.is_some() && b.established.is_some(), "{profile:?}");
        assert_eq!(seen.len(), 4, "{profile:?}");
        for (i, s) in seen.iter().enumerate() {
            let mut required = 0;
            for f in form_x(s).children().filter(|f| f.name() == "field") {
                let names: Vec<&str> = f.children().map(Element::name).filter(|n| *n != "desc").collect();
                let Some(at) = names.iter().position(|n| *n == "required") else { continue };
                required += 1;
                if names.len() > 1 {
                    let want = if profile == Profile::Gajim { 0 } else { names.len() - 1 };
                    assert_eq!(at, want, "{profile:?}, stanza {i}, field {:?}: {names:?}", f.attr("var"));
                }
            }
            // Only the request has required fields (XEP-0155 §4.1); the other forms are results.
            assert_eq!(required > 0, i == 0, "{profile:?}: stanza {i}, {required} required fields");
        }
    }
}

/// XEP-0187's SIGMA part (`published`), in this crate alone: Alice's options signed with her
/// key, Bob's answer with content, Alice's acceptance: the content decrypts, the start names
/// Alice's nonce, Bob's d and N_B and the terminate flag; a start changed in flight, one
/// answered to other options, and one whose key Alice does not trust are refused.
#[test]
fn a_published_options_round_trip() {
    use esession_crypto::SignAlg;
    use esession_forms::esession::Offers;
    use esession_forms::names::{Disclosure, Security, Version};
    use esession_negotiate::published::{self, Start};
    let (ra, rb, _, _) = keys();
    let (pa, pb) = (ra.public_key(), rb.public_key());
    let base = small_cfg(Config::default());
    let offers = Offers {
        logging: base.logging.clone(),
        disclosure: vec![Disclosure::Never],
        security: vec![Security::E2e],
        modp: vec![ModpGroup::G1],
        crypt_algs: vec![CryptAlg::Aes128Ctr],
        hash_algs: vec![HashAlg::Sha256],
        sign_algs: vec![SignAlg::RsaSha256],
        compress: base.compress.clone(),
        stanzas: base.stanzas.clone(),
        ver: vec![Version::V1_0],
        rekey_freq: base.rekey_freq,
    };
    let mut rng = TestRng::new(51);
    let na = vec![0x11; 32];
    let pair = esession_crypto::DhKeyPair::generate(ModpGroup::G1, &mut rng).unwrap();
    let content = b"the published options, normalized";
    let signature = ra.sign(Profile::Xep, &SignAlg::RsaSha256, content, &mut rng).unwrap();
    let (mut bob_trust, mut alice_trust) = (MemoryTrust::default(), MemoryTrust::default());
    bob_trust.trust(&bare(ALICE), pa);
    alice_trust.trust(&bare(BOB), pb.clone());
    let proof = || {
        published::verify_signed(
            Profile::Xep,
            content,
            std::slice::from_ref(&signature),
            &bob_trust,
            &bare(ALICE),
        )
        .unwrap()
    };
    assert!(
        published::verify_signed(
            Profile::Xep,
            b"other options",
            std::slice::from_ref(&signature),
            &bob_trust,
            &bare(ALICE)
        )
        .is_err(),
        "a signature over other content"
    );
    let request = published::as_request(&offers, &na, &[pair.public().to_vec()]);
    let cfg = small_cfg(Config::with_identity(rb));
    for seed in 52..56u64 {
        let terminate = seed % 2 == 1;
        // C_A with its top bit clear and set: C_B = C_A xor 2^127 either way.
        let mut ent = hazmat::ScriptedEntropy::new(TestRng::new(seed));
        ent.counter = Some(if seed < 54 { 5 } else { (1 << 127) | 5 });
        let (mut stanza, bob) = published::answer(
            &cfg,
            &request,
            proof(),
            j(ALICE),
            "thread-9",
            Some(&chat("left while you were away")),
            terminate,
            &mut ent,
        )
        .unwrap();
        stanza.set_attr(minidom::rxml::Namespace::NONE, esession_forms::xml::attr_name("from").unwrap(), BOB);
        // Offline, form_B has no `accept` and no pubkey or SAS fields (A1).
        let sent = vars(&stanza);
        for var in ["accept", "init_pubkey", "resp_pubkey", "sas_algs"] {
            assert!(!sent.iter().any(|v| v == var), "{var} in {sent:?}");
        }
        let start = Start::read(&stanza, Profile::Xep).unwrap();
        assert_eq!((start.nonce(), start.group(), start.terminate()), (&na[..], ModpGroup::G1, terminate));
        assert_eq!(start.from(), &j(BOB));
        assert_eq!(start.d().len(), pair.public().len(), "Bob's d in the group");
        assert_ne!(start.d(), pair.public());
        assert_eq!(start.nb().len(), NONCE_LEN);
        let shown = format!("{start:?}");
        assert!(shown.starts_with("Start") && shown.contains(BOB), "{shown}");
        let accepted = published::accept(start, &offers, &na, &pair, Profile::Xep, &alice_trust).unwrap();
        let shown = format!("{accepted:?}");
        assert!(shown.starts_with("Accepted") && shown.contains("content: true"), "{shown}");
        assert!(!shown.contains("left while"), "{shown}");
        // A start without Bob's identity, or without its MAC, is not read.
        for var in ["identity", "mac"] {
            assert!(Start::read(&replace_field(&stanza, var, None), Profile::Xep).is_err(), "no {var}");
        }
        let (got, unprotected, _) = accepted.content.expect("the content");
        // The negotiation form beside the `<c/>` is not reported as unprotected content.
        assert!(unprotected.is_empty(), "{unprotected:?}");
        assert_eq!(
            got.get_child("body", "jabber:client").map(Element::text).as_deref(),
            Some("left while you were away")
        );
        assert_eq!(accepted.session.key_check().as_bytes(), bob.key_check().as_bytes(), "the same K");
        assert_eq!(accepted.session.peer_key(), Some(&pb));
        // Changed in flight: the form's nonce, or the encrypted content.
        let bad_nonce = set_values(&stanza, "nonce", &["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]);
        if let Ok(s) = Start::read(&bad_nonce, Profile::Xep) {
            assert!(published::accept(s, &offers, &na, &pair, Profile::Xep, &alice_trust).is_err(), "nonce");
        }
        let data = rewrite(&stanza, &mut |c: &Element| {
            (c.name() == "data").then(|| {
                let mut t = c.text().into_bytes();
                t[4] = if t[4] == b'A' { b'B' } else { b'A' };
                vec![Element::builder("data", c.ns()).append(String::from_utf8(t).unwrap()).build()]
            })
        });
        let s = Start::read(&data, Profile::Xep).unwrap();
        assert!(published::accept(s, &offers, &na, &pair, Profile::Xep, &alice_trust).is_err(), "content");
        // Alice does not trust Bob's key.
        let s = Start::read(&stanza, Profile::Xep).unwrap();
        let nobody = MemoryTrust::default();
        assert!(published::accept(s, &offers, &na, &pair, Profile::Xep, &nobody).is_err(), "untrusted");
        // Other options than those Bob answered (another cipher offered).
        let mut other = offers.clone();
        other.crypt_algs = vec![CryptAlg::Aes256Ctr];
        let s = Start::read(&stanza, Profile::Xep).unwrap();
        assert!(
            published::accept(s, &other, &na, &pair, Profile::Xep, &alice_trust).is_err(),
            "other options"
        );
    }
}
