//! Key derivation: the six session keys (XEP-0116 §4.5.3), the retained-secret formulas
//! (§4.7.3, §4.7.4, §4.8.1) and the re-key keys (XEP-0200 §9.2).

use crate::Profile;
use crate::cipher::CryptAlg;
use crate::error::{Error, Result};
use crate::hash::HashAlg;
use crate::secret::SecretBytes;
use core::fmt;

/// Which end of the negotiation: Alice (initiator) or Bob (responder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Alice, who sent the ESession request.
    Initiator,
    /// Bob, who answered it.
    Responder,
}

impl Role {
    /// The other role.
    #[must_use]
    pub fn peer(self) -> Role {
        match self {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        }
    }
}

/// The three keys of one direction: cipher (KC), integrity (KM) and SIGMA (KS).
///
/// KC is kept as the full HMAC output; [`cipher_key`] extracts the octets the block cipher uses.
pub struct DirectionKeys {
    /// KC: the full HMAC output.
    pub kc: SecretBytes,
    /// KM.
    pub km: SecretBytes,
    /// KS.
    pub ks: SecretBytes,
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirectionKeys(<redacted>)")
    }
}

/// Both directions' keys derived from one K.
#[derive(Debug)]
pub struct SessionKeys {
    /// Keys for stanzas Alice sends (KC_A, KM_A, KS_A).
    pub initiator: DirectionKeys,
    /// Keys for stanzas Bob sends (KC_B, KM_B, KS_B).
    pub responder: DirectionKeys,
}

impl SessionKeys {
    /// KC_A = HMAC(HASH, K, "Initiator Cipher Key") and the five others (XEP-0116 §4.5.3).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for unknown hashes.
    pub fn derive(hash: &HashAlg, k: &SecretBytes) -> Result<Self> {
        let k = k.expose_secret();
        // X116-4.5.3-01: two sets of three keys, each HMAC(HASH, K, label), one set per direction.
        let d = |label: &str| hash.hmac_secret(k, &[label.as_bytes()]);
        Ok(Self {
            initiator: DirectionKeys {
                kc: d("Initiator Cipher Key")?,
                km: d("Initiator MAC Key")?,
                ks: d("Initiator SIGMA Key")?,
            },
            responder: DirectionKeys {
                kc: d("Responder Cipher Key")?,
                km: d("Responder MAC Key")?,
                ks: d("Responder SIGMA Key")?,
            },
        })
    }

    /// The keys of `role`'s direction.
    #[must_use]
    pub fn of(&self, role: Role) -> &DirectionKeys {
        match role {
            Role::Initiator => &self.initiator,
            Role::Responder => &self.responder,
        }
    }
}

/// The keys a XEP-0200 re-key produces (§9.2): the initiator's and the acceptor's KC and KM.
#[derive(Debug)]
pub struct RekeyKeys {
    /// KC of the re-key initiator (full HMAC output).
    pub kc_initiator: SecretBytes,
    /// KM of the re-key initiator.
    pub km_initiator: SecretBytes,
    /// KC of the re-key acceptor (full HMAC output).
    pub kc_acceptor: SecretBytes,
    /// KM of the re-key acceptor.
    pub km_acceptor: SecretBytes,
}

impl RekeyKeys {
    /// KC_A = HMAC(HASH, K, "Rekey Initiator Crypt"), etc., where K = d^x mod p as §6.1 octets,
    /// not hashed (A18).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for unknown hashes.
    pub fn derive(hash: &HashAlg, k: &SecretBytes) -> Result<Self> {
        let k = k.expose_secret();
        let d = |label: &str| hash.hmac_secret(k, &[label.as_bytes()]);
        Ok(Self {
            kc_initiator: d("Rekey Initiator Crypt")?,
            kc_acceptor: d("Rekey Acceptor Crypt")?,
            km_initiator: d("Rekey Initiator MAC")?,
            km_acceptor: d("Rekey Acceptor MAC")?,
        })
    }
}

/// Whether `hash` can key `alg` in `profile` ([`cipher_key`] then succeeds and the cipher
/// accepts the key): in `Profile::Xep` the hash output is at least the key's length (XEP-0116
/// §4.5.3); in `Profile::Gajim` the whole output keys the cipher, so it must itself be a key
/// length the cipher takes (16, 24 or 32 octets: SHA-256 fits, Whirlpool's 64 octets key no
/// cipher). A pair that does not fit must not be negotiated: the negotiation would fail after
/// both sides had committed to it. `none` fits every hash.
#[must_use]
pub fn key_fits(profile: Profile, alg: &CryptAlg, hash: &HashAlg) -> bool {
    let (Some(k), Ok(out)) = (alg.key_len(), hash.output_len()) else { return false };
    if k == 0 {
        return true;
    }
    match profile {
        Profile::Xep => out >= k,
        Profile::Gajim => out >= k && matches!(out, 16 | 24 | 32),
    }
}

/// The octets the block cipher is keyed with, from the full KC (XEP-0116 §4.5.3 note, A10).
///
/// `Profile::Xep`: the last k octets of the HMAC output ("least significant bits"), k being the
/// cipher's key length. `Profile::Gajim`: the whole output (so `aes128-ctr` runs AES-256 with
/// SHA-256). For `none` the key is empty.
///
/// # Errors
/// [`Error::Unsupported`] for unknown ciphers; [`Error::InvalidLength`] if the hash output is
/// shorter than the key (XEP-0116 §4.5.3: such a hash must not be negotiated with the cipher).
pub fn cipher_key(profile: Profile, alg: &CryptAlg, kc: &SecretBytes) -> Result<SecretBytes> {
    let k = alg.key_len().ok_or(Error::Unsupported("cipher"))?;
    if k == 0 {
        return Ok(SecretBytes::new(Vec::new()));
    }
    let full = kc.expose_secret();
    // X116-4.5.3-03: a hash output shorter than the key is an error, never a shorter key.
    if full.len() < k {
        return Err(Error::InvalidLength { what: "cipher key material", got: full.len() });
    }
    match profile {
        // X116-4.5.3-02 X200-9.2-03: the least significant bits: the last k octets.
        Profile::Xep => Ok(SecretBytes::from_slice(&full[full.len() - k..])),
        Profile::Gajim => Ok(kc.duplicate()),
    }
}

/// The final 4-message K = HASH(K | SRS | OSS), always hashed, SRS and OSS possibly empty
/// (XEP-0116 §4.7.3, §4.8.1).
///
/// # Errors
/// [`Error::Unsupported`] for unknown hashes.
pub fn final_k(
    hash: &HashAlg,
    k: &SecretBytes,
    srs: Option<&SecretBytes>,
    oss: Option<&SecretBytes>,
) -> Result<SecretBytes> {
    let empty: &[u8] = &[];
    let srs = srs.map_or(empty, SecretBytes::expose_secret);
    let oss = oss.map_or(empty, SecretBytes::expose_secret);
    // X116-4.7.3-04 X116-4.8.1-02: K = HASH(K | SRS | OSS), in that order.
    hash.digest(&[k.expose_secret(), srs, oss]).map(SecretBytes::new)
}

/// rshash = HMAC(HASH, N_A, RS): how Alice names a retained secret without revealing it
/// (XEP-0116 §4.6.4).
///
/// # Errors
/// [`Error::Unsupported`] for unknown hashes.
pub fn rshash(hash: &HashAlg, na: &[u8], retained: &SecretBytes) -> Result<Vec<u8>> {
    // X116-4.6.4-03: HMAC keyed with N_A over the retained secret.
    hash.hmac(na, &[retained.expose_secret()])
}

/// srshash = HMAC(HASH, SRS, "Shared Retained Secret") (XEP-0116 §4.7.4).
///
/// # Errors
/// [`Error::Unsupported`] for unknown hashes.
pub fn srshash(hash: &HashAlg, srs: &SecretBytes) -> Result<Vec<u8>> {
    // X116-4.7.4-03: HMAC keyed with SRS over "Shared Retained Secret".
    hash.hmac(srs.expose_secret(), &[b"Shared Retained Secret"])
}

/// The retained secret for the next session: HMAC(HASH, K_final, "New Retained Secret")
/// (XEP-0116 §4.7.4, §4.8.1).
///
/// # Errors
/// [`Error::Unsupported`] for unknown hashes.
pub fn new_retained_secret(hash: &HashAlg, k_final: &SecretBytes) -> Result<SecretBytes> {
    hash.hmac_secret(k_final.expose_secret(), &[b"New Retained Secret"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::CtrCipher;

    /// `key_fits` says exactly whether keying the cipher from the hash's output succeeds, for
    /// every pair this build knows, in both profiles.
    #[test]
    fn key_fits_is_whether_the_cipher_can_be_keyed() {
        let mut gajim_whirlpool = 0;
        for profile in [Profile::Xep, Profile::Gajim] {
            for alg in &CryptAlg::SUPPORTED {
                for hash in &HashAlg::SUPPORTED {
                    let Ok(len) = hash.output_len() else { continue };
                    let kc = SecretBytes::new(vec![7; len]);
                    let keyed = cipher_key(profile, alg, &kc).and_then(|k| CtrCipher::new(alg, profile, &k));
                    if matches!(keyed, Err(Error::Unsupported(_))) {
                        continue;
                    }
                    assert_eq!(key_fits(profile, alg, hash), keyed.is_ok(), "{profile:?} {alg} {hash}");
                    if profile == Profile::Gajim && *hash == HashAlg::Whirlpool && *alg != CryptAlg::None {
                        assert!(!key_fits(profile, alg, hash));
                        gajim_whirlpool += 1;
                    }
                }
            }
        }
        #[cfg(feature = "whirlpool")]
        assert!(gajim_whirlpool > 0, "the pair that does not fit was checked");
        let _ = gajim_whirlpool;
    }
}
