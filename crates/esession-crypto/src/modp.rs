//! MODP Diffie-Hellman groups (`modp` wire names, XEP-0116 §4.3).

use crate::comb::Comb;
use crate::error::{Error, Result};
use crate::modp_primes::*;
use core::fmt;
use core::str::FromStr;
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use std::sync::OnceLock;

/// A `modp` option: an RFC 2409 / RFC 3526 group number.
///
/// Groups 3 and 4 of RFC 2409 are elliptic-curve groups over GF(2^155) and GF(2^185), not MODP
/// groups: they parse as [`ModpGroup::Ec2n3`]/[`ModpGroup::Ec2n4`] so a peer offering them is
/// understood, but they are never offered nor selected (spec/README.md A13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ModpGroup {
    /// RFC 2409 group 1, 768 bits.
    G1,
    /// RFC 2409 group 2, 1024 bits.
    G2,
    /// RFC 2409 group 3 (EC2N): known, unsupported.
    Ec2n3,
    /// RFC 2409 group 4 (EC2N): known, unsupported.
    Ec2n4,
    /// RFC 3526 group 5, 1536 bits.
    G5,
    /// RFC 3526 group 14, 2048 bits.
    G14,
    /// RFC 3526 group 15, 3072 bits.
    G15,
    /// RFC 3526 group 16, 4096 bits.
    G16,
    /// RFC 3526 group 17, 6144 bits.
    G17,
    /// RFC 3526 group 18, 8192 bits.
    G18,
    /// Any other number.
    Unknown(u32),
}

impl ModpGroup {
    /// The supported groups, strongest first (our default preference order).
    pub const SUPPORTED: [ModpGroup; 8] = [
        ModpGroup::G18,
        ModpGroup::G17,
        ModpGroup::G16,
        ModpGroup::G15,
        ModpGroup::G14,
        ModpGroup::G5,
        ModpGroup::G2,
        ModpGroup::G1,
    ];

    /// The group number as sent on the wire.
    #[must_use]
    pub fn number(self) -> u32 {
        match self {
            ModpGroup::G1 => 1,
            ModpGroup::G2 => 2,
            ModpGroup::Ec2n3 => 3,
            ModpGroup::Ec2n4 => 4,
            ModpGroup::G5 => 5,
            ModpGroup::G14 => 14,
            ModpGroup::G15 => 15,
            ModpGroup::G16 => 16,
            ModpGroup::G17 => 17,
            ModpGroup::G18 => 18,
            ModpGroup::Unknown(n) => n,
        }
    }

    /// Maps a group number to its variant.
    #[must_use]
    pub fn from_number(n: u32) -> Self {
        match n {
            1 => ModpGroup::G1,
            2 => ModpGroup::G2,
            3 => ModpGroup::Ec2n3,
            4 => ModpGroup::Ec2n4,
            5 => ModpGroup::G5,
            14 => ModpGroup::G14,
            15 => ModpGroup::G15,
            16 => ModpGroup::G16,
            17 => ModpGroup::G17,
            18 => ModpGroup::G18,
            other => ModpGroup::Unknown(other),
        }
    }

    /// Whether this crate implements the group (never 3, 4 or unknown numbers).
    #[must_use]
    pub fn is_supported(self) -> bool {
        self.hex().is_some()
    }

    /// Size of p in bits.
    #[must_use]
    pub fn bits(self) -> Option<u32> {
        Some(match self {
            ModpGroup::G1 => 768,
            ModpGroup::G2 => 1024,
            ModpGroup::G5 => 1536,
            ModpGroup::G14 => 2048,
            ModpGroup::G15 => 3072,
            ModpGroup::G16 => 4096,
            ModpGroup::G17 => 6144,
            ModpGroup::G18 => 8192,
            _ => return None,
        })
    }

    /// Length in bits of the private exponents generated for this group.
    ///
    /// Twice the upper strength estimate of RFC 3526 §8 (rounded up to 64 bits), and never below
    /// 256 = 2n for the 128-bit block ciphers of XEP-0116 §8.1, so that 2^(2n-1) < x holds:
    ///
    /// | group | 1, 2, 5 | 14 | 15 | 16 | 17 | 18 |
    /// |---|---|---|---|---|---|---|
    /// | exponent bits | 256 | 320 | 448 | 512 | 576 | 640 |
    #[must_use]
    pub fn exponent_bits(self) -> Option<u32> {
        Some(match self {
            ModpGroup::G1 | ModpGroup::G2 | ModpGroup::G5 => 256,
            ModpGroup::G14 => 320,
            ModpGroup::G15 => 448,
            ModpGroup::G16 => 512,
            ModpGroup::G17 => 576,
            ModpGroup::G18 => 640,
            _ => return None,
        })
    }

    fn hex(self) -> Option<&'static str> {
        Some(match self {
            ModpGroup::G1 => GROUP1_HEX,
            ModpGroup::G2 => GROUP2_HEX,
            ModpGroup::G5 => GROUP5_HEX,
            ModpGroup::G14 => GROUP14_HEX,
            ModpGroup::G15 => GROUP15_HEX,
            ModpGroup::G16 => GROUP16_HEX,
            ModpGroup::G17 => GROUP17_HEX,
            ModpGroup::G18 => GROUP18_HEX,
            _ => return None,
        })
    }

    /// The group's constants, built once per process and cached.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for groups 3, 4 and unknown numbers.
    pub fn params(self) -> Result<&'static GroupParams> {
        static CACHE: [OnceLock<Option<GroupParams>>; 8] = [const { OnceLock::new() }; 8];
        let slot = match self {
            ModpGroup::G1 => 0,
            ModpGroup::G2 => 1,
            ModpGroup::G5 => 2,
            ModpGroup::G14 => 3,
            ModpGroup::G15 => 4,
            ModpGroup::G16 => 5,
            ModpGroup::G17 => 6,
            ModpGroup::G18 => 7,
            _ => return Err(Error::Unsupported("MODP group")),
        };
        CACHE[slot].get_or_init(|| GroupParams::build(self)).as_ref().ok_or(Error::Unsupported("MODP group"))
    }
}

impl FromStr for ModpGroup {
    type Err = Error;
    /// Parses a decimal group number (no sign, no leading zeros, no spaces).
    fn from_str(s: &str) -> Result<Self> {
        let canonical = !s.is_empty()
            && s.len() <= 9
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if !canonical {
            return Err(Error::Encoding("MODP group number"));
        }
        s.parse::<u32>().map(ModpGroup::from_number).map_err(|_| Error::Encoding("MODP group number"))
    }
}

impl fmt::Display for ModpGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// The constants of one MODP group: p, g = 2 and the Montgomery parameters for p.
pub struct GroupParams {
    group: ModpGroup,
    p: BoxedUint,
    p_minus_1: BoxedUint,
    monty: BoxedMontyParams,
    generator: BoxedMontyForm,
    comb: OnceLock<Comb>,
    /// -p⁻¹ mod 2^W, for the Montgomery squaring kernel.
    n0: crypto_bigint::Word,
}

impl fmt::Debug for GroupParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupParams(modp {})", self.group)
    }
}

impl GroupParams {
    fn build(group: ModpGroup) -> Option<Self> {
        let hex = group.hex()?;
        let bits = group.bits()?;
        let bytes = decode_hex(hex)?;
        let p = BoxedUint::from_be_slice(&bytes, bits).ok()?;
        let odd = Odd::new(p.clone()).into_option()?;
        let monty = BoxedMontyParams::new_vartime(odd);
        let generator = BoxedMontyForm::new(BoxedUint::from_be_slice(&[2], bits).ok()?, &monty);
        let p_minus_1 = p.wrapping_sub(BoxedUint::one_with_precision(bits));
        let n0 = crate::monty::mod_neg_inv(&p);
        Some(Self { group, p, p_minus_1, monty, generator, comb: OnceLock::new(), n0 })
    }

    /// Which group this is.
    #[must_use]
    pub fn group(&self) -> ModpGroup {
        self.group
    }

    /// The prime p.
    #[must_use]
    pub fn p(&self) -> &BoxedUint {
        &self.p
    }

    /// p as big-endian octets (its full length).
    #[must_use]
    pub fn p_bytes(&self) -> Vec<u8> {
        self.p.to_be_bytes().into_vec()
    }

    /// The generator, 2.
    #[must_use]
    pub fn g(&self) -> u32 {
        2
    }

    /// Precision of p in bits.
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.p.bits_precision()
    }

    pub(crate) fn p_minus_1(&self) -> &BoxedUint {
        &self.p_minus_1
    }

    pub(crate) fn monty(&self) -> &BoxedMontyParams {
        &self.monty
    }

    pub(crate) fn generator(&self) -> &BoxedMontyForm {
        &self.generator
    }

    /// The fixed-base table for g^x, built on first use for the group's exponent length.
    pub(crate) fn n0(&self) -> crypto_bigint::Word {
        self.n0
    }

    pub(crate) fn comb(&self) -> &Comb {
        self.comb.get_or_init(|| Comb::build(self, self.group.exponent_bits().unwrap_or(256)))
    }

    /// Decodes a peer's public value (minimal big-endian octets) and checks 1 < y < p - 1
    /// (XEP-0116 §4.5.1, §4.6.1; XEP-0200 §9.3 with A18).
    ///
    /// # Errors
    /// [`Error::Crypto`] if the value is out of range (including longer than p).
    pub fn check_public(&self, bytes: &[u8]) -> Result<BoxedUint> {
        let t = crate::mpi::trim(bytes);
        if t.len() > self.bits().div_ceil(8) as usize {
            return Err(Error::Crypto);
        }
        let y = BoxedUint::from_be_slice(t, self.bits()).map_err(|_| Error::Crypto)?;
        let one = BoxedUint::one_with_precision(self.bits());
        // X200-9.3-01: 1 < e < p - 1 for a re-key's <key/> too (A18), as for every peer value.
        // The range check is on a public value: variable time is fine.
        let ok = y.cmp_vartime(&one).is_gt() && y.cmp_vartime(&self.p_minus_1).is_lt();
        if ok { Ok(y) } else { Err(Error::Crypto) }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for n in [1u32, 2, 3, 4, 5, 14, 15, 16, 17, 18, 6, 19, 100] {
            let g: ModpGroup = n.to_string().parse().unwrap();
            assert_eq!(g.number(), n);
            assert_eq!(g.to_string(), n.to_string());
        }
        assert_eq!("3".parse::<ModpGroup>().unwrap(), ModpGroup::Ec2n3);
        assert!(!ModpGroup::Ec2n3.is_supported());
        assert!(!ModpGroup::Ec2n4.is_supported());
        assert!(ModpGroup::Ec2n4.params().is_err());
        for bad in ["", "05", "+5", " 5", "5 ", "x", "99999999999"] {
            assert!(bad.parse::<ModpGroup>().is_err(), "{bad:?}");
        }
        assert!(!ModpGroup::SUPPORTED.contains(&ModpGroup::Ec2n3));
    }

    #[test]
    fn public_value_range() {
        let g = ModpGroup::G1.params().unwrap();
        let p = g.p_bytes();
        let mut pm1 = p.clone();
        *pm1.last_mut().unwrap() -= 1;
        let mut pm2 = p.clone();
        *pm2.last_mut().unwrap() -= 2;
        assert!(g.check_public(&[0]).is_err());
        assert!(g.check_public(&[1]).is_err());
        assert!(g.check_public(&[]).is_err());
        assert!(g.check_public(&pm1).is_err(), "p - 1");
        assert!(g.check_public(&p).is_err(), "p");
        let mut longer = vec![1];
        longer.extend_from_slice(&p);
        assert!(g.check_public(&longer).is_err(), "longer than p");
        assert!(g.check_public(&[2]).is_ok());
        assert!(g.check_public(&[0, 0, 2]).is_ok(), "leading zeros are tolerated");
        assert!(g.check_public(&pm2).is_ok(), "p - 2");
    }
}
