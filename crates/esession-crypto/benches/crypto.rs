//! Criterion benchmarks of the primitives. `cargo xtask bench` runs them beside `openssl speed`
//! and prints each figure as a ratio (docs/performance.md).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use esession_crypto::{
    CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, PrivateKey, Profile, SecretBytes, SignAlg,
};
use std::hint::black_box;
use std::time::Duration;

fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

fn dh(c: &mut Criterion) {
    let mut g = c.benchmark_group("dh");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for group in ModpGroup::SUPPORTED.iter().rev() {
        let mut r = rng();
        let a = DhKeyPair::generate(*group, &mut r).unwrap();
        let b = DhKeyPair::generate(*group, &mut r).unwrap();
        let peer = b.public().to_vec();
        let x = a.export_secret();
        // g^x mod p: key generation without the RNG.
        g.bench_function(BenchmarkId::new("keygen", format!("modp{group}")), |bn| {
            bn.iter(|| DhKeyPair::from_exponent(*group, black_box(x.expose_secret())).unwrap())
        });
        // e^y mod p with the range check: one agreement.
        g.bench_function(BenchmarkId::new("agree", format!("modp{group}")), |bn| {
            bn.iter(|| a.agree_reusable(black_box(&peer)).unwrap())
        });
    }
    g.finish();
}

fn ctr(c: &mut Criterion) {
    let mut g = c.benchmark_group("ctr");
    g.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(800));
    let algs = [
        CryptAlg::Aes128Ctr,
        CryptAlg::Aes256Ctr,
        CryptAlg::Twofish128Ctr,
        CryptAlg::Twofish256Ctr,
        CryptAlg::Serpent128Ctr,
        CryptAlg::Serpent256Ctr,
    ];
    for alg in algs {
        let key = SecretBytes::new(vec![0x42; alg.key_len().unwrap()]);
        let cipher = CtrCipher::new(&alg, Profile::Xep, &key).unwrap();
        for size in [64usize, 1024, 65536] {
            if matches!(alg, CryptAlg::Twofish128Ctr | CryptAlg::Twofish256Ctr) && size == 65536 {
                g.sample_size(10);
            }
            let mut data = vec![0u8; size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(BenchmarkId::new(alg.as_str(), size), |bn| {
                bn.iter(|| cipher.decrypt(black_box(12345), black_box(&mut data)))
            });
            g.sample_size(100);
        }
    }
    g.finish();
}

fn hmac(c: &mut Criterion) {
    let mut g = c.benchmark_group("hmac");
    g.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(800));
    for hash in [HashAlg::Sha256, HashAlg::Whirlpool] {
        for size in [64usize, 1024, 65536] {
            let data = vec![7u8; size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(BenchmarkId::new(hash.as_str(), size), |bn| {
                bn.iter(|| hash.hmac(black_box(&[1u8; 32]), &[black_box(&data)]).unwrap())
            });
        }
    }
    g.finish();
}

fn hex(s: &str) -> Vec<u8> {
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() };
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn signatures(c: &mut Criterion) {
    let mut g = c.benchmark_group("sign");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let keys: serde_json::Value =
        serde_json::from_str(include_str!("../tests/vectors/identity-keys.json")).unwrap();
    let k = |a: &str, f: &str| hex(keys[a][f].as_str().unwrap());
    let rsa = PrivateKey::rsa_from_components(&k("rsa", "n"), &k("rsa", "e"), &k("rsa", "d")).unwrap();
    let dsa = PrivateKey::dsa_from_components(
        &k("dsa", "p"),
        &k("dsa", "q"),
        &k("dsa", "g"),
        &k("dsa", "y"),
        &k("dsa", "x"),
    )
    .unwrap();
    let msg = [9u8; 32];
    for (name, key, alg) in [("rsa2048", &rsa, SignAlg::RsaSha256), ("dsa2048_256", &dsa, SignAlg::DsaSha256)]
    {
        let mut r = rng();
        let sig = key.sign(Profile::Xep, &alg, &msg, &mut r).unwrap();
        let public = key.public_key();
        g.bench_function(BenchmarkId::new(name, "sign"), |bn| {
            bn.iter(|| key.sign(Profile::Xep, &alg, black_box(&msg), &mut r).unwrap())
        });
        g.bench_function(BenchmarkId::new(name, "verify"), |bn| {
            bn.iter(|| public.verify(Profile::Xep, &alg, black_box(&msg), &sig).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, dh, ctr, hmac, signatures);
criterion_main!(benches);
