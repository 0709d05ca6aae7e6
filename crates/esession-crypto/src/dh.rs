//! Diffie-Hellman over the MODP groups, in constant time (crypto-bigint Montgomery arithmetic).
//!
//! Private exponents are kept at their own precision (a few hundred bits) and exponentiation is
//! bounded by that public length: widening them to the precision of p costs 8-30x for nothing.

use crate::error::{Error, Result};
use crate::hash::HashAlg;
use crate::modp::ModpGroup;
use crate::secret::SecretBytes;
use core::fmt;
use crypto_bigint::BoxedUint;
use crypto_bigint::modular::BoxedMontyForm;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The block size n (bits) of every cipher XEP-0116 defines, including `none` (I7). Private
/// exponents must satisfy 2^(2n-1) < x < p - 1 (XEP-0116 §4.3 step 4, §4.5.1 step 4).
pub const BLOCK_BITS: u32 = 128;

/// A private exponent x (or y). Zeroized on drop; `Debug` shows only the group.
pub struct DhSecret {
    group: ModpGroup,
    x: BoxedUint,
    bits: u32,
}

impl Drop for DhSecret {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl ZeroizeOnDrop for DhSecret {}

impl fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhSecret(modp {}, <redacted>)", self.group)
    }
}

/// A Diffie-Hellman key pair: the private exponent and the public value g^x mod p.
pub struct DhKeyPair {
    secret: DhSecret,
    public: Vec<u8>,
}

impl fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhKeyPair(modp {}, public {} octets)", self.secret.group, self.public.len())
    }
}

impl DhKeyPair {
    /// Generates a fresh key pair with the exponent length of [`ModpGroup::exponent_bits`].
    ///
    /// # Errors
    /// [`Error::Unsupported`] for groups this crate does not implement.
    // X200-11.3-01: every x is drawn afresh from the caller's CSPRNG (generate_with_bits), so
    // no two key pairs share x, e or d (a negotiation's own and every re-key's).
    pub fn generate<R: CryptoRng + ?Sized>(group: ModpGroup, rng: &mut R) -> Result<Self> {
        let bits = group.exponent_bits().ok_or(Error::Unsupported("MODP group"))?;
        Self::generate_with_bits(group, bits, rng)
    }

    /// Generates a key pair with an exponent of exactly `bits` bits (top bit set).
    ///
    /// # Errors
    /// [`Error::InvalidLength`] if `bits` is below 2n = 256, not a multiple of 8, or not shorter
    /// than p; [`Error::Unsupported`] for unknown groups.
    pub fn generate_with_bits<R: CryptoRng + ?Sized>(
        group: ModpGroup,
        bits: u32,
        rng: &mut R,
    ) -> Result<Self> {
        let params = group.params()?;
        if bits < 2 * BLOCK_BITS || !bits.is_multiple_of(8) || bits >= params.bits() {
            return Err(Error::InvalidLength { what: "DH exponent bits", got: bits as usize });
        }
        let mut buf = vec![0u8; (bits / 8) as usize];
        loop {
            // X200-11.3-01: the exponent's every bit below the top one comes from the generator.
            rng.fill_bytes(&mut buf);
            buf[0] |= 0x80;
            // x = 2^(bits-1) exactly would violate the strict bound when bits = 2n: redraw.
            let is_min = buf[0] == 0x80 && buf[1..].iter().all(|&b| b == 0);
            if !is_min {
                break;
            }
        }
        let result = Self::from_exponent(group, &buf);
        buf.zeroize();
        result
    }

    /// Rebuilds a key pair from a stored or recorded exponent (big-endian octets).
    ///
    /// # Errors
    /// [`Error::Crypto`] unless 2^(2n-1) < x < p - 1; [`Error::Unsupported`] for unknown groups.
    pub fn from_exponent(group: ModpGroup, x_bytes: &[u8]) -> Result<Self> {
        let params = group.params()?;
        let t = crate::mpi::trim(x_bytes);
        let bits = (t.len() as u32 * 8).div_ceil(64) * 64;
        if bits == 0 || bits > params.bits() {
            return Err(Error::Crypto);
        }
        let x = BoxedUint::from_be_slice(t, bits).map_err(|_| Error::Crypto)?;
        // Range check 2^(2n-1) < x < p - 1. The exponent is secret, but whether it is in range is
        // not; the comparisons below only depend on its length class and are done once.
        let min = BoxedUint::one_with_precision(bits).shl_vartime(2 * BLOCK_BITS - 1);
        let too_small = match min {
            Some(min) => x.cmp_vartime(&min).is_le(),
            None => true,
        };
        let wide = crypto_bigint::Resize::resize(&x, params.bits());
        let too_big = wide.cmp_vartime(params.p_minus_1()).is_ge();
        if too_small || too_big {
            return Err(Error::Crypto);
        }
        let secret = DhSecret { group, x, bits };
        // g^x: the precomputed comb when the exponent's (public) precision fits its table.
        let comb = params.comb();
        let gx = if bits <= comb.max_bits() {
            comb.pow(params, &secret.x)
        } else {
            params.generator().pow_bounded_exp(&secret.x, secret.bits)
        };
        let public = to_mpi(gx);
        Ok(Self { secret, public })
    }

    /// The group.
    #[must_use]
    pub fn group(&self) -> ModpGroup {
        self.secret.group
    }

    /// The public value g^x mod p as §6.1 minimal octets (e or d on the wire).
    #[must_use]
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The private exponent, for sealing it at rest (XEP-0187 offline options).
    #[must_use]
    pub fn export_secret(&self) -> SecretBytes {
        let bytes = self.secret.x.to_be_bytes();
        SecretBytes::from_slice(crate::mpi::trim(&bytes))
    }

    /// Computes Z = peer^x mod p after checking 1 < peer < p - 1, consuming the key pair: an
    /// online ESession uses each exponent once (XEP-0116 §7.2).
    ///
    /// # Errors
    /// [`Error::Crypto`] if the peer's value is out of range.
    pub fn agree(self, peer: &[u8]) -> Result<SharedSecret> {
        self.agree_reusable(peer)
    }

    /// Computes Z = peer^x mod p without consuming the key pair. For the two places where the
    /// specs reuse an exponent: Alice's published XEP-0187 options (one x for every offline
    /// session started from them) and XEP-0200 re-key sets kept until the peer confirms.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the peer's value is out of range.
    pub fn agree_reusable(&self, peer: &[u8]) -> Result<SharedSecret> {
        let params = self.secret.group.params()?;
        // X116-8-01: Diffie-Hellman, Z = peer^x mod p, after the range check.
        let y = params.check_public(peer)?;
        let base = BoxedMontyForm::new(y, params.monty());
        let z = crate::monty::pow(&base, &self.secret.x, self.secret.bits, params.n0());
        Ok(SharedSecret(SecretBytes::new(to_mpi(z))))
    }
}

/// Leaves Montgomery form and returns §6.1 minimal octets, zeroizing the intermediates.
fn to_mpi(mut m: BoxedMontyForm) -> Vec<u8> {
    let mut r = m.retrieve();
    m.zeroize();
    // X116-6.1-02: big-endian at the precision of p, so the value is padded with leading zero
    // bits to whole octets (the leading zero octets are removed below).
    let mut bytes = r.to_be_bytes();
    r.zeroize();
    // X116-6.1-01 X116-6.1-03: e, d and Z go out big-endian without leading zero octets.
    let out = crate::mpi::trim(&bytes).to_vec();
    bytes.zeroize();
    out
}

/// The Diffie-Hellman shared value Z = g^xy mod p, as §6.1 minimal octets. Secret.
pub struct SharedSecret(SecretBytes);

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

impl SharedSecret {
    /// Z as minimal octets (only for known-answer checks and the XEP-0200 re-key, where K is Z
    /// itself, A18).
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// K = HASH(Z) (XEP-0116 §4.5.1 step 6).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for unknown hashes.
    pub fn session_key(&self, hash: &HashAlg) -> Result<SecretBytes> {
        hash.digest(&[self.0.expose_secret()]).map(SecretBytes::new)
    }

    /// The XEP-0200 §9.2 re-key secret: K = d^x mod p, not hashed (A18).
    #[must_use]
    pub fn into_rekey_secret(self) -> SecretBytes {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl rand_core::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
            Ok(u32::from(self.next()))
        }
        fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
            Ok(u64::from(self.next()))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
            for b in dst {
                *b = self.next();
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}
    impl Counter {
        fn next(&mut self) -> u8 {
            self.0 = self.0.wrapping_mul(37).wrapping_add(11);
            self.0
        }
    }

    #[test]
    fn agreement_is_symmetric() {
        let mut rng = Counter(1);
        let a = DhKeyPair::generate(ModpGroup::G1, &mut rng).unwrap();
        let b = DhKeyPair::generate(ModpGroup::G1, &mut rng).unwrap();
        let (ea, eb) = (a.public().to_vec(), b.public().to_vec());
        let za = a.agree(&eb).unwrap();
        let zb = b.agree(&ea).unwrap();
        assert_eq!(za.expose_secret(), zb.expose_secret());
    }

    #[test]
    fn exponent_bounds() {
        let g = ModpGroup::G1;
        let mut min = vec![0u8; 32];
        min[0] = 0x80;
        assert!(DhKeyPair::from_exponent(g, &min).is_err(), "x = 2^255 is not > 2^(2n-1)");
        min[31] = 1;
        assert!(DhKeyPair::from_exponent(g, &min).is_ok(), "x = 2^255 + 1");
        assert!(DhKeyPair::from_exponent(g, &[0x7f; 32]).is_err(), "x < 2^255");
        let p = g.params().unwrap().p_bytes();
        assert!(DhKeyPair::from_exponent(g, &p).is_err(), "x = p");
        let mut pm1 = p.clone();
        *pm1.last_mut().unwrap() -= 1;
        assert!(DhKeyPair::from_exponent(g, &pm1).is_err(), "x = p - 1");
        *pm1.last_mut().unwrap() -= 1;
        assert!(DhKeyPair::from_exponent(g, &pm1).is_ok(), "x = p - 2");
        let mut rng = Counter(3);
        assert!(DhKeyPair::generate_with_bits(g, 248, &mut rng).is_err());
        assert!(DhKeyPair::generate_with_bits(g, 768, &mut rng).is_err());
        assert!(DhKeyPair::generate(ModpGroup::Ec2n3, &mut rng).is_err());
    }

    #[test]
    fn agreement_rejects_out_of_range_peer_values() {
        let mut rng = Counter(5);
        let a = DhKeyPair::generate(ModpGroup::G2, &mut rng).unwrap();
        for bad in [&[0u8][..], &[1], &[]] {
            assert_eq!(a.agree_reusable(bad).map(|_| ()), Err(Error::Crypto));
        }
        let p = ModpGroup::G2.params().unwrap().p_bytes();
        assert_eq!(a.agree_reusable(&p).map(|_| ()), Err(Error::Crypto));
    }

    #[test]
    fn debug_hides_the_exponent() {
        let mut rng = Counter(9);
        let a = DhKeyPair::generate(ModpGroup::G1, &mut rng).unwrap();
        let x = a.export_secret();
        let shown = format!("{a:?} {:?} {a:#?}", a.secret).to_lowercase();
        let x_hex = hex_of(x.expose_secret());
        // No run of 8 octets of x, in hex of either case or as decimal octets.
        for w in x_hex.as_bytes().chunks(16) {
            assert!(!shown.contains(core::str::from_utf8(w).unwrap()), "{shown}");
        }
        let decimal = format!("{:?}", &x.expose_secret()[..4]);
        assert!(!shown.contains(&decimal[1..decimal.len() - 1]), "{shown}");
        assert!(shown.contains("redacted"));
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
