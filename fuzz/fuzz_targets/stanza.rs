//! `<c/>` parsing and decryption of arbitrary input with fixed keys: the first byte selects the
//! profile and whether the input is a whole stanza; nothing may panic, and nothing but a
//! verified stanza may come out (with fixed keys, a forged MAC is the fuzzer's only way in).
#![no_main]

use esession_crypto::{CryptAlg, DhKeyPair, HashAlg, ModpGroup, Profile, SecretBytes};
use esession_forms::names::{Compress, StanzaType};
use esession_stanza::{DirectionKeys, Encrypted, Params, Session};
use libfuzzer_sys::fuzz_target;

fn session(profile: Profile, compress: Compress) -> Option<Session> {
    let params = Params {
        profile,
        hash: HashAlg::Sha256,
        cipher: CryptAlg::Aes128Ctr,
        compress,
        stanzas: vec![StanzaType::Message, StanzaType::Iq, StanzaType::Presence],
        rekey_freq: 1,
        group: ModpGroup::G1,
        max_blocks: esession_stanza::DEFAULT_MAX_BLOCKS,
    };
    let mut x = vec![0x9au8; 32];
    x[0] = 0xc1;
    let own = DhKeyPair::from_exponent(ModpGroup::G1, &x).ok()?;
    let peer = own.public().to_vec();
    let key = if profile == Profile::Gajim { 32 } else { 16 };
    let dir = |k: u8| DirectionKeys { cipher_key: SecretBytes::new(vec![k; key]), mac_key: SecretBytes::new(vec![k; 32]), counter: 7 };
    Session::new(params, dir(1), dir(2), own, peer).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let profile = if mode & 1 == 0 { Profile::Xep } else { Profile::Gajim };
    let compress = if mode & 4 == 0 { Compress::None } else { Compress::Zlib };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Ok(e) = esession_forms::xml::parse(text) else { return };
    let _ = esession_stanza::content::find_c(&e);
    if let Ok(c) = Encrypted::parse(profile, &e) {
        let back = Encrypted::parse(profile, &c.to_element()).expect("our own <c/> parses");
        assert_eq!(back.data, c.data);
        if let Some(mut s) = session(profile, compress.clone()) {
            // A forged MAC never verifies: the keys are fixed and unknown to the input.
            assert!(s.open(&c).is_err());
        }
    }
    if let Some(mut s) = session(profile, compress) {
        let r = s.decrypt(&e);
        assert!(r.is_err(), "an unverified stanza was delivered");
    }
});
