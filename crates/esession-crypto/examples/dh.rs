//! One Diffie-Hellman agreement in MODP group 14, the six session keys, and a stanza's worth of
//! AES-128-CTR with the protocol's counter: the primitives a negotiation strings together.
//!
//! `cargo run -p esession-crypto --example dh`

use esession_crypto::kdf::{SessionKeys, cipher_key};
use esession_crypto::{CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, Profile, sas};

fn main() -> Result<(), esession_crypto::Error> {
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let alice = DhKeyPair::generate(ModpGroup::G14, &mut rng)?;
    let bob = DhKeyPair::generate(ModpGroup::G14, &mut rng)?;
    let (e, d) = (alice.public().to_vec(), bob.public().to_vec());
    println!("e: {} octets, d: {} octets", e.len(), d.len());

    // Each side range-checks the other's value and uses its own exponent once.
    let k_alice = alice.agree(&d)?.session_key(&HashAlg::Sha256)?;
    let k_bob = bob.agree(&e)?.session_key(&HashAlg::Sha256)?;
    let keys_a = SessionKeys::derive(&HashAlg::Sha256, &k_alice)?;
    let keys_b = SessionKeys::derive(&HashAlg::Sha256, &k_bob)?;

    let alg = CryptAlg::Aes128Ctr;
    let enc = CtrCipher::new(&alg, Profile::Xep, &cipher_key(Profile::Xep, &alg, &keys_a.initiator.kc)?)?;
    let dec = CtrCipher::new(&alg, Profile::Xep, &cipher_key(Profile::Xep, &alg, &keys_b.initiator.kc)?)?;
    let mut data = b"<body>hello</body>".to_vec();
    let c = enc.encrypt(7, &mut data);
    println!("ciphertext: {}", hex(&data));
    let c2 = dec.decrypt(7, &mut data);
    println!("plaintext: {}, counter 7 -> {c}", String::from_utf8_lossy(&data));
    assert_eq!(c, c2);

    // The short authentication string both people compare (over M_A and form B in a
    // negotiation; stand-ins here).
    let sas = sas::sas28x5(Profile::Xep, &HashAlg::Sha256, &[1, 2, 3], b"<field/>")?;
    println!("SAS: {sas}");
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
