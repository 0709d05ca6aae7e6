//! Which algorithms this build supports, in preference order (the "provider" of STYLE.md).

use crate::Profile;
use crate::cipher::CryptAlg;
use crate::hash::HashAlg;
use crate::kdf::key_fits;
use crate::modp::ModpGroup;
use crate::sas::SasAlg;
use crate::sign::SignAlg;

/// The algorithm lists a party offers or accepts, each in preference order.
///
/// [`CryptoProvider::default`] is the safe choice of `Profile::Xep`: every cipher but `none`
/// (no encryption at all) and every group of 2048 bits or more, strongest first.
/// [`CryptoProvider::for_profile`] adds what `Profile::Gajim` needs (group 5).
/// [`CryptoProvider::all`] is everything this build implements, weak choices included, for an
/// application that asks for them explicitly (and for test vectors). A 3-message negotiation
/// does not protect Alice's offer before she sends (XEP-0116 §4.6): whatever she offers, a
/// man in the middle can make her use, so nothing weak is offered by default.
///
/// Callers narrow a provider (for example to the groups a slow device can afford) but cannot
/// add to what the build implements: each list is filtered through the `is_supported` of its
/// type by [`CryptoProvider::sanitized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoProvider {
    /// MODP groups.
    pub modp: Vec<ModpGroup>,
    /// Ciphers.
    pub crypt_algs: Vec<CryptAlg>,
    /// Hashes.
    pub hash_algs: Vec<HashAlg>,
    /// Signature algorithms.
    pub sign_algs: Vec<SignAlg>,
    /// SAS algorithms.
    pub sas_algs: Vec<SasAlg>,
}

impl Default for CryptoProvider {
    fn default() -> Self {
        Self::for_profile(Profile::Xep)
    }
}

impl CryptoProvider {
    /// Everything this build implements, strongest first, including the cipher `none` and
    /// the groups under 2048 bits (1, 2, 5). Only for an application that asks for them.
    #[must_use]
    pub fn all() -> Self {
        Self {
            modp: ModpGroup::SUPPORTED.to_vec(),
            crypt_algs: CryptAlg::SUPPORTED.to_vec(),
            hash_algs: HashAlg::SUPPORTED.to_vec(),
            sign_algs: SignAlg::SUPPORTED.to_vec(),
            sas_algs: vec![SasAlg::Sas28x5],
        }
    }

    /// The safe default of a profile: never the cipher `none`; `Xep` no group under 2048
    /// bits; `Gajim` also group 5 (1536 bits), which deployed Gajim configurations offer, and
    /// only the hashes that can key a cipher in that dialect (SHA-256, not Whirlpool).
    #[must_use]
    pub fn for_profile(profile: Profile) -> Self {
        let min_bits = match profile {
            Profile::Xep => 2048,
            Profile::Gajim => 1536,
        };
        let all = Self::all();
        // X116-8.1-01 X116-8.4-01 X116-8.5-01: the mandatory aes128-ctr, sha256 and sas28x5
        // stay in every profile's defaults (only the cipher `none` and small groups are left out).
        // Gajim keys the cipher with the whole hash output: only hashes whose output is a key
        // length (SHA-256) can key one there (`kdf::key_fits`); Whirlpool would be chosen and
        // then fail.
        Self {
            modp: all.modp.into_iter().filter(|g| g.bits().is_some_and(|b| b >= min_bits)).collect(),
            crypt_algs: all.crypt_algs.into_iter().filter(|c| *c != CryptAlg::None).collect(),
            ..all
        }
        .fitting(profile)
    }

    /// The same lists without the hashes that key none of the (real) ciphers offered in
    /// `profile` ([`key_fits`]: Whirlpool in `Profile::Gajim`); with no cipher but `none`, the
    /// hashes are kept (nothing is keyed). What is offered is then what can be chosen.
    #[must_use]
    pub fn fitting(mut self, profile: Profile) -> Self {
        let real: Vec<&CryptAlg> = self.crypt_algs.iter().filter(|c| **c != CryptAlg::None).collect();
        if !real.is_empty() {
            self.hash_algs.retain(|h| real.iter().any(|c| key_fits(profile, c, h)));
        }
        self
    }

    /// The same lists with everything this build cannot do removed (groups 3/4, sha1, md5,
    /// unknown names) and duplicates dropped, order kept.
    #[must_use]
    pub fn sanitized(&self) -> Self {
        fn keep<T: PartialEq + Clone>(v: &[T], ok: impl Fn(&T) -> bool) -> Vec<T> {
            let mut out: Vec<T> = Vec::new();
            for x in v {
                if ok(x) && !out.contains(x) {
                    out.push(x.clone());
                }
            }
            out
        }
        Self {
            modp: keep(&self.modp, |g| g.is_supported()),
            crypt_algs: keep(&self.crypt_algs, CryptAlg::is_supported),
            hash_algs: keep(&self.hash_algs, HashAlg::is_supported),
            sign_algs: keep(&self.sign_algs, SignAlg::is_supported),
            sas_algs: keep(&self.sas_algs, |s| *s == SasAlg::Sas28x5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_drops_unsupported_and_duplicates() {
        let p = CryptoProvider {
            modp: vec![ModpGroup::Ec2n3, ModpGroup::G14, ModpGroup::G14, ModpGroup::Unknown(7)],
            crypt_algs: vec![CryptAlg::Unknown("x".into()), CryptAlg::Aes128Ctr],
            hash_algs: vec![HashAlg::Md5, HashAlg::Sha1, HashAlg::Whirlpool],
            sign_algs: vec![SignAlg::DsaSha256],
            sas_algs: vec![SasAlg::Unknown("y".into())],
        }
        .sanitized();
        assert_eq!(p.modp, vec![ModpGroup::G14]);
        assert_eq!(p.crypt_algs, vec![CryptAlg::Aes128Ctr]);
        assert_eq!(p.hash_algs, vec![HashAlg::Whirlpool]);
        assert!(p.sas_algs.is_empty());
        let d = CryptoProvider::all();
        assert_eq!(d.sanitized(), d);
        assert!(!d.modp.contains(&ModpGroup::Ec2n4));
    }

    /// Issue 16.3: nothing weak is offered or accepted unless asked for.
    #[test]
    fn defaults_are_safe() {
        let x = CryptoProvider::default();
        assert_eq!(x, CryptoProvider::for_profile(Profile::Xep));
        assert_eq!(x.modp, [ModpGroup::G18, ModpGroup::G17, ModpGroup::G16, ModpGroup::G15, ModpGroup::G14]);
        assert!(!x.crypt_algs.contains(&CryptAlg::None));
        assert_eq!(x.crypt_algs.len(), CryptAlg::SUPPORTED.len() - 1);
        let g = CryptoProvider::for_profile(Profile::Gajim);
        assert_eq!(g.modp.last(), Some(&ModpGroup::G5));
        assert!(!g.modp.contains(&ModpGroup::G1) && !g.modp.contains(&ModpGroup::G2));
        assert!(!g.crypt_algs.contains(&CryptAlg::None));
        assert!(CryptoProvider::all().crypt_algs.contains(&CryptAlg::None));
    }
}
