//! `esession demo`: until the protocol layers exist, a walk through the primitives one
//! negotiation uses: two DH key pairs, the session keys, an encrypted and MACed body, the SAS.

use esession_crypto::kdf::{SessionKeys, cipher_key};
use esession_crypto::{CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, Profile, mpi, sas};
use std::process::ExitCode;
use std::time::Instant;

pub(crate) fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esession demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), esession_crypto::Error> {
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let group = ModpGroup::G14;
    let hash = HashAlg::Sha256;
    let alg = CryptAlg::Aes128Ctr;
    println!("esession demo (primitives): MODP group {group}, {hash}, {alg}");

    let t = Instant::now();
    let alice = DhKeyPair::generate(group, &mut rng)?;
    let bob = DhKeyPair::generate(group, &mut rng)?;
    println!(
        "  key pairs: e {} octets, d {} octets ({:.1} ms)",
        alice.public().len(),
        bob.public().len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let (e, d) = (alice.public().to_vec(), bob.public().to_vec());
    let t = Instant::now();
    let k_a = alice.agree(&d)?.session_key(&hash)?;
    let k_b = bob.agree(&e)?.session_key(&hash)?;
    println!(
        "  agreement on both sides: {:.1} ms, K equal: {}",
        t.elapsed().as_secs_f64() * 1e3,
        k_a.ct_eq(k_b.expose_secret())
    );

    let keys_a = SessionKeys::derive(&hash, &k_a)?;
    let keys_b = SessionKeys::derive(&hash, &k_b)?;
    let enc = CtrCipher::new(&alg, Profile::Xep, &cipher_key(Profile::Xep, &alg, &keys_a.initiator.kc)?)?;
    let dec = CtrCipher::new(&alg, Profile::Xep, &cipher_key(Profile::Xep, &alg, &keys_b.initiator.kc)?)?;
    let counter: u128 = 0x1d7f_bdbd_708b_555b_a6f5_a738_c342_5e80;
    let body = "<body>Hello, Bob!</body>";
    let mut data = body.as_bytes().to_vec();
    let after = enc.encrypt(counter, &mut data);
    let mac = hash.hmac(keys_a.initiator.km.expose_secret(), &[&data, &mpi::encode_u128(counter)])?;
    println!(
        "  Alice -> Bob: {} octets of ciphertext, MAC {} octets, counter +{}",
        data.len(),
        mac.len(),
        after - counter
    );
    hash.verify_hmac(keys_b.initiator.km.expose_secret(), &[&data, &mpi::encode_u128(counter)], &mac)?;
    let _ = dec.decrypt(counter, &mut data);
    println!("  Bob verified the MAC and decrypted: {}", String::from_utf8_lossy(&data));

    let s_a = sas::sas28x5(Profile::Xep, &hash, &mac, b"form_B")?;
    let s_b = sas::sas28x5(Profile::Xep, &hash, &mac, b"form_B")?;
    println!("  SAS: Alice sees {s_a}, Bob sees {s_b}");
    Ok(())
}
