//! Secret byte strings: zeroized on drop, never `Clone`, `Copy` or `PartialEq`, redacted `Debug`,
//! compared in constant time.

use core::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret octet string (a key, K, a retained secret, a nonce-keyed HMAC input...).
///
/// It is wiped from memory when dropped. `Debug` prints only its length. The octets are reachable
/// only through [`SecretBytes::expose_secret`], whose name makes every use visible in review.
pub struct SecretBytes(Box<[u8]>);

impl SecretBytes {
    /// Takes ownership of `bytes` (the caller's copy is moved, not duplicated).
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes.into_boxed_slice())
    }

    /// Copies `bytes` into a new secret. The caller remains responsible for its own copy.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec().into_boxed_slice())
    }

    /// The secret octets. Use only to feed them into a primitive.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in octets (not secret).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An explicit copy. Deliberately not `Clone`: every duplication of a secret is a decision.
    #[must_use]
    pub fn duplicate(&self) -> Self {
        Self::from_slice(&self.0)
    }

    /// Constant-time equality with another octet string.
    #[must_use]
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(&self.0, other)
    }
}

impl Drop for SecretBytes {
    // X200-11.5-01 X200-9.2-02: every key, K and retained secret is wiped when dropped.
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SecretBytes {}

impl fmt::Debug for SecretBytes {
    // X200-11.5-01: a secret never reaches a log through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} octets redacted>)", self.0.len())
    }
}

/// Constant-time comparison of two octet strings. The lengths are compared first (they are public:
/// every MAC in this protocol has the fixed length of its hash).
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::from_slice(b"top secret key material");
        let shown = format!("{s:?}");
        assert_eq!(shown, "SecretBytes(<23 octets redacted>)");
        assert!(!shown.contains("secret key"));
    }

    #[test]
    fn ct_eq_checks_length_and_content() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        let s = SecretBytes::from_slice(b"xyz");
        assert!(s.ct_eq(b"xyz"));
        assert!(!s.ct_eq(b"xy"));
    }
}
