//! Sealing secrets at rest (the stores' retained secrets, offline DH exponents, identity keys).
//!
//! AES-256-GCM with a random 96-bit nonce, under a key the caller supplies or derives from a
//! passphrase with Argon2id. A sealed blob is `version (1) | nonce (12) | ciphertext | tag (16)`;
//! the caller's associated data (for example the record's key in the store) binds the blob to
//! where it is stored.

use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use core::fmt;
use rand_core::CryptoRng;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Argon2id cost parameters for [`SealingKey::from_passphrase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassphraseParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PassphraseParams {
    /// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

/// A 256-bit sealing key. Zeroized on drop.
pub struct SealingKey(SecretBytes);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    /// A key given directly (32 octets).
    ///
    /// # Errors
    /// [`Error::InvalidLength`] for other lengths.
    pub fn from_bytes(key: SecretBytes) -> Result<Self> {
        if key.len() != 32 {
            return Err(Error::InvalidLength { what: "sealing key", got: key.len() });
        }
        Ok(Self(key))
    }

    /// An explicit copy, for several stores sealing under the same key (deliberately not
    /// `Clone`: every duplication of a secret is a decision).
    #[must_use]
    pub fn duplicate(&self) -> Self {
        Self(self.0.duplicate())
    }

    /// A fresh random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = vec![0u8; 32];
        rng.fill_bytes(&mut k);
        Self(SecretBytes::new(k))
    }

    /// Derives a key from a passphrase with Argon2id. `salt` must be at least 8 octets and is
    /// stored beside the sealed data.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] for a short salt or invalid cost parameters.
    pub fn from_passphrase(passphrase: &[u8], salt: &[u8], params: PassphraseParams) -> Result<Self> {
        let p = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
            .map_err(|_| Error::InvalidLength { what: "argon2 parameters", got: 0 })?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
        let mut out = vec![0u8; 32];
        a.hash_password_into(passphrase, salt, &mut out)
            .map_err(|_| Error::InvalidLength { what: "argon2 salt", got: salt.len() })?;
        Ok(Self(SecretBytes::new(out)))
    }

    fn aead(&self) -> Result<Aes256Gcm> {
        Aes256Gcm::new_from_slice(self.0.expose_secret())
            .map_err(|_| Error::InvalidLength { what: "sealing key", got: self.0.len() })
    }

    /// Seals `plaintext`, bound to `aad`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the AEAD fails (it does not for sane lengths).
    pub fn seal<R: CryptoRng + ?Sized>(&self, rng: &mut R, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let ct = self
            .aead()?
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad })
            .map_err(|_| Error::Crypto)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a sealed blob.
    ///
    /// # Errors
    /// [`Error::Encoding`] for an unknown version or a truncated blob, [`Error::Crypto`] if the
    /// key, the associated data or the blob is wrong.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        let [version, rest @ ..] = sealed else {
            return Err(Error::Encoding("sealed blob"));
        };
        if *version != VERSION {
            return Err(Error::Encoding("sealed blob version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::Encoding("sealed blob"));
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::Encoding("sealed blob"))?;
        self.aead()?
            .decrypt(&nonce.into(), Payload { msg: ct, aad })
            .map(SecretBytes::new)
            .map_err(|_| Error::Crypto)
    }
}
