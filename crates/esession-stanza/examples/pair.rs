//! Two ends of an established XEP-0200 session: Alice encrypts a message, Bob decrypts it, and
//! a replay of the same `<c/>` fails the MAC and ends Bob's session.
//!
//! The keys are fixed here; in a real session esession-negotiate derives and hands them over.
//!
//! `cargo run -p esession-stanza --example pair`

use esession_crypto::{CryptAlg, DhKeyPair, HashAlg, ModpGroup, Profile, SecretBytes};
use esession_forms::names::{Compress, StanzaType};
use esession_stanza::{DirectionKeys, EncryptOptions, Params, Session};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let params = Params {
        profile: Profile::Xep,
        hash: HashAlg::Sha256,
        cipher: CryptAlg::Aes128Ctr,
        compress: Compress::None,
        stanzas: vec![StanzaType::Message],
        rekey_freq: 1,
        group: ModpGroup::G14,
        max_blocks: esession_stanza::DEFAULT_MAX_BLOCKS,
    };
    let keys = |k: u8, c: u128| DirectionKeys {
        cipher_key: SecretBytes::new(vec![k; 16]),
        mac_key: SecretBytes::new(vec![k + 1; 32]),
        counter: c,
    };
    let (x, y) =
        (DhKeyPair::generate(ModpGroup::G14, &mut rng)?, DhKeyPair::generate(ModpGroup::G14, &mut rng)?);
    let (e, d) = (x.public().to_vec(), y.public().to_vec());
    let mut alice = Session::new(params.clone(), keys(1, 7), keys(3, 7 ^ 1 << 127), x, d)?;
    let mut bob = Session::new(params, keys(3, 7 ^ 1 << 127), keys(1, 7), y, e)?;

    let msg = esession_forms::xml::parse(
        "<message xmlns='jabber:client' type='chat'><thread>t1</thread><body>Hi Bob</body></message>",
    )?;
    let wire = alice.encrypt(&msg, EncryptOptions::default(), &mut rng)?;
    println!("on the wire: {}", String::from(&wire));
    let (clear, _) = bob.decrypt(&wire)?;
    println!("Bob reads:   {}", String::from(&clear));
    match bob.decrypt(&wire) {
        Ok(_) => return Err("a replay was accepted".into()),
        Err(e) => println!("replayed:    refused ({e}); Bob's session closed: {}", bob.is_closed()),
    }
    Ok(())
}
