//! The offline flow end to end, and each way it must fail silently.

use crate::keys;
use chrono::{Duration, TimeZone, Utc};
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup, Profile};
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::{Config, MemoryTrust, RngEntropy, TrustStore};
use esession_offline::publish::{Plan, Secrets, prepare};
use esession_offline::replay::{MemoryReplay, ReplayStore};
use esession_offline::{Audience, Check, Error, pep, receive, send};
use minidom::Element;

const ALICE: &str = "alice@example.org/pda";
const BOB: &str = "bob@example.com/laptop";

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn plan(groups: Vec<ModpGroup>, match_resource: Option<&str>, dsa_first: bool) -> Plan {
    let (rsa, dsa) = keys();
    Plan {
        profile: Profile::Xep,
        provider: CryptoProvider {
            modp: groups,
            crypt_algs: vec![CryptAlg::Aes128Ctr, CryptAlg::Aes256Ctr],
            hash_algs: vec![HashAlg::Sha256],
            ..CryptoProvider::default()
        },
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message, StanzaType::Presence, StanzaType::Iq],
        rekey_freq: 1,
        keys: if dsa_first { vec![dsa, rsa] } else { vec![rsa, dsa] },
        lifetime: Duration::hours(12),
        match_resource: match_resource.map(str::to_owned),
    }
}

fn chat(body: &str) -> Element {
    let mut m = Element::bare("message", "jabber:client");
    m.append_child(Element::builder("body", "jabber:client").append(body).build());
    m
}

struct World {
    options: Element,
    secrets: Secrets,
    bob_trust: MemoryTrust,
    alice_trust: MemoryTrust,
    bob_cfg: Config,
}

fn world(groups: Vec<ModpGroup>, match_resource: Option<&str>, bob_dsa: bool) -> World {
    let (rsa, dsa) = keys();
    let mut r = TestRng::new(1);
    let (options, secrets) =
        prepare(&plan(groups, match_resource, false), Audience::Subscribers, t0(), &mut RngEntropy(&mut r))
            .unwrap();
    let mut bob_trust = MemoryTrust::default();
    bob_trust.trust(&crate::bare("alice@example.org"), rsa.public_key());
    let bob_key = if bob_dsa { dsa } else { rsa };
    let mut alice_trust = MemoryTrust::default();
    alice_trust.trust(&crate::bare("bob@example.com"), bob_key.public_key());
    World {
        options,
        secrets,
        bob_trust,
        alice_trust,
        bob_cfg: crate::weak_ok(Config::with_identity(bob_key)),
    }
}

fn bob_sends(
    w: &World,
    body: Option<&str>,
    terminate: bool,
    seed: u64,
) -> (Element, esession_negotiate::Established) {
    let v =
        send::verify(&w.options, &crate::bare(ALICE), &w.bob_trust, t0() + Duration::hours(1), Profile::Xep)
            .unwrap();
    send::start(
        v,
        &w.bob_cfg,
        "thread-off",
        body.map(chat),
        terminate,
        t0() + Duration::hours(1),
        &mut RngEntropy(&mut TestRng::new(seed)),
    )
    .unwrap()
}

fn from_bob(mut s: Element) -> Element {
    // The server stamps the sender.
    if let Ok(n) = esession_forms::xml::attr_name("from") {
        s.set_attr(minidom::rxml::Namespace::NONE, n, BOB.to_owned());
    }
    s
}

#[test]
fn full_flow_rsa_and_dsa_several_groups_match_resource_and_terminate() {
    for (bob_dsa, groups, mr, terminate) in [
        (false, vec![ModpGroup::G5, ModpGroup::G14], None, false),
        (true, vec![ModpGroup::G14, ModpGroup::G1], Some("pda"), true),
        (false, vec![ModpGroup::G2], Some("pda"), false),
        (true, vec![ModpGroup::G1], None, true),
    ] {
        let w = world(groups, mr, bob_dsa);
        let (stanza, mut bob) = bob_sends(&w, Some("Offline hello"), terminate, 3);
        // Wire shape: <init/>, <c/>, the AMP rule with match_resource, never in clear.
        assert!(stanza.children().any(|c| c.name() == "init"));
        assert!(!String::from(&stanza).contains("Offline hello"));
        assert_eq!(
            stanza.attr("to"),
            Some(if mr.is_some() { "alice@example.org/pda" } else { "alice@example.org" })
        );
        assert_eq!(stanza.children().any(|c| c.name() == "amp"), mr.is_some());
        let mut replay = MemoryReplay::default();
        let (mut alice, content) = receive::accept(
            &w.secrets,
            &from_bob(stanza.clone()),
            t0() + Duration::hours(2),
            Profile::Xep,
            &w.alice_trust,
            &mut replay,
        )
        .unwrap();
        let content = content.unwrap();
        assert!(content.unprotected.is_empty(), "nothing in clear beside the start but <init/>");
        let content = content.stanza;
        assert_eq!(
            content.get_child("body", "jabber:client").map(Element::text).as_deref(),
            Some("Offline hello")
        );
        let created = content.get_child("headers", "http://jabber.org/protocol/shim").unwrap();
        assert_eq!(created.children().next().unwrap().text(), "2026-01-01T13:00:00Z");
        assert!(alice.peer_key().is_some());
        assert_eq!(replay.len(), 2, "d and N_B recorded");
        if terminate {
            assert!(alice.session().is_closed() && bob.session().is_closed());
        } else {
            // Later stanzas of the session reach Alice; she never sends.
            for text in ["second", "third"] {
                let wire = bob
                    .encrypt(&chat(text), esession_stanza::EncryptOptions::default(), &mut TestRng::new(9))
                    .unwrap();
                let got = alice.receive(&wire, false, &mut TestRng::new(9)).unwrap();
                match got {
                    esession_negotiate::Received::Stanza { stanza: s, .. } => assert_eq!(
                        s.get_child("body", "jabber:client").map(Element::text).as_deref(),
                        Some(text)
                    ),
                    other => panic!("{other:?}"),
                }
            }
        }
        // The same start again is a replay.
        assert_eq!(
            receive::accept(
                &w.secrets,
                &from_bob(stanza),
                t0() + Duration::hours(2),
                Profile::Xep,
                &w.alice_trust,
                &mut replay
            )
            .err(),
            Some(Error::Refused(Check::Replay))
        );
    }
}

#[test]
fn bob_refuses_bad_options() {
    let w = world(vec![ModpGroup::G1], None, false);
    let later = t0() + Duration::hours(1);
    // Untrusted signer.
    let empty = MemoryTrust::default();
    assert_eq!(
        send::verify(&w.options, &crate::bare(ALICE), &empty, later, Profile::Xep).err(),
        Some(Error::Refused(Check::OptionsSignature))
    );
    // A signed option changed.
    let tampered =
        esession_forms::xml::parse(&String::from(&w.options).replace("aes256-ctr", "aes192-ctr")).unwrap();
    assert_eq!(
        send::verify(&tampered, &crate::bare(ALICE), &w.bob_trust, later, Profile::Xep).err(),
        Some(Error::Refused(Check::OptionsSignature))
    );
    // No signs at all.
    let unsigned = strip_signs(&w.options);
    assert_eq!(
        send::verify(&unsigned, &crate::bare(ALICE), &w.bob_trust, later, Profile::Xep).err(),
        Some(Error::Refused(Check::OptionsSignature))
    );
    // Expired (now >= expires).
    assert_eq!(
        send::verify(&w.options, &crate::bare(ALICE), &w.bob_trust, t0() + Duration::hours(12), Profile::Xep)
            .err(),
        Some(Error::Refused(Check::OptionsExpired))
    );
    // Unsupported options.
    let v = send::verify(&w.options, &crate::bare(ALICE), &w.bob_trust, later, Profile::Xep).unwrap();
    let mut cfg = crate::weak_ok(Config::with_identity(keys().0));
    cfg.support.crypto.crypt_algs = vec![CryptAlg::Serpent256Ctr];
    assert_eq!(
        send::start(v, &cfg, "t", None, false, later, &mut RngEntropy(&mut TestRng::new(1))).err(),
        Some(Error::Refused(Check::OptionsUnsupported))
    );
    // One broken signature out of two is tolerated when the other verifies with a trusted key
    // (I25); with only the broken one's key trusted, the options are refused.
    let one_broken = break_first_sign(&w.options);
    assert_eq!(
        send::verify(&one_broken, &crate::bare(ALICE), &w.bob_trust, later, Profile::Xep).err(),
        Some(Error::Refused(Check::OptionsSignature))
    );
    let mut both = MemoryTrust::default();
    both.trust(&crate::bare("alice@example.org"), keys().0.public_key());
    both.trust(&crate::bare("alice@example.org"), keys().1.public_key());
    let v = send::verify(&one_broken, &crate::bare(ALICE), &both, later, Profile::Xep).unwrap();
    assert_eq!(v.signer(), Some(&keys().1.public_key()), "the DSA signature carried it");
}

fn strip_signs(x: &Element) -> Element {
    let mut out = Element::bare(x.name(), x.ns());
    for ((ns, n), v) in x.attrs().iter() {
        out.attrs_mut().insert(ns.clone(), n.clone(), v.clone());
    }
    for c in x.children().filter(|c| c.attr("var") != Some("signs")) {
        out.append_child(c.clone());
    }
    out
}

fn break_first_sign(x: &Element) -> Element {
    let text = String::from(x);
    let start = find_var(&text, "signs");
    let v = start + text[start..].find("<value>").unwrap() + 7;
    let mut b = text.into_bytes();
    b[v] = if b[v] == b'A' { b'B' } else { b'A' };
    esession_forms::xml::parse(&String::from_utf8(b).unwrap()).unwrap()
}

#[test]
fn alice_drops_every_bad_start_silently() {
    let w = world(vec![ModpGroup::G1, ModpGroup::G2], None, false);
    let (stanza, _) = bob_sends(&w, Some("x"), false, 4);
    let stanza = from_bob(stanza);
    let ok_time = t0() + Duration::hours(2);
    let run = |s: &Element, now| {
        let mut replay = MemoryReplay::default();
        receive::accept(&w.secrets, s, now, Profile::Xep, &w.alice_trust, &mut replay).err()
    };
    // Expired when she returns.
    assert_eq!(run(&stanza, t0() + Duration::hours(13)), Some(Error::Refused(Check::OptionsExpired)));
    // Tampered fields: each is refused (nonce, my_nonce, dhkeys, modp, counter, identity, mac,
    // logging, the <data/> of the content).
    let text = String::from(&stanza);
    for (var, expect) in [
        ("nonce", Check::UnknownNonce),
        ("my_nonce", Check::Signature),
        ("dhkeys", Check::MB),
        ("counter", Check::MB),
        ("identity", Check::MB),
        ("mac", Check::MB),
    ] {
        let changed = flip_field(&text, var);
        assert_eq!(run(&changed, ok_time), Some(Error::Refused(expect)), "{var}");
    }
    let m = find_var(&text, "modp");
    let other_group = esession_forms::xml::parse(&format!(
        "{}{}",
        &text[..m],
        text[m..].replacen("<value>1</value>", "<value>5</value>", 1)
    ))
    .unwrap();
    assert_eq!(run(&other_group, ok_time), Some(Error::Refused(Check::UnknownGroup)));
    let logging =
        esession_forms::xml::parse(&text.replacen("<value>may</value>", "<value>mustnot</value>", 1))
            .unwrap();
    assert_eq!(run(&logging, ok_time), Some(Error::Refused(Check::Options)), "mustnot was not offered");
    // An acceptable value Bob did not send (rekey_freq above the minimum) passes the options
    // check but not mac_B, which covers form_B.
    let f = find_var(&text, "rekey_freq");
    let other = esession_forms::xml::parse(&format!(
        "{}{}",
        &text[..f],
        text[f..].replacen("<value>1</value>", "<value>2</value>", 1)
    ))
    .unwrap();
    assert_eq!(run(&other, ok_time), Some(Error::Refused(Check::Signature)), "form_B is covered by mac_B");
    // A choice Alice never offered is refused before any key is computed (I27 "options").
    let f = find_var(&text, "crypt_algs");
    let unoffered = esession_forms::xml::parse(&format!(
        "{}{}",
        &text[..f],
        text[f..].replacen("aes128-ctr", "aes192-ctr", 1)
    ))
    .unwrap();
    assert_eq!(run(&unoffered, ok_time), Some(Error::Refused(Check::Options)));
    let data = flip_c_data(&text);
    assert_eq!(run(&data, ok_time), Some(Error::Refused(Check::Content)));
    // A key Alice does not trust.
    let mut replay = MemoryReplay::default();
    assert_eq!(
        receive::accept(&w.secrets, &stanza, ok_time, Profile::Xep, &MemoryTrust::default(), &mut replay)
            .err(),
        Some(Error::Refused(Check::KeyTrust))
    );
    assert!(replay.is_empty(), "a refused start records nothing");
    // A forged copy that failed does not block the genuine one.
    let mut replay = MemoryReplay::default();
    let _ = receive::accept(
        &w.secrets,
        &flip_field(&text, "mac"),
        ok_time,
        Profile::Xep,
        &w.alice_trust,
        &mut replay,
    );
    assert!(receive::accept(&w.secrets, &stanza, ok_time, Profile::Xep, &w.alice_trust, &mut replay).is_ok());
    // Same N_B with another d is a replay too.
    assert!(replay.seen(&receive::replay_keys(&w.secrets.na, b"other", &nb_of(&stanza))[1], ok_time));
}

fn nb_of(s: &Element) -> Vec<u8> {
    let w = esession_forms::esession::Wrapper::find(s).unwrap();
    let (_, x) = esession_forms::esession::Wrapper::unwrap(w).unwrap();
    let f = esession_forms::dataform::DataForm::parse(x).unwrap();
    esession_crypto::mpi::b64_decode(&f.field("my_nonce").unwrap().values[0]).unwrap()
}

fn flip_field(text: &str, var: &str) -> Element {
    let start = find_var(text, var);
    let v = start + text[start..].find("<value>").unwrap() + 7;
    let mut b = text.as_bytes().to_vec();
    b[v + 1] = if b[v + 1] == b'A' { b'B' } else { b'A' };
    esession_forms::xml::parse(&String::from_utf8(b).unwrap()).unwrap()
}

fn flip_c_data(text: &str) -> Element {
    let v = text.find("<data>").unwrap() + 6;
    let mut b = text.as_bytes().to_vec();
    b[v] = if b[v] == b'A' { b'B' } else { b'A' };
    esession_forms::xml::parse(&String::from_utf8(b).unwrap()).unwrap()
}

#[test]
fn sealed_secrets_and_pep_stanzas() {
    let w = world(vec![ModpGroup::G1, ModpGroup::G5], None, false);
    let key = esession_crypto::SealingKey::generate(&mut TestRng::new(5));
    let sealed = w.secrets.seal(&key, &mut TestRng::new(6)).unwrap();
    let back = Secrets::open(&key, &sealed).unwrap();
    assert_eq!(back.na, w.secrets.na);
    assert_eq!(back.expires, w.secrets.expires);
    // X187-3.1-04: N_A, every x (each group with its own x) and the expiry survive.
    assert_eq!(back.pairs.len(), w.secrets.pairs.len());
    for ((g, kp), (g0, kp0)) in back.pairs.iter().zip(&w.secrets.pairs) {
        assert_eq!(g, g0);
        assert_eq!(kp.public(), kp0.public(), "the x of group {g}");
        assert_eq!(
            kp.export_secret().expose_secret(),
            kp0.export_secret().expose_secret(),
            "the x of group {g} itself"
        );
    }
    assert_eq!(back.offers, w.secrets.offers, "the offers survive, so a reopened store still checks them");
    assert!(Secrets::open(&esession_crypto::SealingKey::generate(&mut TestRng::new(7)), &sealed).is_err());
    // PEP: create, publish, withdraw, fetch.
    let create = pep::create_node(Audience::Subscribers, "c1");
    assert!(String::from(&create).contains("pubsub#access_model"));
    let publish = pep::publish(Audience::Everyone, "p1", w.options.clone());
    // X187-3.1-09: published through her own server: an iq set without `to`.
    assert_eq!((publish.name(), publish.attr("type"), publish.attr("to")), ("iq", Some("set"), None));
    assert_eq!(pep::options_in(&publish), Some(&w.options));
    assert!(String::from(&publish).contains(esession_offline::EVERYONE_NODE));
    let withdraw = pep::withdraw(Audience::Subscribers, "w1");
    assert_eq!(pep::options_in(&withdraw), None, "an empty item means no options");
    let fetch = pep::items_request(Audience::Subscribers, "alice@example.org", "f1");
    assert_eq!(fetch.attr("type"), Some("get"));
    // Options parse; iq is never offered; match_resource restricts stanzas to message.
    let f = esession_forms::dataform::DataForm::parse(&w.options).unwrap();
    let o = esession_forms::esession::OfflineOptions::parse(&f).unwrap();
    assert!(!o.offers.stanzas.contains(&StanzaType::Iq));
    let w2 = world(vec![ModpGroup::G1], Some("pda"), false);
    let o2 = esession_forms::esession::OfflineOptions::parse(
        &esession_forms::dataform::DataForm::parse(&w2.options).unwrap(),
    )
    .unwrap();
    assert_eq!(o2.offers.stanzas, vec![StanzaType::Message]);
    assert_eq!(o2.signs.len(), 2, "one signature per identity key");
    let _ = TrustStore::for_jid(&w.bob_trust, &crate::bare("alice@example.org"));
}

/// Where the field `var` starts, whatever quotes the serializer used.
fn find_var(text: &str, var: &str) -> usize {
    text.find(&format!("var=\"{var}\"")).or_else(|| text.find(&format!("var='{var}'"))).unwrap()
}
