//! Multiple-precision integers as XEP-0116 §6.1 encodes them, and Base64 helpers.
//!
//! §6.1: an integer is written big-endian, padded to whole octets, and (unless it has a fixed bit
//! length, such as a hash) stripped of leading zero octets. Zero is written as one zero octet (I10).

use crate::error::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Strips leading zero octets from a big-endian integer (§6.1). Zero becomes `[0]`.
#[must_use]
pub fn trim(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0);
    match first {
        Some(i) => &bytes[i..],
        None if bytes.is_empty() => bytes,
        None => &bytes[bytes.len() - 1..],
    }
}

/// Minimal big-endian encoding of a `u128` counter (§6.1).
#[must_use]
pub fn encode_u128(value: u128) -> Vec<u8> {
    trim(&value.to_be_bytes()).to_vec()
}

/// Decodes a big-endian counter of at most 16 octets (leading zeros allowed).
///
/// # Errors
/// [`Error::InvalidLength`] if the value does not fit in 128 bits.
pub fn decode_u128(bytes: &[u8]) -> Result<u128> {
    let t = trim(bytes);
    if t.len() > 16 {
        return Err(Error::InvalidLength { what: "counter", got: bytes.len() });
    }
    let mut buf = [0u8; 16];
    buf[16 - t.len()..].copy_from_slice(t);
    Ok(u128::from_be_bytes(buf))
}

/// Standard Base64 (RFC 4648 §4, with padding), as every XEP-0116 field value uses.
#[must_use]
pub fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict standard Base64 decoding: padding required, no whitespace, no URL-safe alphabet,
/// non-canonical trailing bits rejected.
///
/// # Errors
/// [`Error::Encoding`] on any deviation.
pub fn b64_decode(text: &str) -> Result<Vec<u8>> {
    STANDARD.decode(text.as_bytes()).map_err(|_| Error::Encoding("base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_follows_section_6_1() {
        assert_eq!(trim(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(trim(&[0, 0]), &[0]);
        assert_eq!(trim(&[]), &[] as &[u8]);
        assert_eq!(trim(&[0x80]), &[0x80]);
    }

    #[test]
    fn u128_round_trip() {
        for v in [0u128, 1, 255, 256, 1 << 120, u128::MAX] {
            assert_eq!(decode_u128(&encode_u128(v)), Ok(v));
        }
        assert_eq!(encode_u128(0x0102), vec![1, 2]);
        assert_eq!(decode_u128(&[0; 20]), Ok(0));
        assert!(decode_u128(&[1; 17]).is_err());
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(b64_decode("AQID"), Ok(vec![1, 2, 3]));
        assert_eq!(b64_encode(&[1, 2, 3, 4]), "AQIDBA==");
        assert!(b64_decode("AQIDBA").is_err(), "missing padding");
        assert!(b64_decode("AQ ID").is_err(), "whitespace");
        assert!(b64_decode("-_8=").is_err(), "url-safe alphabet");
        assert!(b64_decode("AQIDBB==").is_err(), "non-canonical trailing bits");
    }
}
