//! Hiding and verifying identities (XEP-0116 §4.5.4, §4.6.2, §4.6.3, §4.7.1): the SIGMA MAC,
//! the signature, ID_X = CIPHER(KC_X, C_X, ...) and M_X = HMAC(HASH, KM_X, C_X | ID_X).
//!
//! Public for the layer above (XEP-0187 offline sessions reuse Bob's 3-message identity); the
//! negotiation state machines are the normal way to use it.

use crate::error::Check;
use crate::store::TrustStore;
use esession_crypto::kdf::{DirectionKeys, cipher_key};
use esession_crypto::{CryptAlg, CtrCipher, HashAlg, PrivateKey, Profile, PublicKey, SignAlg, mpi, secret};
use esession_forms::keyvalue::{self, IdentityClaim};
use esession_forms::names::PubkeyMethod;
use rand_core::CryptoRng;

/// The algorithms of a negotiation.
#[derive(Debug, Clone)]
pub struct Algs {
    /// Wire profile.
    pub profile: Profile,
    /// HASH.
    pub hash: HashAlg,
    /// CIPHER.
    pub cipher: CryptAlg,
    /// SIGN / VERIFY (none when both identities are `none`).
    pub sign: Option<SignAlg>,
}

impl Algs {
    /// The keyed cipher of a direction.
    ///
    /// # Errors
    /// Unsupported cipher or key length.
    pub fn ctr(&self, keys: &DirectionKeys) -> esession_crypto::Result<CtrCipher> {
        CtrCipher::new(&self.cipher, self.profile, &cipher_key(self.profile, &self.cipher, &keys.kc)?)
    }

    fn mac(
        &self,
        ks: &[u8],
        before: &[&[u8]],
        pubkey: &[u8],
        after: &[&[u8]],
    ) -> esession_crypto::Result<Vec<u8>> {
        let mut parts: Vec<&[u8]> = before.to_vec();
        parts.push(pubkey);
        parts.extend_from_slice(after);
        self.hash.hmac(ks, &parts)
    }
}

/// An identity to send: ID_X, M_X and the counter after ID_X.
pub struct Hidden {
    /// ID_X.
    pub id: Vec<u8>,
    /// M_X.
    pub m: Vec<u8>,
    /// The counter after ID_X (stanzas continue from it, A9).
    pub counter_after: u128,
}

/// Hides our identity. `before` are the nonces and DH value, `after` the forms, in the order of
/// the mac formula of our role.
#[allow(clippy::too_many_arguments)]
///
/// # Errors
/// No key for a key/hash method, no signature algorithm, or a primitive failure.
pub fn hide(
    algs: &Algs,
    keys: &DirectionKeys,
    counter: u128,
    method: &PubkeyMethod,
    identity: Option<&PrivateKey>,
    before: &[&[u8]],
    after: &[&[u8]],
    rng: &mut dyn CryptoRng,
) -> crate::Result<Hidden> {
    let (pubkey, key) = match (method, identity) {
        (PubkeyMethod::None, _) => (Vec::new(), None),
        (PubkeyMethod::Key | PubkeyMethod::Hash, Some(k)) => (
            keyvalue::pubkey_octets(algs.profile, &k.public_key())
                .map_err(|_| crate::Error::Config("identity key"))?,
            Some(k),
        ),
        _ => return Err(crate::Error::Config("an identity key is needed for this identification method")),
    };
    let mac = algs.mac(keys.ks.expose_secret(), before, &pubkey, after)?;
    let plaintext = match key {
        None => mac,
        Some(k) => {
            let alg = algs.sign.as_ref().ok_or(crate::Error::Config("no signature algorithm negotiated"))?;
            let sig = k.sign(algs.profile, alg, &mac, rng)?;
            let mut claim = if *method == PubkeyMethod::Hash {
                keyvalue::fingerprint(&algs.hash, &pubkey)
                    .map_err(|_| crate::Error::Config("fingerprint"))?
                    .into_bytes()
            } else {
                pubkey
            };
            claim.extend_from_slice(keyvalue::signature_value(&sig).as_bytes());
            claim
        }
    };
    let mut id = plaintext;
    let counter_after = algs.ctr(keys)?.encrypt(counter, &mut id);
    let m = algs.hash.hmac(keys.km.expose_secret(), &[&mpi::encode_u128(counter), &id])?;
    Ok(Hidden { id, m, counter_after })
}

/// What a verified identity proved.
pub struct Revealed {
    /// The proved key (none for `none` identities).
    pub key: Option<PublicKey>,
    /// The counter after ID_X.
    pub counter_after: u128,
}

/// Which party is being verified (for the names of the failed checks).
#[derive(Debug, Clone, Copy)]
pub enum Who {
    /// Alice's identity (M_A, mac_A).
    Alice,
    /// Bob's identity (M_B, mac_B).
    Bob,
}

/// Verifies the peer's identity: M_X, then decrypts ID_X and checks mac_X (none) or the key's
/// trust and signature (key, hash).
#[allow(clippy::too_many_arguments)]
///
/// # Errors
/// The failed check.
pub fn reveal(
    algs: &Algs,
    keys: &DirectionKeys,
    counter: u128,
    id: &[u8],
    m: &[u8],
    method: &PubkeyMethod,
    before: &[&[u8]],
    after: &[&[u8]],
    trust: &dyn TrustStore,
    peer_jid: &str,
    who: Who,
) -> Result<Revealed, Check> {
    let (check_m, check_mac) = match who {
        Who::Alice => (Check::MA, Check::MacA),
        Who::Bob => (Check::MB, Check::MacB),
    };
    let expected_m =
        algs.hash.hmac(keys.km.expose_secret(), &[&mpi::encode_u128(counter), id]).map_err(|_| check_m)?;
    if !secret::ct_eq(&expected_m, m) {
        return Err(check_m);
    }
    let mut plain = id.to_vec();
    let counter_after = algs.ctr(keys).map_err(|_| check_m)?.decrypt(counter, &mut plain);
    match method {
        PubkeyMethod::None => {
            let mac = algs.mac(keys.ks.expose_secret(), before, &[], after).map_err(|_| check_mac)?;
            // Gajim pads the identity with spaces to whole blocks.
            let got = if algs.profile == esession_crypto::Profile::Gajim && plain.len() > mac.len() {
                &plain[..mac.len()]
            } else {
                &plain[..]
            };
            if !secret::ct_eq(&mac, got) {
                return Err(check_mac);
            }
            Ok(Revealed { key: None, counter_after })
        }
        PubkeyMethod::Key | PubkeyMethod::Hash => {
            let (claim, sig) =
                keyvalue::parse_identity(algs.profile, &plain).map_err(|_| Check::IdentityFormat)?;
            let (key, pubkey) = match claim {
                IdentityClaim::Key { key, pubkey } => {
                    if *method != PubkeyMethod::Key {
                        return Err(Check::IdentityFormat);
                    }
                    if !trust.trusts(crate::store::bare(peer_jid), &key) {
                        return Err(Check::KeyTrust);
                    }
                    (key, pubkey)
                }
                IdentityClaim::Fingerprint(fp) => {
                    if *method != PubkeyMethod::Hash {
                        return Err(Check::IdentityFormat);
                    }
                    let found = trust.for_jid(crate::store::bare(peer_jid)).into_iter().find_map(|r| {
                        let octets = keyvalue::pubkey_octets(algs.profile, &r.key).ok()?;
                        let h = algs.hash.digest(&[&octets]).ok()?;
                        secret::ct_eq(&h, &fp).then(|| (r.key.clone(), octets))
                    });
                    found.ok_or(Check::KeyUnknown)?
                }
            };
            let alg = algs.sign.as_ref().ok_or(Check::Signature)?;
            let mac =
                algs.mac(keys.ks.expose_secret(), before, &pubkey, after).map_err(|_| Check::Signature)?;
            key.verify(algs.profile, alg, &mac, &sig).map_err(|_| Check::Signature)?;
            Ok(Revealed { key: Some(key), counter_after })
        }
        _ => Err(Check::Options),
    }
}
