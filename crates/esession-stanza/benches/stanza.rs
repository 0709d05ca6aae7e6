//! XEP-0200 stanza path benchmarks: encrypt (XML split, serialize, encrypt, MAC, build `<c/>`)
//! decrypt (verify, decrypt, parse, rebuild the stanza) and both in a row, for a chat message
//! with a 200 B and a 4 KiB body, per cipher,
//! beside the raw CTR + HMAC cost of the same octets measured in the same run.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use esession_crypto::kdf::{SessionKeys, cipher_key};
use esession_crypto::{CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, Profile, SecretBytes};
use esession_forms::names::{Compress, StanzaType};
use esession_stanza::{DEFAULT_MAX_BLOCKS, DirectionKeys, EncryptOptions, Params, Session};
use minidom::Element;
use std::hint::black_box;
use std::time::Duration;

fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

fn pair(cipher: &CryptAlg) -> (Session, Session) {
    let p = Params {
        profile: Profile::Xep,
        hash: HashAlg::Sha256,
        cipher: cipher.clone(),
        compress: Compress::None,
        stanzas: vec![StanzaType::Message],
        rekey_freq: u32::MAX,
        group: ModpGroup::G1,
        max_blocks: u64::MAX,
    };
    let _ = DEFAULT_MAX_BLOCKS;
    let mut r = rng();
    let x = DhKeyPair::generate(p.group, &mut r).unwrap();
    let y = DhKeyPair::generate(p.group, &mut r).unwrap();
    let (e, d) = (x.public().to_vec(), y.public().to_vec());
    let k = x.agree_reusable(&d).unwrap().session_key(&p.hash).unwrap();
    let keys = SessionKeys::derive(&p.hash, &k).unwrap();
    let dir = |kc: &SecretBytes, km: &SecretBytes, c| DirectionKeys {
        cipher_key: cipher_key(p.profile, &p.cipher, kc).unwrap(),
        mac_key: km.duplicate(),
        counter: c,
    };
    let (i, o) = (&keys.initiator, &keys.responder);
    let a = Session::new(p.clone(), dir(&i.kc, &i.km, 5), dir(&o.kc, &o.km, 5 ^ 1 << 127), x, d).unwrap();
    let b = Session::new(p.clone(), dir(&o.kc, &o.km, 5 ^ 1 << 127), dir(&i.kc, &i.km, 5), y, e).unwrap();
    (a, b)
}

fn chat(len: usize) -> Element {
    let mut m = Element::bare("message", "jabber:client");
    m.append_child(
        Element::builder("thread", "jabber:client").append("ffd7076498744578d10edabfe7f4a866").build(),
    );
    m.append_child(Element::builder("body", "jabber:client").append("a".repeat(len)).build());
    m
}

fn stanza(c: &mut Criterion) {
    let mut g = c.benchmark_group("stanza");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for alg in [
        CryptAlg::Aes128Ctr,
        CryptAlg::Aes256Ctr,
        CryptAlg::Serpent128Ctr,
        CryptAlg::Twofish128Ctr,
        CryptAlg::None,
    ] {
        for len in [200usize, 4096] {
            let msg = chat(len);
            g.throughput(Throughput::Bytes(len as u64));
            let (mut a, _) = pair(&alg);
            let mut r = rng();
            g.bench_function(BenchmarkId::new(format!("encrypt/{alg}"), len), |bn| {
                bn.iter(|| a.encrypt(black_box(&msg), EncryptOptions::default(), &mut r).unwrap())
            });
            // A fresh pair: the receiver must follow the sender's counter from the start.
            let (mut a, mut b) = pair(&alg);
            g.bench_function(BenchmarkId::new(format!("roundtrip/{alg}"), len), |bn| {
                bn.iter(|| {
                    let w = a.encrypt(black_box(&msg), EncryptOptions::default(), &mut r).unwrap();
                    b.decrypt(&w).unwrap()
                })
            });
            // Decrypt alone: stanzas encrypted in the untimed setup, decrypted in order.
            let (mut a, mut b) = pair(&alg);
            g.bench_function(BenchmarkId::new(format!("decrypt/{alg}"), len), |bn| {
                bn.iter_batched(
                    || a.encrypt(&msg, EncryptOptions::default(), &mut r).unwrap(),
                    |w| b.decrypt(black_box(&w)).unwrap(),
                    BatchSize::SmallInput,
                )
            });
            // The raw primitives on the same octets: CTR over m, and HMAC over what a_mac covers,
            // m_content = <data>Base64(m_final)</data>, then C (Base64 itself is not counted).
            let m = format!("<body>{}</body>", "a".repeat(len)).into_bytes();
            let m_content = format!("<data>{}</data>", esession_crypto::mpi::b64_encode(&m)).into_bytes();
            let key = SecretBytes::new(vec![7; alg.key_len().unwrap()]);
            let ctr = CtrCipher::new(&alg, Profile::Xep, &key).unwrap();
            g.bench_function(BenchmarkId::new(format!("raw-ctr-hmac/{alg}"), len), |bn| {
                bn.iter(|| {
                    let mut d = m.clone();
                    let c = ctr.encrypt(black_box(9), &mut d);
                    black_box(&d);
                    HashAlg::Sha256.hmac(&[1; 32], &[&m_content, &c.to_be_bytes()]).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, stanza);
criterion_main!(benches);
