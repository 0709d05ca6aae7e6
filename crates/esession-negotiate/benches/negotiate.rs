//! A complete 4-message negotiation, both parties in memory, for groups 5, 14 and 18 (none and
//! RSA identities), beside the primitive operations it performs, measured in the same run:
//! per party 1 + (offered groups) g^x (Alice) or 1 g^y (Bob), one agreement, and with RSA one
//! signature and one verification each.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use esession_crypto::testing::TestRng;
use esession_crypto::{CryptoProvider, DhKeyPair, ModpGroup, PrivateKey, Profile, SignAlg};
use esession_negotiate::*;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn rsa_keys() -> (PrivateKey, PrivateKey) {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../tests/vectors/identity-keys.json")).unwrap();
    let h = |f: &str| {
        let s = v["rsa"][f].as_str().unwrap();
        hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
    };
    let k = || PrivateKey::rsa_from_components(&h("n"), &h("e"), &h("d")).unwrap();
    (k(), k())
}

fn negotiate(
    a_cfg: &Arc<Config>,
    b_cfg: &Arc<Config>,
    trust: &(MemoryTrust, MemoryTrust),
    seed: u64,
) -> bool {
    let mut r = TestRng::new(seed);
    let mut alice =
        Initiator::new(a_cfg.clone(), esession_negotiate::Jid::new("bob@example.com/laptop").unwrap(), "t");
    let mut bob =
        Responder::new(b_cfg.clone(), esession_negotiate::Jid::new("alice@example.org/pda").unwrap(), "t");
    let (mut at, mut bt) = (clone_trust(&trust.0), clone_trust(&trust.1));
    let (mut ar, mut br) = (MemoryRetained::default(), MemoryRetained::default());
    alice.start(Mode::Four, &mut RngEntropy(&mut r)).unwrap();
    let mut done = 0;
    for _ in 0..4 {
        while let Some(o) = alice.poll_output() {
            match o {
                Output::Send(s) => {
                    let _ = bob.handle(
                        chrono::Utc::now(),
                        &s,
                        &mut RngEntropy(&mut r),
                        &mut Stores { trust: &mut bt, retained: &mut br },
                    );
                }
                Output::Established(_) => done += 1,
                _ => {}
            }
        }
        while let Some(o) = bob.poll_output() {
            match o {
                Output::Send(s) => {
                    let _ = alice.handle(
                        chrono::Utc::now(),
                        &s,
                        &mut RngEntropy(&mut r),
                        &mut Stores { trust: &mut at, retained: &mut ar },
                    );
                }
                Output::Established(_) => done += 1,
                _ => {}
            }
        }
    }
    done == 2
}

fn clone_trust(t: &MemoryTrust) -> MemoryTrust {
    let mut out = MemoryTrust::default();
    for r in t.records() {
        for j in &r.jids {
            out.trust(j, r.key.clone());
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("negotiate");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let (ka, kb) = rsa_keys();
    let (pa, pb) = (ka.public_key(), kb.public_key());
    let mut ta = MemoryTrust::default();
    ta.trust(&esession_negotiate::BareJid::new("bob@example.com").unwrap(), pb);
    let mut tb = MemoryTrust::default();
    tb.trust(&esession_negotiate::BareJid::new("alice@example.org").unwrap(), pa);
    let trust = (ta, tb);
    let mut seed = 0u64;
    for group in [ModpGroup::G5, ModpGroup::G14, ModpGroup::G18] {
        for rsa in [false, true] {
            let cfg = |k: Option<PrivateKey>| {
                let mut c = match k {
                    Some(k) => Config::with_identity(k),
                    None => Config::default(),
                };
                c.provider = CryptoProvider { modp: vec![group], ..CryptoProvider::default() };
                // Group 5 is measured too: accepted because the benchmark asks for it.
                c.support.crypto = CryptoProvider::all();
                if c.identity.is_some() {
                    c.init_pubkey = vec![esession_forms::names::PubkeyMethod::Key];
                    c.resp_pubkey = vec![esession_forms::names::PubkeyMethod::Key];
                }
                Arc::new(c)
            };
            let (rsa_a, rsa_b) = rsa_keys();
            let (a_cfg, b_cfg) =
                if rsa { (cfg(Some(rsa_a)), cfg(Some(rsa_b))) } else { (cfg(None), cfg(None)) };
            let label = if rsa { "rsa" } else { "none" };
            g.bench_function(BenchmarkId::new(format!("full/{label}"), format!("modp{group}")), |bn| {
                bn.iter(|| {
                    seed += 1;
                    assert!(negotiate(&a_cfg, &b_cfg, &trust, seed));
                })
            });
        }
        // The DH part of one negotiation, run back to back: two key generations, two agreements.
        let mut r = TestRng::new(9);
        g.bench_function(BenchmarkId::new("primitives/dh", format!("modp{group}")), |bn| {
            bn.iter(|| {
                let a = DhKeyPair::generate(group, &mut r).unwrap();
                let b = DhKeyPair::generate(group, &mut r).unwrap();
                let za = a.agree_reusable(b.public()).unwrap();
                let zb = b.agree_reusable(a.public()).unwrap();
                black_box((za, zb))
            })
        });
    }
    // The signature part of an RSA negotiation (the same for every group): two signatures and
    // two verifications.
    let mut r = TestRng::new(10);
    let (sk, _) = rsa_keys();
    let pk = sk.public_key();
    let mac = [7u8; 32];
    let sig = sk.sign(Profile::Xep, &SignAlg::RsaSha256, &mac, &mut r).unwrap();
    g.bench_function(BenchmarkId::new("primitives/rsa", "2x(sign+verify)"), |bn| {
        bn.iter(|| {
            for _ in 0..2 {
                black_box(sk.sign(Profile::Xep, &SignAlg::RsaSha256, &mac, &mut r).unwrap());
                pk.verify(Profile::Xep, &SignAlg::RsaSha256, &mac, &sig).unwrap();
            }
        })
    });
    g.finish();
}

/// Time to Alice's first message when offering all eight groups: with fresh key pairs (eight
/// g^x on the critical path) and with pairs taken from a [`esession_crypto::DhPool`] filled
/// beforehand (the refill is setup, outside the measurement).
fn first_message(c: &mut Criterion) {
    let mut g = c.benchmark_group("start");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    // Every group this build implements (the weak ones included), as the figures of
    // docs/performance.md were measured.
    let cfg = Arc::new(Config { provider: CryptoProvider::all(), ..Config::default() });
    assert_eq!(cfg.provider.modp.len(), 8);
    let mut r = TestRng::new(11);
    g.bench_function(BenchmarkId::new("all-groups", "fresh"), |bn| {
        bn.iter(|| {
            let mut alice = Initiator::new(
                cfg.clone(),
                esession_negotiate::Jid::new("bob@example.com/laptop").unwrap(),
                "t",
            );
            alice.start(Mode::Four, &mut RngEntropy(&mut r)).unwrap();
            black_box(alice.poll_output())
        })
    });
    let mut pool = esession_crypto::DhPool::new(&cfg.provider.modp, 1).unwrap();
    g.bench_function(BenchmarkId::new("all-groups", "pooled"), |bn| {
        bn.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                pool.refill(&mut r).unwrap();
                let mut alice = Initiator::new(
                    cfg.clone(),
                    esession_negotiate::Jid::new("bob@example.com/laptop").unwrap(),
                    "t",
                );
                let t = std::time::Instant::now();
                alice.start(Mode::Four, &mut PooledEntropy { rng: &mut r, pool: &mut pool }).unwrap();
                black_box(alice.poll_output());
                spent += t.elapsed();
                assert_eq!(pool.wanted(), Some(ModpGroup::G1), "all eight pooled pairs were used");
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, bench, first_message);
criterion_main!(benches);
