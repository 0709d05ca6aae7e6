//! The SIGMA core (XEP-0116 §4.5.4, §4.6.2, §4.6.3, §4.7.1): hiding our identity and verifying
//! the peer's, written once for Alice and Bob, online and offline.
//!
//! * [`hide`]: the SIGMA MAC over the nonces, the DH value, our public key and the forms, signed
//!   with our key (or alone for `none`), ID_X = CIPHER(KC_X, C_X, ...) and
//!   M_X = HMAC(HASH, KM_X, C_X | ID_X).
//! * [`reveal`]: M_X first (constant time), then the identity: mac_X for `none`, the key's
//!   trust and the signature for `key` / `hash`. Success hands out a [`Proof`].
//! * [`signed_by_trusted`]: one of several signatures over octets we hold verifies with a key
//!   trusted for the peer (XEP-0187 options). Success hands out a [`Proof`] too.
//!
//! A [`Proof`] can only be made here, and opening a session requires one
//! ([`crate::Established`]): no code path opens a session whose peer was not verified.

use crate::error::Check;
use crate::store::TrustStore;
use esession_crypto::kdf::{DirectionKeys, cipher_key};
use esession_crypto::{CryptAlg, CtrCipher, HashAlg, PrivateKey, Profile, PublicKey, SignAlg, mpi, secret};
use esession_forms::esession::Response;
use esession_forms::keyvalue::{self, IdentityClaim};
use esession_forms::names::PubkeyMethod;
use jid::BareJid;
use rand_core::CryptoRng;

/// The algorithms of a negotiation.
#[derive(Debug, Clone)]
pub(crate) struct Algs {
    /// Wire profile.
    pub(crate) profile: Profile,
    /// HASH.
    pub(crate) hash: HashAlg,
    /// CIPHER.
    pub(crate) cipher: CryptAlg,
    /// SIGN / VERIFY (none when both identities are `none`).
    pub(crate) sign: Option<SignAlg>,
}

impl Algs {
    /// The algorithms a response chose.
    pub(crate) fn chosen(profile: Profile, r: &Response) -> Self {
        Self { profile, hash: r.hash_alg.clone(), cipher: r.crypt_alg.clone(), sign: r.sign_alg.clone() }
    }

    /// The keyed cipher of a direction.
    fn ctr(&self, keys: &DirectionKeys) -> esession_crypto::Result<CtrCipher> {
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

/// The inputs of one side's SIGMA MAC: `before` the nonces and DH value, `after` the forms, in
/// the order of the role's mac formula (XEP-0116 §4.5.4, §4.6.3).
pub(crate) struct MacInput<'a> {
    pub(crate) before: &'a [&'a [u8]],
    pub(crate) after: &'a [&'a [u8]],
}

/// An identity to send: ID_X, M_X and the counter after ID_X.
pub(crate) struct Hidden {
    /// ID_X.
    pub(crate) id: Vec<u8>,
    /// M_X.
    pub(crate) m: Vec<u8>,
    /// The counter after ID_X (stanzas continue from it, A9).
    pub(crate) counter_after: u128,
}

/// Hides our identity (XEP-0116 §4.5.4 steps 1-6 for Bob, §4.6.3 for Alice).
///
/// # Errors
/// No key for a key/hash method, no signature algorithm, or a primitive failure.
pub(crate) fn hide(
    algs: &Algs,
    keys: &DirectionKeys,
    counter: u128,
    method: &PubkeyMethod,
    identity: Option<&PrivateKey>,
    input: &MacInput<'_>,
    rng: &mut dyn CryptoRng,
) -> crate::Result<Hidden> {
    let (pubkey, key) = match (method, identity) {
        // X116-4.5.4-03: identification `none`: pubKey is the zero-length string.
        (PubkeyMethod::None, _) => (Vec::new(), None),
        (PubkeyMethod::Key | PubkeyMethod::Hash, Some(k)) => (
            keyvalue::pubkey_octets(algs.profile, &k.public_key())
                .map_err(|_| crate::Error::Config("identity key"))?,
            Some(k),
        ),
        _ => return Err(crate::Error::Config("an identity key is needed for this identification method")),
    };
    // X116-4.5.4-01: the SIGMA MAC over the nonces, d (or e), pubKey and the forms.
    let mac = algs.mac(keys.ks.expose_secret(), input.before, &pubkey, input.after)?;
    let plaintext = match key {
        None => mac,
        Some(k) => {
            let alg = algs.sign.as_ref().ok_or(crate::Error::Config("no signature algorithm negotiated"))?;
            // X116-4.5.4-06: the signature is over the MAC.
            let sig = k.sign(algs.profile, alg, &mac, rng)?;
            let mut claim = if *method == PubkeyMethod::Hash {
                keyvalue::fingerprint(&algs.hash, &pubkey)
                    .map_err(|_| crate::Error::Config("fingerprint"))?
                    .into_bytes()
            } else {
                pubkey
            };
            claim.extend_from_slice(keyvalue::signature_value(algs.profile, &sig).as_bytes());
            claim
        }
    };
    let mut id = plaintext;
    let counter_after = algs.ctr(keys)?.encrypt(counter, &mut id);
    let m = algs.hash.hmac(keys.km.expose_secret(), &[&mpi::encode_u128(counter), &id])?;
    Ok(Hidden { id, m, counter_after })
}

/// Proof that the peer's identity was verified: made only by the SIGMA verification of a
/// negotiation and by [`crate::published::verify_signed`] (a signature over published
/// content), and required to open a
/// session. Not `Clone`: one proof opens one session.
pub struct Proof {
    key: Option<PublicKey>,
}

impl Proof {
    /// The key the peer proved (none for `none` identities).
    #[must_use]
    pub fn key(&self) -> Option<&PublicKey> {
        self.key.as_ref()
    }

    pub(crate) fn into_key(self) -> Option<PublicKey> {
        self.key
    }
}

impl core::fmt::Debug for Proof {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Proof").field("key", &self.key.is_some()).finish()
    }
}

/// What a verified identity gave: the proof and the counter after ID_X.
pub(crate) struct Revealed {
    pub(crate) proof: Proof,
    /// The counter after ID_X (the peer's stanzas continue from it, A9).
    pub(crate) counter_after: u128,
}

/// Which party is being verified (for the names of the failed checks).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who {
    /// Alice's identity (M_A, mac_A).
    Alice,
    /// Bob's identity (M_B, mac_B).
    Bob,
}

/// The peer's identity as received, with what to verify it against.
pub(crate) struct Claimed<'a> {
    /// ID_X.
    pub(crate) id: &'a [u8],
    /// M_X.
    pub(crate) m: &'a [u8],
    /// How the peer identifies.
    pub(crate) method: &'a PubkeyMethod,
    /// The peer's bare JID (whose trusted keys count).
    pub(crate) jid: &'a BareJid,
    /// Alice or Bob.
    pub(crate) who: Who,
}

/// Verifies the peer's identity: M_X, then decrypts ID_X and checks mac_X (`none`) or the key's
/// trust and the signature (`key`, `hash`).
///
/// # Errors
/// The failed check.
pub(crate) fn reveal(
    algs: &Algs,
    keys: &DirectionKeys,
    counter: u128,
    claimed: &Claimed<'_>,
    input: &MacInput<'_>,
    trust: &dyn TrustStore,
) -> Result<Revealed, Check> {
    let (check_m, check_mac) = match claimed.who {
        Who::Alice => (Check::MA, Check::MacA),
        Who::Bob => (Check::MB, Check::MacB),
    };
    // X116-4.6.2-01 X116-4.7.1-02: M_X verified first, in constant time.
    let expected_m = algs
        .hash
        .hmac(keys.km.expose_secret(), &[&mpi::encode_u128(counter), claimed.id])
        .map_err(|_| check_m)?;
    if !secret::ct_eq(&expected_m, claimed.m) {
        return Err(check_m);
    }
    let mut plain = claimed.id.to_vec();
    let counter_after = algs.ctr(keys).map_err(|_| check_m)?.decrypt(counter, &mut plain);
    let plain = esession_crypto::SecretBytes::new(plain);
    let plain = plain.expose_secret();
    match claimed.method {
        PubkeyMethod::None => {
            // X116-4.6.2-03: resp_pubkey (or init_pubkey) `none`: pubKey is the zero-length string.
            let mac =
                algs.mac(keys.ks.expose_secret(), input.before, &[], input.after).map_err(|_| check_mac)?;
            // Gajim pads the identity with spaces to whole blocks.
            let got = if algs.profile == Profile::Gajim && plain.len() > mac.len() {
                &plain[..mac.len()]
            } else {
                plain
            };
            if !secret::ct_eq(&mac, got) {
                return Err(check_mac);
            }
            Ok(Revealed { proof: Proof { key: None }, counter_after })
        }
        PubkeyMethod::Key | PubkeyMethod::Hash => {
            let (claim, sig) =
                keyvalue::parse_identity(algs.profile, plain).map_err(|_| Check::IdentityFormat)?;
            let (key, pubkey) = match claim {
                IdentityClaim::Key { key, pubkey } => {
                    if *claimed.method != PubkeyMethod::Key {
                        return Err(Check::IdentityFormat);
                    }
                    // X116-4.6.2-01 X116-4.7.1-02: the key must be one we trust for this JID (§4.6.2 step 7).
                    if !trust.trusts(claimed.jid, &key) {
                        // The store hears of the key only once it proved it holds it.
                        if signature_verifies(algs, keys, input, &key, &pubkey, &sig) {
                            trust.refused(claimed.jid, &key);
                        }
                        return Err(Check::KeyTrust);
                    }
                    (key, pubkey)
                }
                IdentityClaim::Fingerprint(fp) => {
                    if *claimed.method != PubkeyMethod::Hash {
                        return Err(Check::IdentityFormat);
                    }
                    let found = trust.for_jid(claimed.jid).into_iter().find_map(|r| {
                        let octets = keyvalue::pubkey_octets(algs.profile, &r.key).ok()?;
                        let h = algs.hash.digest(&[&octets]).ok()?;
                        secret::ct_eq(&h, &fp).then(|| (r.key.clone(), octets))
                    });
                    // X116-4.6.2-05: no copy of the key: the negotiation ends (the error stanza
                    // and the failed state follow from this error).
                    found.ok_or(Check::KeyUnknown)?
                }
            };
            // X116-4.6.2-01 X116-4.7.1-02: the signature over the MAC we computed ourselves (step 7).
            if !signature_verifies(algs, keys, input, &key, &pubkey, &sig) {
                return Err(Check::Signature);
            }
            Ok(Revealed { proof: Proof { key: Some(key) }, counter_after })
        }
        _ => Err(Check::Options),
    }
}

/// Whether `sig` is `key`'s signature over mac_X, the MAC of the identity `pubkey` (its octets
/// as sent) that we compute ourselves with the direction's `ks`.
fn signature_verifies(
    algs: &Algs,
    keys: &DirectionKeys,
    input: &MacInput<'_>,
    key: &PublicKey,
    pubkey: &[u8],
    sig: &[u8],
) -> bool {
    let Some(alg) = algs.sign.as_ref() else { return false };
    algs.mac(keys.ks.expose_secret(), input.before, pubkey, input.after)
        .is_ok_and(|mac| key.verify(algs.profile, alg, &mac, sig).is_ok())
}

/// Whether one of `signatures` over `content` verifies with a key trusted for `jid`
/// (XEP-0187 §3.2: Alice's offline options). The proof names the key.
///
/// # Errors
/// [`Check::Signature`] when none does.
pub(crate) fn signed_by_trusted(
    profile: Profile,
    content: &[u8],
    signatures: &[Vec<u8>],
    trust: &dyn TrustStore,
    jid: &BareJid,
) -> Result<Proof, Check> {
    signatures
        .iter()
        .find_map(|sig| {
            trust.for_jid(jid).into_iter().find_map(|r| {
                r.key.verify(profile, &r.key.alg(), content, sig).is_ok().then(|| r.key.clone())
            })
        })
        .map(|key| Proof { key: Some(key) })
        .ok_or(Check::Signature)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::MemoryTrust;
    use esession_crypto::SecretBytes;

    fn keys() -> DirectionKeys {
        DirectionKeys {
            kc: SecretBytes::new(vec![1; 32]),
            km: SecretBytes::new(vec![2; 32]),
            ks: SecretBytes::new(vec![3; 32]),
        }
    }

    fn algs(profile: Profile) -> Algs {
        Algs { profile, hash: HashAlg::Sha256, cipher: CryptAlg::Aes128Ctr, sign: None }
    }

    const BEFORE: &[&[u8]] = &[b"nonce", b"dh value"];
    const AFTER: &[&[u8]] = &[b"form"];

    /// ID_X and M_X for an identity of method `none` whose plaintext is `plain`.
    fn hidden(profile: Profile, counter: u128, plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let k = keys();
        let mut id = plain.to_vec();
        let _after = algs(profile).ctr(&k).unwrap().encrypt(counter, &mut id);
        let m = HashAlg::Sha256.hmac(k.km.expose_secret(), &[&mpi::encode_u128(counter), &id]).unwrap();
        (id, m)
    }

    fn reveal_none(profile: Profile, counter: u128, id: &[u8], m: &[u8]) -> Result<u128, Check> {
        let jid = BareJid::new("bob@example.com").unwrap();
        let claimed = Claimed { id, m, method: &PubkeyMethod::None, jid: &jid, who: Who::Bob };
        let input = MacInput { before: BEFORE, after: AFTER };
        reveal(&algs(profile), &keys(), counter, &claimed, &input, &MemoryTrust::default())
            .map(|r| r.counter_after)
    }

    /// The `none` identity (mac_X alone, X116-4.6.2-03) in both profiles, and Gajim's padding:
    /// Gajim pads the identity's plaintext with spaces to whole cipher blocks, which only its
    /// profile cuts off; a plaintext shorter than the MAC, or padding in `Profile::Xep`, fails.
    #[test]
    fn a_none_identity_padded_to_whole_blocks_is_accepted_in_the_gajim_profile_only() {
        let counter = 7u128 << 100;
        let mac = algs(Profile::Xep).mac(keys().ks.expose_secret(), BEFORE, &[], AFTER).unwrap();
        assert_eq!(mac.len(), 32);
        // Exactly the MAC: both profiles, through `hide` as well.
        for profile in [Profile::Xep, Profile::Gajim] {
            let (id, m) = hidden(profile, counter, &mac);
            assert!(reveal_none(profile, counter, &id, &m).is_ok(), "{profile:?}");
            let input = MacInput { before: BEFORE, after: AFTER };
            let mut rng = esession_crypto::testing::TestRng::new(1);
            let h =
                hide(&algs(profile), &keys(), counter, &PubkeyMethod::None, None, &input, &mut rng).unwrap();
            assert_eq!((&h.id, &h.m), (&id, &m), "{profile:?}");
            assert_eq!(reveal_none(profile, counter, &h.id, &h.m), Ok(h.counter_after));
        }
        // Padded with spaces to the next whole blocks.
        let mut padded = mac.clone();
        padded.extend_from_slice(&[b' '; 16]);
        let (id, m) = hidden(Profile::Gajim, counter, &padded);
        let after = reveal_none(Profile::Gajim, counter, &id, &m).unwrap();
        assert_eq!(after, counter + 3, "three blocks of ID_X");
        let (id, m) = hidden(Profile::Xep, counter, &padded);
        assert_eq!(reveal_none(Profile::Xep, counter, &id, &m), Err(Check::MacB));
        // Shorter than the MAC: refused in both, never read beyond the plaintext.
        for profile in [Profile::Xep, Profile::Gajim] {
            let (id, m) = hidden(profile, counter, &mac[..16]);
            assert_eq!(reveal_none(profile, counter, &id, &m), Err(Check::MacB), "{profile:?}");
        }
        // A proof says whether it holds a key, and nothing of the key.
        assert_eq!(format!("{:?}", Proof { key: None }), "Proof { key: false }");
        // A wrong MAC padded is still wrong.
        let mut bad = padded.clone();
        bad[0] ^= 1;
        let (id, m) = hidden(Profile::Gajim, counter, &bad);
        assert_eq!(reveal_none(Profile::Gajim, counter, &id, &m), Err(Check::MacB));
    }
    /// A trust store that trusts nobody and records what it hears of through `refused`.
    #[derive(Default)]
    struct Recording(std::sync::Mutex<Vec<(BareJid, PublicKey)>>);

    impl TrustStore for Recording {
        fn for_jid(&self, _: &BareJid) -> Vec<&crate::store::KeyRecord> {
            Vec::new()
        }
        fn record(&self, _: &PublicKey) -> Option<&crate::store::KeyRecord> {
            None
        }
        fn records(&self) -> Vec<&crate::store::KeyRecord> {
            Vec::new()
        }
        fn refused(&self, jid: &BareJid, key: &PublicKey) {
            self.0.lock().unwrap().push((jid.clone(), key.clone()));
        }
        fn associate(&mut self, _: &BareJid, _: PublicKey) -> Result<(), crate::StoreError> {
            Ok(())
        }
        fn sas_confirmed(&self, _: &BareJid) -> bool {
            false
        }
        fn confirm_sas(&mut self, _: &BareJid) -> Result<(), crate::StoreError> {
            Ok(())
        }
    }

    /// An untrusted key is refused (`key-trust`, the spec's order: trust before signature), and
    /// the store hears of it only when its signature verified: a peer that does not hold the
    /// key cannot make the user see it and be offered to trust it (hostile review M3).
    #[test]
    fn an_untrusted_key_reaches_the_store_only_with_a_valid_signature() {
        let mut rng = esession_crypto::testing::TestRng::new(5);
        let sk = PrivateKey::generate_rsa(&mut rng, 2048).unwrap();
        let mut a = algs(Profile::Xep);
        a.sign = Some(SignAlg::RsaSha256);
        let counter = 9u128 << 100;
        let jid = BareJid::new("bob@example.com").unwrap();
        let signed = MacInput { before: BEFORE, after: AFTER };
        let h = hide(&a, &keys(), counter, &PubkeyMethod::Key, Some(&sk), &signed, &mut rng).unwrap();
        let claimed = Claimed { id: &h.id, m: &h.m, method: &PubkeyMethod::Key, jid: &jid, who: Who::Bob };
        // Signed over the MAC the receiver computes: refused, and remembered.
        let store = Recording::default();
        assert_eq!(reveal(&a, &keys(), counter, &claimed, &signed, &store).err(), Some(Check::KeyTrust));
        assert_eq!(*store.0.lock().unwrap(), vec![(jid.clone(), sk.public_key())]);
        // Signed over another MAC (M_X still valid): refused all the same, never remembered.
        let other = MacInput { before: BEFORE, after: &[b"another form"] };
        let store = Recording::default();
        assert_eq!(reveal(&a, &keys(), counter, &claimed, &other, &store).err(), Some(Check::KeyTrust));
        assert!(store.0.lock().unwrap().is_empty());
    }
}
