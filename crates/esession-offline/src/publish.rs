//! Alice going offline (XEP-0187 §3.1): the options form, its signatures, and the secrets she
//! keeps for her return.

use crate::{Audience, Error, Result, set_values, xep0082};
use esession_crypto::{CryptoProvider, DhKeyPair, ModpGroup, PrivateKey, Profile, mpi};
#[cfg(feature = "seal")]
use esession_crypto::{SealingKey, SecretBytes};
#[cfg(feature = "seal")]
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Offers, OfflineOptions};
use esession_forms::names::{Compress, Disclosure, Logging, Security, StanzaType, Version};
use esession_forms::normalize::form_content;
use esession_negotiate::Entropy;
use minidom::Element;

/// What Alice offers while offline.
pub struct Plan {
    /// Wire profile.
    pub profile: Profile,
    /// Algorithms in preference order.
    pub provider: CryptoProvider,
    /// `logging` in preference order.
    pub logging: Vec<Logging>,
    /// `compress`.
    pub compress: Vec<Compress>,
    /// `stanzas` (`iq` is never offered offline; only `message` with `match_resource`).
    pub stanzas: Vec<StanzaType>,
    /// `rekey_freq`.
    pub rekey_freq: u32,
    /// The identity keys that sign the options, in `signs` order.
    pub keys: Vec<PrivateKey>,
    /// How long the options are valid.
    pub lifetime: chrono::Duration,
    /// Restrict delivery to this resource (`match_resource`).
    pub match_resource: Option<String>,
}

impl core::fmt::Debug for Plan {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Plan({} keys, {:?})", self.keys.len(), self.match_resource)
    }
}

/// What Alice keeps until she returns: N_A, one x per offered group, the expiry, and what she
/// offered (a start must choose among it).
pub struct Secrets {
    /// Which options these belong to.
    pub audience: Audience,
    /// The published options (the start's choices are checked against them).
    pub offers: Offers,
    /// N_A.
    pub na: Vec<u8>,
    /// x per group, in offer order.
    pub pairs: Vec<(ModpGroup, DhKeyPair)>,
    /// When the options expire.
    pub expires: chrono::DateTime<chrono::Utc>,
}

impl core::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Secrets({:?}, expires {}, <redacted>)", self.audience, self.expires)
    }
}

impl Secrets {
    /// Seals the secrets for storage (versioned record, bound to the audience). Feature `seal`.
    ///
    /// # Errors
    /// Sealing failed.
    #[cfg(feature = "seal")]
    pub fn seal<R: rand_core::CryptoRng + ?Sized>(&self, key: &SealingKey, rng: &mut R) -> Result<Vec<u8>> {
        // X187-3.1-04: N_A, every x (with its group) and the expiry go into the record;
        // X187-6.4-01: sealed (encrypted and authenticated) with the account's key.
        let mut plain = vec![2u8, u8::from(self.audience == Audience::Everyone)];
        plain.extend_from_slice(&self.expires.timestamp().to_be_bytes());
        let put = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(b);
        };
        put(&mut plain, &self.na);
        plain.extend_from_slice(&u32::try_from(self.pairs.len()).unwrap_or(0).to_be_bytes());
        for (g, kp) in &self.pairs {
            plain.extend_from_slice(&g.number().to_be_bytes());
            put(&mut plain, kp.export_secret().expose_secret());
        }
        let offers = OfflineOptions {
            offers: self.offers.clone(),
            expires: xep0082(self.expires),
            my_nonce: self.na.clone(),
            dhkeys: self.pairs.iter().map(|(_, kp)| kp.public().to_vec()).collect(),
            match_resource: None,
            signs: Vec::new(),
        };
        put(&mut plain, String::from(&offers.to_form(Profile::Xep).to_element()).as_bytes());
        let sealed = key.seal(rng, b"esession offline secrets v1", &plain);
        let plain = SecretBytes::new(plain);
        drop(plain);
        Ok(sealed?)
    }

    /// Opens sealed secrets. Feature `seal`.
    ///
    /// # Errors
    /// A wrong key, a damaged or unknown record.
    #[cfg(feature = "seal")]
    pub fn open(key: &SealingKey, sealed: &[u8]) -> Result<Self> {
        let plain = key.open(b"esession offline secrets v1", sealed)?;
        let mut b = plain.expose_secret();
        let bad = || Error::Config("damaged offline secrets record");
        let mut take = |n: usize| -> Result<&[u8]> {
            if b.len() < n {
                return Err(bad());
            }
            let (x, rest) = b.split_at(n);
            b = rest;
            Ok(x)
        };
        let head = take(2)?;
        if head[0] != 2 {
            return Err(bad());
        }
        let audience = if head[1] == 1 { Audience::Everyone } else { Audience::Subscribers };
        let ts = i64::from_be_bytes(take(8)?.try_into().map_err(|_| bad())?);
        let expires = chrono::DateTime::from_timestamp(ts, 0).ok_or_else(bad)?;
        let n = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
        let na = take(n)?.to_vec();
        let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?);
        let mut pairs = Vec::new();
        for _ in 0..count {
            let g = ModpGroup::from_number(u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?));
            let n = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
            pairs.push((g, DhKeyPair::from_exponent(g, take(n)?)?));
        }
        let n = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
        let text = core::str::from_utf8(take(n)?).map_err(|_| bad())?;
        let offers = esession_forms::xml::parse(text)
            .and_then(|x| DataForm::parse(&x))
            .and_then(|f| OfflineOptions::parse(&f))
            .map_err(|_| bad())?
            .offers;
        Ok(Self { audience, offers, na, pairs, expires })
    }
}

/// When options published at `now` for `lifetime` expire: strictly later than `now`, and a time
/// XEP-0082 can write (a year of four digits). Computed without overflow: a lifetime from a
/// person or a peer may be anything.
///
/// # Errors
/// [`Error::Config`] for a lifetime that is not positive or an expiry past year 9999.
pub fn expiry(
    now: chrono::DateTime<chrono::Utc>,
    lifetime: chrono::Duration,
) -> Result<chrono::DateTime<chrono::Utc>> {
    if lifetime <= chrono::Duration::zero() {
        return Err(Error::Config(
            "the offline options' lifetime must be positive (an expiry in the future)",
        ));
    }
    let expires = now
        .checked_add_signed(lifetime)
        .ok_or(Error::Config("the offline options' expiry is beyond what a date can hold"))?;
    // XEP-0082 has four-digit years: a later expiry could not be read by anyone.
    if chrono::Datelike::year(&expires) > 9999 {
        return Err(Error::Config("the offline options' expiry is after the year 9999"));
    }
    Ok(expires)
}

/// Builds and signs the options (§3.1, I24, I25) and the secrets to keep.
///
/// # Errors
/// No group or no signing key; a lifetime that gives no valid expiry ([`expiry`]); a
/// primitive failure.
pub fn prepare(
    plan: &Plan,
    audience: Audience,
    now: chrono::DateTime<chrono::Utc>,
    entropy: &mut dyn Entropy,
) -> Result<(Element, Secrets)> {
    // Only hashes that can key an offered cipher in the profile (`kdf::key_fits`).
    let p = plan.provider.sanitized().fitting(plan.profile);
    if p.modp.is_empty() || plan.keys.is_empty() {
        return Err(Error::Config("offline options need a group and a signing key"));
    }
    if p.crypt_algs.is_empty() || p.hash_algs.is_empty() {
        return Err(Error::Config(
            "offline options need a cipher and a hash that keys it (Gajim profile: sha256)",
        ));
    }
    // X187-3.1-03: an expiry every reader can parse, strictly in the future (checked before any
    // secret is drawn).
    let expires = expiry(now, plan.lifetime)?;
    let stanzas: Vec<StanzaType> = if plan.match_resource.is_some() {
        // X187-3.1-06: with match_resource, only message.
        vec![StanzaType::Message]
    } else {
        // X187-3.1-02: the stanza types never include iq.
        plan.stanzas.iter().filter(|s| **s != StanzaType::Iq).cloned().collect()
    };
    if stanzas.is_empty() {
        // iq is never offered offline (§3.1): a plan of iq alone offers nothing.
        return Err(Error::Config("offline options need message or presence among the stanzas"));
    }
    // X187-6.1-01: every publication draws a new N_A and a new x per group: the options of an
    // earlier absence can never be answered with these secrets (and the old ones are destroyed
    // by whoever held them: `away::come_back`, the engine's `go_offline`).
    let na = entropy.nonce();
    let mut pairs = Vec::new();
    for g in &p.modp {
        pairs.push((*g, entropy.dh(*g)?));
    }
    let sign_algs: Vec<_> = {
        let mut v = Vec::new();
        for k in &plan.keys {
            let a = k.public_key().alg();
            if !v.contains(&a) {
                v.push(a);
            }
        }
        v
    };
    let options = OfflineOptions {
        offers: Offers {
            logging: plan.logging.clone(),
            disclosure: vec![Disclosure::Never],
            security: vec![Security::E2e],
            modp: p.modp.clone(),
            crypt_algs: p.crypt_algs.clone(),
            hash_algs: p.hash_algs.clone(),
            sign_algs,
            compress: plan.compress.clone(),
            stanzas,
            ver: vec![Version::V1_0],
            rekey_freq: plan.rekey_freq,
        },
        expires: xep0082(expires),
        my_nonce: na.clone(),
        dhkeys: pairs.iter().map(|(_, kp)| kp.public().to_vec()).collect(),
        match_resource: plan.match_resource.clone(),
        signs: Vec::new(),
    };
    // X187-3.1-01: the request form of XEP-0116 §4.2 without `accept` and `pubkey` (nor
    // `init_pubkey`/`resp_pubkey`/`sas_algs`, which only an online negotiation has), plus
    // `expires`, `my_nonce`, `dhkeys` (all e), `match_resource` (`OfflineOptions::to_form`).
    let mut x = options.to_form(plan.profile).to_element_with(plan.profile == Profile::Gajim);
    // X187-3.1-07: `signs` signs the normalized content without `signs` (XEP-0187 §3.1, I25).
    let content = form_content(plan.profile, &x, &["signs"]).map_err(|_| Error::Config("normalize"))?;
    let mut signs = Vec::new();
    for k in &plan.keys {
        let sig = k.sign(plan.profile, &k.public_key().alg(), &content, entropy.rng())?;
        signs.push(mpi::b64_encode(&sig));
    }
    set_values(&mut x, "signs", &signs);
    Ok((x, Secrets { audience, offers: options.offers, na, pairs, expires }))
}
