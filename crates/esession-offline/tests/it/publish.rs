//! Alice going offline (XEP-0187 §3.1, §6.1): the options form against an independent vector,
//! the PEP stanzas, the expiry, and new secrets for every absence.

use chrono::{DateTime, Duration, Utc};
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, ModpGroup, PrivateKey, Profile};
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::hazmat::ScriptedEntropy;
use esession_negotiate::{Config, MemoryTrust, RngEntropy};
use esession_offline::away::{Outbox, come_back, go_offline};
use esession_offline::publish::{Plan, expiry, prepare};
use esession_offline::replay::MemoryReplay;
use esession_offline::{Audience, Check, Error, SUBSCRIBERS_NODE, pep, send};
use minidom::Element;

/// The publish step of `xep-off_rsa_terminate.json` (an independent implementation), copied
/// from /work/shared/vectors into this crate.
fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("fixtures/xep0187_publish.json")).unwrap()
}

fn hex(v: &serde_json::Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
}

fn field_vars(x: &Element) -> Vec<String> {
    x.children().filter(|f| f.name() == "field").filter_map(|f| f.attr("var")).map(str::to_owned).collect()
}

#[test]
fn options_form_is_the_request_form_of_the_vector() {
    // X187-3.1-01: built exactly as an online request form, without accept and pubkey: the
    // normalized content prepare() signs equals the independent vector's, octet for octet, and
    // the RSA signature (deterministic) equals the vector's.
    let v = fixture();
    let rsa =
        PrivateKey::rsa_from_components(&hex(&v["rsa"]["n"]), &hex(&v["rsa"]["e"]), &hex(&v["rsa"]["d"]))
            .unwrap();
    let d = &v["dsa"];
    let dsa = PrivateKey::dsa_from_components(
        &hex(&d["p"]),
        &hex(&d["q"]),
        &hex(&d["g"]),
        &hex(&d["y"]),
        &hex(&d["x"]),
    )
    .unwrap();
    let groups: Vec<ModpGroup> = v["modp"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| ModpGroup::from_number(g.as_u64().unwrap() as u32))
        .collect();
    let plan = Plan {
        profile: Profile::Xep,
        provider: CryptoProvider {
            modp: groups.clone(),
            crypt_algs: vec![CryptAlg::Aes128Ctr],
            hash_algs: vec![HashAlg::Sha256],
            ..CryptoProvider::default()
        },
        logging: vec![Logging::May, Logging::MustNot],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![rsa, dsa],
        lifetime: Duration::seconds(v["lifetime_seconds"].as_i64().unwrap()),
        match_resource: None,
    };
    let now: DateTime<Utc> = v["now"].as_str().unwrap().parse().unwrap();
    // The vector's randomness: its N_A, its x per group.
    let mut entropy = ScriptedEntropy::new(TestRng::new(1));
    entropy.nonce = Some(hex(&v["NA"]));
    entropy.by_group = groups.iter().map(|g| (*g, hex(&v["x"][format!("modp{}", g.number())]))).collect();
    entropy.fill = Some(0);
    entropy.strict = true;
    let (x, secrets) = prepare(&plan, Audience::Subscribers, now, &mut entropy).unwrap();
    let content = esession_forms::normalize::form_content(Profile::Xep, &x, &["signs"]).unwrap();
    assert_eq!(
        String::from_utf8(content).unwrap(),
        v["signed_content_text"].as_str().unwrap(),
        "the signed content is the vector's"
    );
    let vars = field_vars(&x);
    for never in ["accept", "pubkey", "init_pubkey", "resp_pubkey", "sas_algs"] {
        assert!(!vars.iter().any(|f| f == never), "no {never} field: {vars:?}");
    }
    let f = esession_forms::dataform::DataForm::parse(&x).unwrap();
    let signs = &f.field("signs").unwrap().values;
    assert_eq!(signs.len(), 2, "one signature per key");
    assert_eq!(esession_crypto::mpi::b64_decode(&signs[0]).unwrap(), hex(&v["rsa_signature"]));
    assert_eq!(esession_offline::xep0082(secrets.expires), v["expires"].as_str().unwrap());
}

fn small_plan(lifetime: Duration) -> Plan {
    let (rsa, _) = crate::keys();
    Plan {
        profile: Profile::Xep,
        provider: CryptoProvider { modp: vec![ModpGroup::G1, ModpGroup::G2], ..CryptoProvider::default() },
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![rsa],
        lifetime,
        match_resource: None,
    }
}

fn t0() -> DateTime<Utc> {
    "2026-03-01T10:00:00Z".parse().unwrap()
}

#[test]
fn the_publish_iqs_create_the_node_then_publish_to_our_own_server() {
    let sets = go_offline(
        &small_plan(Duration::hours(8)),
        &[Audience::Subscribers, Audience::Everyone],
        t0(),
        &mut RngEntropy(&mut TestRng::new(3)),
    )
    .unwrap();
    for p in &sets {
        let [create, publish] = &p.iqs[..] else { panic!("two IQs") };
        for iq in [create, publish] {
            // X187-3.1-09: through her own server: iq type=set without `to`.
            assert_eq!((iq.name(), iq.attr("type"), iq.attr("to")), ("iq", Some("set"), None));
        }
        // X187-3.1-10: the creation comes first, with the configuration (A16: a submit form).
        let ps = create.get_child("pubsub", pep::PUBSUB_NS).unwrap();
        assert_eq!(ps.get_child("create", pep::PUBSUB_NS).unwrap().attr("node"), Some(p.audience.node()));
        let form = esession_forms::dataform::DataForm::parse(
            ps.get_child("configure", pep::PUBSUB_NS).unwrap().children().next().unwrap(),
        )
        .unwrap();
        let value = |var: &str| form.field(var).map(|f| f.values.clone());
        assert_eq!(value("FORM_TYPE"), Some(vec!["http://jabber.org/protocol/pubsub#node_config".into()]));
        assert_eq!(value("pubsub#deliver_notifications"), Some(vec!["0".into()]), "X187-3.1-12");
        assert_eq!(value("pubsub#send_last_published_item"), Some(vec!["never".into()]), "X187-3.1-12");
        let model = if p.audience == Audience::Subscribers { "presence" } else { "open" };
        assert_eq!(value("pubsub#access_model"), Some(vec![model.into()]), "X187-3.1-11");
        let publish_node = publish
            .get_child("pubsub", pep::PUBSUB_NS)
            .and_then(|ps| ps.get_child("publish", pep::PUBSUB_NS))
            .and_then(|p| p.attr("node"));
        assert_eq!(publish_node, Some(p.audience.node()), "the publish goes to the node just created");
        assert!(pep::options_in(publish).is_some());
    }
    assert_eq!(sets[0].audience.node(), SUBSCRIBERS_NODE);
}

#[test]
fn lifetimes_that_give_no_valid_expiry_are_refused() {
    // X187-3.1-03: an expiry every reader can parse, in the future; never a panic.
    for bad in [
        Duration::zero(),
        Duration::seconds(-3600),
        Duration::seconds(100_000_000_000_000),
        Duration::MAX,
        Duration::MIN,
        Duration::days(365 * 8000),
    ] {
        assert!(matches!(expiry(t0(), bad), Err(Error::Config(_))), "{bad:?}");
        let r = prepare(&small_plan(bad), Audience::Subscribers, t0(), &mut RngEntropy(&mut TestRng::new(4)));
        assert!(matches!(r, Err(Error::Config(_))), "{bad:?}");
    }
    assert!(expiry(DateTime::<Utc>::MAX_UTC, Duration::seconds(1)).is_err());
    assert_eq!(expiry(t0(), Duration::hours(1)).unwrap(), t0() + Duration::hours(1));
}

#[test]
fn every_absence_draws_new_secrets_and_the_old_ones_answer_nothing() {
    // X187-6.1-01: two absences (one entropy source, as a client has) give different N_A and a
    // different e for every group; a start made from the first absence's options, received
    // after the second, is dropped: its nonce is no longer ours.
    let mut rng = TestRng::new(10);
    let plan = small_plan(Duration::hours(24));
    let first =
        go_offline(&plan, &[Audience::Subscribers], t0(), &mut RngEntropy(&mut rng)).unwrap().remove(0);
    let later = t0() + Duration::hours(3);
    let second =
        go_offline(&plan, &[Audience::Subscribers], later, &mut RngEntropy(&mut rng)).unwrap().remove(0);
    assert_ne!(first.secrets.na, second.secrets.na, "a new N_A");
    assert_eq!(first.secrets.pairs.len(), second.secrets.pairs.len());
    for ((g1, a), (g2, b)) in first.secrets.pairs.iter().zip(&second.secrets.pairs) {
        assert_eq!(g1, g2);
        assert_ne!(a.public(), b.public(), "a new e for group {g1}");
    }
    // Bob answers the first absence's options; the start reaches Alice after the second.
    let (rsa, bob_key) = (crate::keys().0, crate::keys().0);
    let mut trust_alice = MemoryTrust::default();
    trust_alice.trust(&crate::bare("alice@example.org"), rsa.public_key());
    let options = pep::options_in(&first.iqs[1]).unwrap().clone();
    let v = send::verify(
        &options,
        &crate::bare("alice@example.org"),
        &trust_alice,
        t0() + Duration::hours(1),
        Profile::Xep,
    )
    .unwrap();
    let mut bob = Outbox::new();
    let mut start = bob
        .start(
            v,
            &crate::weak_ok(Config::with_identity(bob_key)),
            "t-old",
            Some(
                Element::builder("message", "jabber:client")
                    .append(Element::builder("body", "jabber:client").append("old"))
                    .build(),
            ),
            true,
            t0() + Duration::hours(1),
            &mut RngEntropy(&mut TestRng::new(11)),
        )
        .unwrap();
    start.set_attr(
        minidom::rxml::Namespace::NONE,
        esession_forms::xml::attr_name("from").unwrap(),
        "bob@example.com/laptop".to_owned(),
    );
    let mut trust_bob = MemoryTrust::default();
    trust_bob.trust(&crate::bare("bob@example.com"), crate::keys().0.public_key());
    let r = come_back(
        Some(second.secrets),
        None,
        &[start],
        later + Duration::hours(1),
        Profile::Xep,
        &trust_bob,
        &mut MemoryReplay::default(),
        &mut TestRng::new(12),
    )
    .unwrap();
    assert!(r.sessions.is_empty());
    assert_eq!(r.dropped, vec![esession_offline::away::Dropped { index: 0, check: Check::UnknownNonce }]);
}
