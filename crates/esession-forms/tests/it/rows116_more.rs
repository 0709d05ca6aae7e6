//! XEP-0116 §4.5 rows: Bob's choices follow Alice's offer, field by field.

use esession_crypto::{CryptAlg, HashAlg, ModpGroup, SasAlg, SignAlg};
use esession_forms::esession::{DhOffer, Offers, Request};
use esession_forms::names::{Compress, Disclosure, Logging, PubkeyMethod, Security, StanzaType, Version};
use esession_forms::negotiation::{Support, choose};

/// A 4-message request whose every list puts first what Bob's defaults do not prefer, and
/// holds options Bob does not implement or accept.
fn request() -> Request {
    Request {
        accept: true,
        offers: Offers {
            logging: vec![Logging::MustNot, Logging::May],
            disclosure: vec![Disclosure::Never],
            security: vec![Security::C2s, Security::E2e],
            modp: vec![ModpGroup::G2, ModpGroup::G14, ModpGroup::G18],
            crypt_algs: vec![
                CryptAlg::Unknown("blowfish-ctr".into()),
                CryptAlg::Aes128Ctr,
                CryptAlg::Aes256Ctr,
            ],
            hash_algs: vec![HashAlg::Md5, HashAlg::Whirlpool, HashAlg::Sha256],
            sign_algs: vec![SignAlg::DsaSha256, SignAlg::RsaSha256],
            compress: vec![Compress::Lzw, Compress::None],
            stanzas: vec![StanzaType::Iq, StanzaType::Unknown("x".into()), StanzaType::Message],
            ver: vec![Version::Unknown("1.3".into()), Version::V1_0],
            rekey_freq: 10,
        },
        init_pubkey: vec![PubkeyMethod::Hash, PubkeyMethod::Key, PubkeyMethod::None],
        resp_pubkey: vec![PubkeyMethod::Unknown("x509".into()), PubkeyMethod::Hash, PubkeyMethod::Key],
        my_nonce: vec![1; 32],
        sas_algs: vec![SasAlg::Unknown("sas99".into()), SasAlg::Sas28x5],
        // He2, He14, He18: distinct, so the one chosen names its group.
        dh: DhOffer::Hashes(vec![vec![2; 32], vec![14; 32], vec![18; 32]]),
        other: Vec::new(),
    }
}

/// X116-4.5.1-01 X116-4.5.4-02 X116-4.5.2-02: Bob selects exactly one option of each ESession
/// field, Alice's first one he supports (never his own preference: his default lists put sha256,
/// aes256-ctr and group 18 first), the group with its position so that the He taken is the one
/// of that group; resp_pubkey is one of Alice's values he can provide; init_pubkey is the first
/// of Alice's methods Bob accepts (with `key` alone accepted, `key`), and the response sets it.
#[test]
fn bob_selects_one_offered_option_per_field() {
    let req = request();
    let bob = Support { own_keys: vec![SignAlg::RsaSha256, SignAlg::DsaSha256], ..Support::default() };
    let c = choose(&req, &bob).unwrap();
    assert_eq!(c.logging, Logging::MustNot);
    assert_eq!(c.disclosure, Disclosure::Never);
    assert_eq!(c.security, Security::E2e);
    assert_eq!(c.modp, (ModpGroup::G14, 1), "group 2 is not accepted by default; 14 before 18");
    assert_eq!(req.dh.values()[c.modp.1], vec![14; 32], "Alice's He of the chosen group");
    assert_eq!(c.crypt_alg, CryptAlg::Aes128Ctr);
    assert_eq!(c.hash_alg, HashAlg::Whirlpool);
    assert_eq!(c.sign_alg, Some(SignAlg::DsaSha256));
    assert_eq!(c.compress, Compress::None);
    assert_eq!(c.stanzas, vec![StanzaType::Iq, StanzaType::Message]);
    assert_eq!(c.ver, Version::V1_0);
    assert_eq!(c.sas_alg, Some(SasAlg::Sas28x5));
    assert_eq!(c.resp_pubkey, PubkeyMethod::Hash);
    assert_eq!(c.init_pubkey, PubkeyMethod::Hash);
    assert_eq!(c.rekey_freq, 10);
    let r = c.response(vec![3; 32], vec![4; 8], req.my_nonce.clone(), 5);
    assert_eq!((r.init_pubkey, r.resp_pubkey), (Some(PubkeyMethod::Hash), Some(PubkeyMethod::Hash)));
    // Bob requires a key from Alice: init_pubkey key, though she prefers hash.
    let strict = Support { init_pubkey: vec![PubkeyMethod::Key], ..bob.clone() };
    let c = choose(&req, &strict).unwrap();
    assert_eq!(c.init_pubkey, PubkeyMethod::Key);
    assert_eq!(c.response(vec![3; 32], vec![4; 8], vec![1; 32], 5).init_pubkey, Some(PubkeyMethod::Key));
    // Bob without a key for Alice's first method's algorithm: still one of her methods.
    let rsa_only = Support { own_keys: vec![SignAlg::RsaSha256], ..bob };
    let c = choose(&req, &rsa_only).unwrap();
    assert_eq!((c.resp_pubkey, c.sign_alg), (PubkeyMethod::Hash, Some(SignAlg::RsaSha256)));
}
