//! Short authentication strings (`sas_algs`, XEP-0116 §9).

use crate::Profile;
use crate::error::{Error, Result};
use crate::hash::HashAlg;
use core::fmt;
use core::str::FromStr;

/// The 28 digits of sas28x5, values 0..=27.
pub const SAS28_ALPHABET: &[u8; 28] = b"acdefghikmopqruvwxy123456789";

/// A `sas_algs` option.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SasAlg {
    /// sas28x5 (MUST).
    Sas28x5,
    /// Any other name.
    Unknown(String),
}

impl SasAlg {
    /// The wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            SasAlg::Sas28x5 => "sas28x5",
            SasAlg::Unknown(s) => s,
        }
    }
}

impl FromStr for SasAlg {
    type Err = core::convert::Infallible;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        Ok(match s {
            "sas28x5" => SasAlg::Sas28x5,
            other => SasAlg::Unknown(other.to_owned()),
        })
    }
}

impl fmt::Display for SasAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A short authentication string to compare out of band. Not secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sas(String);

impl Sas {
    /// The string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// sas28x5: the last 24 bits of HASH(M_A | form_B | "Short Authentication String") as 5 base-28
/// digits, most significant first (A19). `Profile::Gajim` drops leading zero digits (`a`), as the
/// deployed implementation does; a zero value is the single digit `a`.
///
/// # Errors
/// [`Error::Unsupported`] for unknown hashes.
pub fn sas28x5(profile: Profile, hash: &HashAlg, ma: &[u8], form_b: &[u8]) -> Result<Sas> {
    // X116-8.5-01: sas28x5 (§9): HASH(M_A | form_B | "Short Authentication String"), its last 24
    // bits as 5 base-28 digits (`Profile::Gajim` drops the leading zero digits, below).
    let h = hash.digest(&[ma, form_b, b"Short Authentication String"])?;
    let [.., a, b, c] = h[..] else {
        return Err(Error::Unsupported("hash algorithm"));
    };
    let mut v = u32::from_be_bytes([0, a, b, c]);
    let mut digits = [0u8; 5];
    for d in digits.iter_mut().rev() {
        *d = SAS28_ALPHABET[(v % 28) as usize];
        v /= 28;
    }
    let text: String = digits.iter().map(|&d| char::from(d)).collect();
    let text = match profile {
        Profile::Xep => text,
        Profile::Gajim => {
            let t = text.trim_start_matches('a');
            if t.is_empty() { "a".to_owned() } else { t.to_owned() }
        }
    };
    Ok(Sas(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_most_significant_first() {
        // Find inputs whose 24-bit value we can check independently.
        let h = HashAlg::Sha256;
        let s = sas28x5(Profile::Xep, &h, b"ma", b"form").unwrap();
        let d = h.digest(&[b"ma", b"form", b"Short Authentication String"]).unwrap();
        let v = u32::from_be_bytes([0, d[29], d[30], d[31]]);
        let decoded = s.as_str().bytes().fold(0u32, |acc, ch| {
            let pos = SAS28_ALPHABET.iter().position(|&a| a == ch).unwrap() as u32;
            acc * 28 + pos
        });
        assert_eq!(decoded, v);
        assert_eq!(s.as_str().len(), 5);
    }

    #[test]
    fn gajim_drops_leading_zero_digits() {
        // Search a few inputs for one whose top digit is 'a' (value < 28^4).
        let h = HashAlg::Sha256;
        let found = (0u32..2000).find_map(|i| {
            let ma = i.to_be_bytes();
            let x = sas28x5(Profile::Xep, &h, &ma, b"f").unwrap();
            x.as_str().starts_with('a').then_some((ma, x))
        });
        let (ma, x) = found.unwrap();
        let g = sas28x5(Profile::Gajim, &h, &ma, b"f").unwrap();
        assert_eq!(g.as_str(), x.as_str().trim_start_matches('a'));
        assert!(g.as_str().len() < 5);
    }
}
