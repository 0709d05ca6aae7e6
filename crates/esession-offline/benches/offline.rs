//! A returning Alice: `come_back` over 1,000 queued offline starts (each with its content, from
//! 1,000 contacts, RSA identities, group 14) with the durable replay store on disk, beside the
//! primitives those sessions cost her in the same run: 1,000 agreements d^x mod p and 1,000 RSA
//! signature verifications.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptoProvider, DhKeyPair, ModpGroup, PrivateKey, Profile, SignAlg};
use esession_forms::names::{Compress, Logging, StanzaType};
use esession_negotiate::{Config, MemoryTrust, RngEntropy};
use esession_offline::away::{Outbox, come_back, go_offline};
use esession_offline::publish::Plan;
use esession_offline::replay::durable::DurableReplay;
use esession_offline::{Audience, pep, send};
use minidom::Element;
use std::hint::black_box;
use std::time::Instant;

const SESSIONS: usize = 1000;
const GROUP: ModpGroup = ModpGroup::G14;

fn rsa() -> PrivateKey {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../tests/vectors/identity-keys.json")).unwrap();
    let h = |f: &str| {
        let s = v["rsa"][f].as_str().unwrap();
        hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
    };
    PrivateKey::rsa_from_components(&h("n"), &h("e"), &h("d")).unwrap()
}

fn chat(i: usize) -> Element {
    let mut m = Element::bare("message", "jabber:client");
    m.append_child(
        Element::builder("body", "jabber:client").append(format!("message {i} while you were away")).build(),
    );
    m
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("offline");
    g.sample_size(10).warm_up_time(std::time::Duration::from_millis(100));
    let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap();
    let plan = Plan {
        profile: Profile::Xep,
        provider: CryptoProvider { modp: vec![GROUP], ..CryptoProvider::default() },
        logging: vec![Logging::May],
        compress: vec![Compress::None],
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        keys: vec![rsa()],
        lifetime: Duration::hours(24),
        match_resource: None,
    };
    let set = go_offline(&plan, &[Audience::Everyone], t0, &mut RngEntropy(&mut TestRng::new(1)))
        .unwrap()
        .remove(0);
    let options = pep::options_in(&set.iqs[1]).unwrap().clone();
    let mut trust_alice = MemoryTrust::default();
    let alice = esession_negotiate::BareJid::new("alice@example.org").unwrap();
    trust_alice.trust(&alice, rsa().public_key());
    let now = t0 + Duration::hours(1);
    let verified = || send::verify(&options, &alice, &trust_alice, now, Profile::Xep).unwrap();
    let bob_cfg = Config::with_identity(rsa());
    let mut trust = MemoryTrust::default();
    let mut queue = Vec::with_capacity(SESSIONS);
    let mut r = TestRng::new(2);
    for i in 0..SESSIONS {
        let jid = format!("contact{i}@example.com");
        trust.trust(&esession_negotiate::BareJid::new(&jid).unwrap(), rsa().public_key());
        let mut s = Outbox::new()
            .start(verified(), &bob_cfg, &format!("t{i}"), Some(chat(i)), false, now, &mut RngEntropy(&mut r))
            .unwrap();
        s.set_attr(
            minidom::rxml::Namespace::NONE,
            esession_forms::xml::attr_name("from").unwrap(),
            format!("{jid}/home"),
        );
        queue.push(s);
    }
    let back = t0 + Duration::hours(2);
    let dir = std::env::temp_dir().join(format!("esession-offline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut round = 0u64;
    g.bench_function(format!("return/{SESSIONS}/modp{GROUP}"), |bn| {
        bn.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let path = dir.join(format!("replay-{round}.redb"));
                let mut store = DurableReplay::open(&path).unwrap();
                let t = Instant::now();
                let back = come_back(
                    None,
                    Some(&set.secrets),
                    &queue,
                    back,
                    Profile::Xep,
                    &trust,
                    &mut store,
                    &mut r,
                )
                .unwrap();
                spent += t.elapsed();
                assert_eq!(back.sessions.len(), SESSIONS);
                drop(store);
                let _ = std::fs::remove_file(&path);
            }
            spent
        })
    });
    // The same number of Alice's agreements and RSA verifications, back to back.
    let x = DhKeyPair::generate(GROUP, &mut r).unwrap();
    let ds: Vec<Vec<u8>> =
        (0..SESSIONS).map(|_| DhKeyPair::generate(GROUP, &mut r).unwrap().public().to_vec()).collect();
    let key = rsa();
    let public = key.public_key();
    let mac = [5u8; 32];
    let sig = key.sign(Profile::Xep, &SignAlg::RsaSha256, &mac, &mut r).unwrap();
    g.bench_function(format!("primitives/{SESSIONS}/modp{GROUP}"), |bn| {
        bn.iter(|| {
            for d in &ds {
                black_box(x.agree_reusable(d).unwrap());
                public.verify(Profile::Xep, &SignAlg::RsaSha256, &mac, &sig).unwrap();
            }
        })
    });
    // What batching saves: 100 sessions' entries committed one transaction each, or as one.
    use esession_offline::replay::ReplayStore;
    let forever = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    let entries: Vec<(Vec<u8>, chrono::DateTime<chrono::Utc>)> =
        (0..200u32).map(|i| (i.to_be_bytes().repeat(8), forever)).collect();
    for (name, batched) in [("commit-each/100", false), ("commit-batch/100", true)] {
        g.bench_function(format!("replay/{name}"), |bn| {
            bn.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let path = dir.join(format!("replay-{round}.redb"));
                    let mut store = DurableReplay::open(&path).unwrap();
                    let t = Instant::now();
                    if batched {
                        store.record_all(&entries).unwrap();
                    } else {
                        for pair in entries.chunks(2) {
                            store.record(&[pair[0].0.clone(), pair[1].0.clone()], forever).unwrap();
                        }
                    }
                    spent += t.elapsed();
                    drop(store);
                    let _ = std::fs::remove_file(&path);
                }
                spent
            })
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
