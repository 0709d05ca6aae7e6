//! XEP-0116 §8 "MUST support" rows: the mandatory algorithms parse from their wire names, are
//! implemented, and are offered and accepted by the default providers of both profiles (a
//! party that drops one of them from its lists no longer supports it, whatever it implements).
//! Their known answers are in `kat.rs` and `gajim.rs`.

use esession_crypto::{CryptAlg, CryptoProvider, HashAlg, Profile, SasAlg};

/// X116-8.1-01 X116-8.4-01 X116-8.5-01: `aes128-ctr`, `sha256` and `sas28x5` are known by
/// name, implemented, and in the default lists of `Profile::Xep` and `Profile::Gajim`.
#[test]
fn mandatory_algorithms_are_offered_by_default() {
    let aes: CryptAlg = "aes128-ctr".parse().unwrap();
    let sha: HashAlg = "sha256".parse().unwrap();
    let sas: SasAlg = "sas28x5".parse().unwrap();
    assert_eq!((&aes, &sha, &sas), (&CryptAlg::Aes128Ctr, &HashAlg::Sha256, &SasAlg::Sas28x5));
    assert!(aes.is_supported() && sha.is_supported());
    assert_eq!(aes.key_len(), Some(16));
    assert_eq!(sha.output_len().unwrap(), 32);
    for profile in [Profile::Xep, Profile::Gajim] {
        let p = CryptoProvider::for_profile(profile);
        assert_eq!(p, p.sanitized(), "{profile:?}: the defaults are all implemented");
        assert!(p.crypt_algs.contains(&aes), "{profile:?}: aes128-ctr");
        assert!(p.hash_algs.contains(&sha), "{profile:?}: sha256");
        assert!(p.sas_algs.contains(&sas), "{profile:?}: sas28x5");
    }
    assert_eq!(CryptoProvider::default(), CryptoProvider::for_profile(Profile::Xep));
}
