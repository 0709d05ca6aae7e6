//! Which algorithms this build supports, in preference order (the "provider" of STYLE.md).

use crate::cipher::CryptAlg;
use crate::hash::HashAlg;
use crate::modp::ModpGroup;
use crate::sas::SasAlg;
use crate::sign::SignAlg;

/// The algorithm lists a party offers or accepts, each in preference order.
///
/// [`CryptoProvider::default`] is everything this build implements, strongest first. Callers
/// narrow it (for example to the groups a slow device can afford) but cannot add to it: each
/// list is filtered through the `is_supported` of its type by [`CryptoProvider::sanitized`].
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
        Self {
            modp: ModpGroup::SUPPORTED.to_vec(),
            crypt_algs: CryptAlg::SUPPORTED.to_vec(),
            hash_algs: HashAlg::SUPPORTED.to_vec(),
            sign_algs: SignAlg::SUPPORTED.to_vec(),
            sas_algs: vec![SasAlg::Sas28x5],
        }
    }
}

impl CryptoProvider {
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
        let d = CryptoProvider::default();
        assert_eq!(d.sanitized(), d);
        assert!(!d.modp.contains(&ModpGroup::Ec2n4));
    }
}
