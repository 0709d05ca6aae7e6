//! Signatures on raw key components (XEP-0116 §8.2, §8.3; XEP-0187 `signs`).
//!
//! No XML here: `esession-forms` turns [`PublicKey`] into `<KeyValue/>` and back.
//!
//! * `rsa-sha256`: RSASSA-PKCS1-v1_5 with SHA-256 over the given octets (A5), with blinding.
//! * `dsa-sha256`: DSA over SHA-256 of the octets, RFC 6979 deterministic k, the signature being
//!   r || s, each as long as q (A5, I14).
//! * `Profile::Gajim` RSA: textbook RSA of SHA-256(octets) read as an integer, the signature
//!   written as minimal octets (what Gajim's RSA library `sign()` does).

use crate::Profile;
use crate::error::{Error, Result};
use crate::hash::sha256;
use core::fmt;
use core::str::FromStr;
use crypto_bigint::BoxedUint;
use rand_core::CryptoRng;
use rsa::traits::PublicKeyParts;

/// What [`Error::Unsupported`] says about DSA in a build without the feature `dsa`.
#[cfg(not(feature = "dsa"))]
const NO_DSA: &str = "dsa-sha256 (esession-crypto feature `dsa`)";

/// The XEP-0116 URI of RSA with SHA-256.
pub const RSA_SHA256_URI: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha256";
/// The XEP-0116 URI of DSA with SHA-256.
pub const DSA_SHA256_URI: &str = "http://www.w3.org/2000/09/xmldsig#dsa-sha256";

/// A `sign_algs` option.
///
/// Emitted as the XEP-0116 URIs; `rsa`/`dsa` (XEP-0187 examples) and the W3C URIs
/// (RFC 4051 `xmldsig-more#rsa-sha256`, XML-DSig 1.1 `xmldsig11#dsa-sha256`) are accepted as
/// aliases and answered with the XEP URI (A5). The alias spelling is not kept, so `Display` of a
/// parsed alias gives the canonical URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (MUST).
    RsaSha256,
    /// DSA with SHA-256 (SHOULD).
    DsaSha256,
    /// Any other URI.
    Unknown(String),
}

impl SignAlg {
    /// Supported algorithms in our preference order.
    #[cfg(feature = "dsa")]
    pub const SUPPORTED: [SignAlg; 2] = [SignAlg::RsaSha256, SignAlg::DsaSha256];
    /// Supported algorithms (RSA only: the feature `dsa` is off).
    #[cfg(not(feature = "dsa"))]
    pub const SUPPORTED: [SignAlg; 1] = [SignAlg::RsaSha256];

    /// The canonical wire name (the XEP-0116 URI).
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            SignAlg::RsaSha256 => RSA_SHA256_URI,
            SignAlg::DsaSha256 => DSA_SHA256_URI,
            SignAlg::Unknown(s) => s,
        }
    }

    /// Whether this build implements it (`dsa-sha256`: feature `dsa`).
    #[must_use]
    pub fn is_supported(&self) -> bool {
        match self {
            SignAlg::RsaSha256 => true,
            SignAlg::DsaSha256 => cfg!(feature = "dsa"),
            SignAlg::Unknown(_) => false,
        }
    }
}

impl FromStr for SignAlg {
    type Err = core::convert::Infallible;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        Ok(match s {
            RSA_SHA256_URI | "rsa" | "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
                SignAlg::RsaSha256
            }
            DSA_SHA256_URI | "dsa" | "http://www.w3.org/2009/xmldsig11#dsa-sha256" => SignAlg::DsaSha256,
            other => SignAlg::Unknown(other.to_owned()),
        })
    }
}

impl fmt::Display for SignAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public signature-verification key, as the components `<KeyValue/>` carries.
///
/// Opaque: the key types of the `rsa` and `dsa` crates stay inside (their versions are not part
/// of this crate's API); [`PublicKey::components`] and [`PublicKey::from_components`] are the
/// way in and out. DSA needs the feature `dsa` (on by default).
#[derive(Clone)]
pub struct PublicKey(Pk);

#[derive(Clone)]
enum Pk {
    /// `<RSAKeyValue/>`: modulus and exponent.
    Rsa(rsa::PublicKey),
    /// `<DSAKeyValue/>`: P, Q, G, Y.
    #[cfg(feature = "dsa")]
    Dsa(dsa::VerifyingKey),
}

impl PartialEq for PublicKey {
    /// Equal components (as [`PublicKey::components`] gives them), compared in place: trust
    /// stores compare keys on every stanza, and building the components cost two allocations
    /// per comparison.
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Pk::Rsa(a), Pk::Rsa(b)) => same(a.n(), b.n()) && same(a.e(), b.e()),
            #[cfg(feature = "dsa")]
            (Pk::Dsa(a), Pk::Dsa(b)) => {
                let (ca, cb) = (a.components(), b.components());
                same(ca.p(), cb.p()) && same(ca.q(), cb.q()) && same(ca.g(), cb.g()) && same(a.y(), b.y())
            }
            #[cfg(feature = "dsa")]
            _ => false,
        }
    }
}

/// Whether two integers are equal whatever their precision (their limbs, high zero limbs
/// aside). Public values: not constant time.
fn same(a: &BoxedUint, b: &BoxedUint) -> bool {
    significant(a.as_limbs()).iter().map(|x| x.0).eq(significant(b.as_limbs()).iter().map(|x| x.0))
}

/// The limbs below the highest nonzero one included.
fn significant(l: &[crypto_bigint::Limb]) -> &[crypto_bigint::Limb] {
    let n = l.iter().rposition(|x| x.0 != 0).map_or(0, |i| i + 1);
    l.get(..n).unwrap_or_default()
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Pk::Rsa(k) => write!(f, "PublicKey::Rsa({} bits)", k.n().bit_width()),
            #[cfg(feature = "dsa")]
            Pk::Dsa(k) => write!(f, "PublicKey::Dsa({} bits)", k.components().p().bit_width()),
        }
    }
}

/// The components of a public key, each as minimal big-endian octets (XML-DSig CryptoBinary).
#[derive(Debug, Clone, PartialEq, Eq)]
// Not `#[non_exhaustive]`: every layer turns the components into bytes (`<KeyValue/>`, the
// stores' key IDs) with no fallback that would be right; a new key type is a breaking change.
pub enum KeyComponents {
    /// RSA modulus and public exponent.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// DSA domain parameters and public value.
    Dsa {
        /// Prime p.
        p: Vec<u8>,
        /// Subgroup order q.
        q: Vec<u8>,
        /// Generator g.
        g: Vec<u8>,
        /// Public value y.
        y: Vec<u8>,
    },
}

fn uint(bytes: &[u8]) -> BoxedUint {
    BoxedUint::from_be_slice_vartime(crate::mpi::trim(bytes))
}

fn octets(u: &BoxedUint) -> Vec<u8> {
    crate::mpi::trim(&u.to_be_bytes()).to_vec()
}

impl PublicKey {
    /// An RSA key from its modulus and exponent (minimal or zero-padded big-endian).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if rejected by the `rsa` crate (size limits 1024..=16384 bits).
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self> {
        rsa::PublicKey::new(uint(n), uint(e)).map(|k| PublicKey(Pk::Rsa(k))).map_err(|_| Error::InvalidKey)
    }

    /// A DSA key from its components.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] unless (L, N) is one of FIPS 186's sizes and y is in the subgroup;
    /// [`Error::Unsupported`] without the feature `dsa`.
    pub fn dsa(p: &[u8], q: &[u8], g: &[u8], y: &[u8]) -> Result<Self> {
        #[cfg(feature = "dsa")]
        {
            let c =
                dsa::Components::from_components(uint(p), uint(q), uint(g)).map_err(|_| Error::InvalidKey)?;
            dsa::VerifyingKey::from_components(c, uint(y))
                .map(|k| PublicKey(Pk::Dsa(k)))
                .map_err(|_| Error::InvalidKey)
        }
        #[cfg(not(feature = "dsa"))]
        {
            let _ = (p, q, g, y);
            Err(Error::Unsupported(NO_DSA))
        }
    }

    /// A public key from SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), RSA or DSA.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if it is neither an RSA nor a DSA public key.
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        use rsa::pkcs8::DecodePublicKey;
        if let Ok(k) = rsa::PublicKey::from_public_key_pem(pem) {
            return Ok(PublicKey(Pk::Rsa(k)));
        }
        #[cfg(feature = "dsa")]
        {
            dsa::VerifyingKey::from_public_key_pem(pem)
                .map(|k| PublicKey(Pk::Dsa(k)))
                .map_err(|_| Error::InvalidKey)
        }
        #[cfg(not(feature = "dsa"))]
        Err(Error::InvalidKey)
    }

    /// The key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), for handing it to a
    /// contact who verifies it.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the encoder fails.
    pub fn to_public_key_pem(&self) -> Result<String> {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        match &self.0 {
            Pk::Rsa(k) => k.to_public_key_pem(LineEnding::LF),
            #[cfg(feature = "dsa")]
            Pk::Dsa(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|_| Error::InvalidKey)
    }

    /// Rebuilds a key from its components.
    ///
    /// # Errors
    /// As [`PublicKey::rsa`] and [`PublicKey::dsa`].
    pub fn from_components(c: &KeyComponents) -> Result<Self> {
        match c {
            KeyComponents::Rsa { n, e } => Self::rsa(n, e),
            KeyComponents::Dsa { p, q, g, y } => Self::dsa(p, q, g, y),
        }
    }

    /// The components, minimal octets.
    #[must_use]
    pub fn components(&self) -> KeyComponents {
        match &self.0 {
            Pk::Rsa(k) => KeyComponents::Rsa { n: octets(k.n()), e: octets(k.e()) },
            #[cfg(feature = "dsa")]
            Pk::Dsa(k) => {
                let c = k.components();
                KeyComponents::Dsa { p: octets(c.p()), q: octets(c.q()), g: octets(c.g()), y: octets(k.y()) }
            }
        }
    }

    /// The algorithm this key verifies.
    #[must_use]
    pub fn alg(&self) -> SignAlg {
        match &self.0 {
            Pk::Rsa(_) => SignAlg::RsaSha256,
            #[cfg(feature = "dsa")]
            Pk::Dsa(_) => SignAlg::DsaSha256,
        }
    }

    /// Verifies `sig` over `msg` (the octets themselves; the hash is applied here).
    ///
    /// # Errors
    /// [`Error::Crypto`] on any mismatch, including an algorithm that does not fit the key.
    pub fn verify(&self, profile: Profile, alg: &SignAlg, msg: &[u8], sig: &[u8]) -> Result<()> {
        let digest = sha256(msg);
        match (&self.0, alg, profile) {
            (Pk::Rsa(k), SignAlg::RsaSha256, Profile::Xep) => {
                k.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, sig).map_err(|_| Error::Crypto)
            }
            (Pk::Rsa(k), SignAlg::RsaSha256, Profile::Gajim) => {
                let n = k.n();
                let t = crate::mpi::trim(sig);
                if t.len() > n.as_ref().bits_precision().div_ceil(8) as usize {
                    return Err(Error::Crypto);
                }
                let s =
                    BoxedUint::from_be_slice(t, n.as_ref().bits_precision()).map_err(|_| Error::Crypto)?;
                if s.cmp_vartime(n.as_ref()).is_ge() {
                    return Err(Error::Crypto);
                }
                let m = rsa::hazmat::rsa_encrypt(k, &s).map_err(|_| Error::Crypto)?;
                if crate::secret::ct_eq(&octets(&m), crate::mpi::trim(&digest)) {
                    Ok(())
                } else {
                    Err(Error::Crypto)
                }
            }
            #[cfg(feature = "dsa")]
            (Pk::Dsa(k), SignAlg::DsaSha256, _) => {
                let qlen = k.components().q().bit_width().div_ceil(8) as usize;
                if sig.len() != 2 * qlen {
                    return Err(Error::Crypto);
                }
                let (r, s) = sig.split_at(qlen);
                if dsa_verify(k, &digest, &uint(r), &uint(s)) { Ok(()) } else { Err(Error::Crypto) }
            }
            _ => Err(Error::Crypto),
        }
    }
}

/// DSA verification (FIPS 186-4 §4.7) with the exponents u1, u2 at the precision of q.
///
/// The `dsa` crate (0.7) widens u1 and u2 to the precision of p before exponentiating, which
/// makes a 2048/256 verification about eight times the necessary work (docs/performance.md).
/// This is the same computation, operand for operand (the same leftmost-octets reading of the
/// digest as z), with 256-bit exponents. Everything here is public, so variable-time operations
/// are fine. Proven equal to the crate's verification by the Wycheproof DSA vectors and by
/// the differential test below.
#[cfg(feature = "dsa")]
fn dsa_verify(k: &dsa::VerifyingKey, digest: &[u8], r: &BoxedUint, s: &BoxedUint) -> bool {
    use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
    use crypto_bigint::{MontyForm, MontyMultiplier, NonZero, Resize};
    let c = k.components();
    let (p, q, g) = (c.p(), c.q(), c.g());
    let qp = q.bits_precision();
    // 0 < r < q and 0 < s < q.
    let zero = BoxedUint::zero_with_precision(r.bits_precision());
    if r.cmp_vartime(q.as_ref()).is_ge() || s.cmp_vartime(q.as_ref()).is_ge() {
        return false;
    }
    if r.cmp_vartime(&zero).is_eq() || s.cmp_vartime(&zero).is_eq() {
        return false;
    }
    let (r, s) = (r.resize(qp), s.resize(qp));
    let Some(w) = Option::<BoxedUint>::from(s.invert_mod(q)) else { return false };
    // z: the leftmost min(N, outlen) bits of the digest, in whole octets as the crate reads them.
    let z_len = ((q.bit_width() / 8) as usize).min(digest.len());
    let z = BoxedUint::from_be_slice_vartime(&digest[..z_len]).rem_vartime(q).resize(qp);
    let u1 = z.mul_mod(&w, q);
    let u2 = r.mul_mod(&w, q);
    let monty = BoxedMontyParams::new_vartime(p.clone());
    let gm = BoxedMontyForm::new(g.as_ref().resize(p.bits_precision()), &monty);
    let ym = BoxedMontyForm::new(k.y().as_ref().resize(p.bits_precision()), &monty);
    // g^u1 · y^u2 by simultaneous square-and-multiply (Shamir's trick): one squaring per bit
    // of q instead of two; variable time, as every operand is public.
    let gy = gm.mul(&ym);
    let table = [None, Some(&gm), Some(&ym), Some(&gy)];
    let mut mul = <BoxedMontyForm as MontyForm>::Multiplier::from(&monty);
    let mut acc = BoxedMontyForm::one(&monty);
    for i in (0..qp).rev() {
        MontyMultiplier::square_assign(&mut mul, &mut acc);
        let idx = usize::from(bool::from(u1.bit(i))) | usize::from(bool::from(u2.bit(i))) << 1;
        if let Some(t) = table[idx] {
            MontyMultiplier::mul_assign(&mut mul, &mut acc, t);
        }
    }
    let v = acc.retrieve();
    let Some(qw) = NonZero::new(q.as_ref().resize(v.bits_precision())).into_option() else { return false };
    let v = v.rem_vartime(&qw).resize(qp);
    v.cmp_vartime(&r).is_eq()
}

/// Deterministic DSA signing (RFC 6979 k, FIPS 186-4 §4.6) with k at the precision of q.
///
/// The same computation as the `dsa` crate's `sign_prehash` (the same k from the same HMAC-DRBG
/// inputs, the same reading of the digest), which raises g to k widened to the precision of p:
/// eight times the work at 2048/256. Secret values (x, k, k^-1 and the intermediate products)
/// only go through crypto-bigint's constant-time operations and are zeroized. The differential
/// test below requires byte-identical signatures from both.
#[cfg(feature = "dsa")]
fn dsa_sign(key: &dsa::SigningKey, digest: &[u8]) -> Option<(BoxedUint, BoxedUint)> {
    use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
    use crypto_bigint::{CtLt, NonZero, Resize};
    use zeroize::Zeroize;
    let c = key.verifying_key().components();
    let (p, q, g) = (c.p(), c.q(), c.g());
    let qp = q.bits_precision();
    let size = q.bit_width().div_ceil(8) as usize;
    let truncate = |b: &[u8]| b[b.len().saturating_sub(size)..].to_vec();
    // k as the crate derives it: HMAC-DRBG over x and (the leading octets of H) mod q.
    let h = BoxedUint::from_be_slice_truncated(&digest[..size.min(digest.len())], qp).rem_vartime(q);
    let h = truncate(&h.to_be_bytes());
    let mut x_bytes = key.x().to_be_bytes();
    let mut kgen = rfc6979::KGenerator::<sha2::Sha256, BoxedUint>::new(&truncate(&x_bytes), &h, &[], q);
    x_bytes.zeroize();
    let mut buf = vec![0u8; size];
    let (mut k, mut k_inv) = loop {
        kgen.fill_next_k(&mut buf);
        let k = BoxedUint::from_be_slice_truncated(&buf, qp);
        let inv: Option<BoxedUint> = k.invert_mod(q).into();
        match inv {
            Some(inv) if bool::from(k.is_nonzero() & k.ct_lt(q.as_ref())) => break (k, inv),
            _ => {}
        }
    };
    buf.zeroize();
    // r = (g^k mod p) mod q, with k at its own precision.
    let monty = BoxedMontyParams::new_vartime(p.clone());
    let mut gk =
        BoxedMontyForm::new(g.as_ref().resize(p.bits_precision()), &monty).pow_bounded_exp(&k, qp).retrieve();
    k.zeroize();
    let qw = NonZero::new(q.as_ref().resize(gk.bits_precision())).into_option()?;
    // g^k mod p stays secret (only r is published): constant-time reduction.
    let r = gk.rem(&qw).resize(qp);
    gk.zeroize();
    // s = k^-1 (z + x r) mod q, z the leading octets of H as the crate reads them.
    let z_len = ((q.bit_width() / 8) as usize).min(digest.len());
    let z = BoxedUint::from_be_slice_vartime(&digest[..z_len]).rem_vartime(q).resize(qp);
    let mut x = key.x().as_ref().resize(qp);
    let mut xr = x.mul_mod(&r, q);
    x.zeroize();
    let mut t = xr.add_mod(&z, q);
    xr.zeroize();
    let s = k_inv.mul_mod(&t, q);
    t.zeroize();
    k_inv.zeroize();
    if bool::from(r.is_zero() | s.is_zero()) {
        return None;
    }
    Some((r, s))
}

/// A private signing key. Zeroized on drop by the `rsa`/`dsa` crates; never printed.
///
/// Opaque, like [`PublicKey`]: built from PKCS#8 PEM, components or a generator.
pub struct PrivateKey(Sk);

enum Sk {
    /// RSA.
    Rsa(rsa::PrivateKey),
    /// DSA.
    #[cfg(feature = "dsa")]
    Dsa(dsa::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?}, <redacted>)", self.public_key())
    }
}

impl PrivateKey {
    /// Generates an RSA key of `bits` bits (e = 65537).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for unsupported sizes.
    pub fn generate_rsa<R: CryptoRng + ?Sized>(rng: &mut R, bits: usize) -> Result<Self> {
        rsa::PrivateKey::new(rng, bits).map(|k| PrivateKey(Sk::Rsa(k))).map_err(|_| Error::InvalidKey)
    }

    /// Generates a DSA 2048/256 key with fresh domain parameters (slow: prime generation).
    ///
    /// # Errors
    /// [`Error::Rng`] if the generator fails; [`Error::Unsupported`] without the feature `dsa`.
    pub fn generate_dsa<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self> {
        #[cfg(feature = "dsa")]
        {
            let c = dsa::Components::try_generate_from_rng_with_key_size(rng, dsa::KeySize::DSA_2048_256)
                .map_err(|_| Error::Rng)?;
            dsa::SigningKey::try_generate_from_rng_with_components(rng, c)
                .map(|k| PrivateKey(Sk::Dsa(k)))
                .map_err(|_| Error::Rng)
        }
        #[cfg(not(feature = "dsa"))]
        {
            let _ = rng;
            Err(Error::Unsupported(NO_DSA))
        }
    }

    /// An RSA key from n, e, d (primes recovered, SP 800-56B C.2).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the components do not form a valid key.
    pub fn rsa_from_components(n: &[u8], e: &[u8], d: &[u8]) -> Result<Self> {
        rsa::PrivateKey::from_components(uint(n), uint(e), uint(d), Vec::new())
            .map(|k| PrivateKey(Sk::Rsa(k)))
            .map_err(|_| Error::InvalidKey)
    }

    /// A DSA key from p, q, g, y, x.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the components do not form a valid key; [`Error::Unsupported`]
    /// without the feature `dsa`.
    pub fn dsa_from_components(p: &[u8], q: &[u8], g: &[u8], y: &[u8], x: &[u8]) -> Result<Self> {
        #[cfg(feature = "dsa")]
        {
            let PublicKey(Pk::Dsa(vk)) = PublicKey::dsa(p, q, g, y)? else {
                return Err(Error::InvalidKey);
            };
            dsa::SigningKey::from_components(vk, uint(x))
                .map(|k| PrivateKey(Sk::Dsa(k)))
                .map_err(|_| Error::InvalidKey)
        }
        #[cfg(not(feature = "dsa"))]
        {
            let _ = (p, q, g, y, x);
            Err(Error::Unsupported(NO_DSA))
        }
    }

    /// A private key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), RSA or DSA.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if it is neither an RSA nor a DSA PKCS#8 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        use rsa::pkcs8::DecodePrivateKey;
        if let Ok(k) = rsa::PrivateKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey(Sk::Rsa(k)));
        }
        #[cfg(feature = "dsa")]
        {
            dsa::SigningKey::from_pkcs8_pem(pem)
                .map(|k| PrivateKey(Sk::Dsa(k)))
                .map_err(|_| Error::InvalidKey)
        }
        #[cfg(not(feature = "dsa"))]
        Err(Error::InvalidKey)
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the form [`PrivateKey::from_pkcs8_pem`]
    /// reads. The text is zeroized when dropped.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the encoder fails.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>> {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        match &self.0 {
            Sk::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF),
            #[cfg(feature = "dsa")]
            Sk::Dsa(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|_| Error::InvalidKey)
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        match &self.0 {
            Sk::Rsa(k) => PublicKey(Pk::Rsa(k.to_public_key())),
            #[cfg(feature = "dsa")]
            Sk::Dsa(k) => PublicKey(Pk::Dsa(k.verifying_key().clone())),
        }
    }

    /// Signs `msg` (the octets; hashing is done here).
    ///
    /// # Errors
    /// [`Error::Unsupported`] if `alg` does not fit the key; [`Error::InvalidKey`] if the
    /// primitive fails.
    pub fn sign<R: CryptoRng + ?Sized>(
        &self,
        profile: Profile,
        alg: &SignAlg,
        msg: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        let digest = sha256(msg);
        match (&self.0, alg, profile) {
            // X116-4.5.4-07 X116-8.2-01: rsa-sha256, RSASSA-PKCS1-v1_5 over SHA-256 of the MAC.
            (Sk::Rsa(k), SignAlg::RsaSha256, Profile::Xep) => k
                .sign_with_rng(rng, rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
                .map_err(|_| Error::InvalidKey),
            (Sk::Rsa(k), SignAlg::RsaSha256, Profile::Gajim) => {
                let bits = k.n().as_ref().bits_precision();
                let m = BoxedUint::from_be_slice(&digest, bits).map_err(|_| Error::InvalidKey)?;
                let s =
                    rsa::hazmat::rsa_decrypt_and_check(k, Some(rng), &m).map_err(|_| Error::InvalidKey)?;
                Ok(octets(&s))
            }
            #[cfg(feature = "dsa")]
            (Sk::Dsa(k), SignAlg::DsaSha256, _) => {
                let (r, s) = dsa_sign(k, &digest).ok_or(Error::InvalidKey)?;
                let qlen = k.verifying_key().components().q().bit_width().div_ceil(8) as usize;
                let mut out = fixed(&r.to_be_bytes(), qlen)?;
                out.extend(fixed(&s.to_be_bytes(), qlen)?);
                Ok(out)
            }
            _ => Err(Error::Unsupported("signature algorithm for this key")),
        }
    }
}

/// Left-pads (or trims leading zeros of) a big-endian integer to exactly `len` octets.
#[cfg(feature = "dsa")]
fn fixed(bytes: &[u8], len: usize) -> Result<Vec<u8>> {
    let t = crate::mpi::trim(bytes);
    if t.len() > len {
        return Err(Error::InvalidKey);
    }
    let mut out = vec![0u8; len - t.len()];
    out.extend_from_slice(t);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_and_aliases() {
        assert_eq!("rsa".parse::<SignAlg>().unwrap(), SignAlg::RsaSha256);
        assert_eq!("dsa".parse::<SignAlg>().unwrap(), SignAlg::DsaSha256);
        assert_eq!(
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256".parse::<SignAlg>().unwrap(),
            SignAlg::RsaSha256
        );
        assert_eq!(SignAlg::RsaSha256.to_string(), RSA_SHA256_URI);
        assert_eq!(SignAlg::DsaSha256.to_string(), DSA_SHA256_URI);
        let u: SignAlg = "urn:x".parse().unwrap();
        assert_eq!(u.to_string(), "urn:x");
        assert!(!u.is_supported());
    }

    #[test]
    fn fixed_pads_and_rejects() {
        assert_eq!(fixed(&[0, 0, 5], 2).unwrap(), vec![0, 5]);
        assert!(fixed(&[1, 2, 3], 2).is_err());
    }

    #[cfg(feature = "dsa")]
    /// The DSA 2048/256 key of tests/vectors/identity-keys.json.
    fn dsa_fixture() -> PrivateKey {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/identity-keys.json")).unwrap();
        let h = |f: &str| {
            let s = v["dsa"][f].as_str().unwrap();
            hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
        };
        PrivateKey::dsa_from_components(&h("p"), &h("q"), &h("g"), &h("y"), &h("x")).unwrap()
    }

    #[cfg(feature = "dsa")]
    /// The exponent-sized DSA verification accepts and rejects exactly what the `dsa` crate's
    /// own verification does: valid signatures, single-bit flips spread over r || s and over the
    /// digest, and the boundary values of r and s.
    #[test]
    fn fast_dsa_verification_equals_the_crate() {
        use dsa::signature::hazmat::PrehashVerifier;
        let sk = dsa_fixture();
        let PublicKey(Pk::Dsa(vk)) = sk.public_key() else { panic!("a DSA key") };
        let q = vk.components().q().as_ref().clone();
        let qlen = q.bit_width().div_ceil(8) as usize;
        let crate_says = |digest: &[u8], r: &BoxedUint, s: &BoxedUint| {
            dsa::Signature::from_components(r.clone(), s.clone())
                .is_some_and(|sig| vk.verify_prehash(digest, &sig).is_ok())
        };
        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        let mut checked = 0;
        for i in 0..2u8 {
            let msg = [i; 20];
            let sig = sk.sign(Profile::Xep, &SignAlg::DsaSha256, &msg, &mut rng).unwrap();
            let digest = sha256(&msg);
            let split = |sig: &[u8]| (uint(&sig[..qlen]), uint(&sig[qlen..]));
            let (r, s) = split(&sig);
            assert!(dsa_verify(&vk, &digest, &r, &s) && crate_says(&digest, &r, &s));
            for bit in (0..sig.len() * 8).step_by(13) {
                let mut bad = sig.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let (r, s) = split(&bad);
                assert_eq!(dsa_verify(&vk, &digest, &r, &s), crate_says(&digest, &r, &s), "bit {bit}");
                assert!(!dsa_verify(&vk, &digest, &r, &s));
                checked += 1;
            }
            for bit in (0..digest.len() * 8).step_by(9) {
                let mut d = digest;
                d[bit / 8] ^= 1 << (bit % 8);
                assert!(!dsa_verify(&vk, &d, &r, &s) && !crate_says(&d, &r, &s));
                checked += 1;
            }
            let zero = BoxedUint::zero();
            let one = BoxedUint::one();
            let qm1 = q.wrapping_sub(BoxedUint::one_with_precision(q.bits_precision()));
            for (rr, ss) in [(&zero, &s), (&r, &zero), (&q, &s), (&r, &q), (&one, &s), (&qm1, &s), (&r, &qm1)]
            {
                assert_eq!(dsa_verify(&vk, &digest, rr, ss), crate_says(&digest, rr, ss));
                assert!(!dsa_verify(&vk, &digest, rr, ss));
                checked += 1;
            }
        }
        assert!(checked > 140, "{checked}");
    }

    #[cfg(feature = "dsa")]
    /// Our q-sized DSA signing gives byte for byte the signature of the `dsa` crate's
    /// `sign_prehash` (RFC 6979 is deterministic), over many digests.
    #[test]
    fn fast_dsa_signing_equals_the_crate() {
        use dsa::signature::hazmat::PrehashSigner;
        let sk = dsa_fixture();
        let PrivateKey(Sk::Dsa(k)) = &sk else { panic!("a DSA key") };
        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        for i in 0..12u32 {
            let digest = sha256(&i.to_be_bytes());
            let theirs = k.sign_prehash(&digest).unwrap();
            let (r, s) = dsa_sign(k, &digest).unwrap();
            assert!(
                r.to_be_bytes() == theirs.r().to_be_bytes() && s.to_be_bytes() == theirs.s().to_be_bytes(),
                "digest {i}"
            );
            let ours = sk.sign(Profile::Xep, &SignAlg::DsaSha256, &i.to_be_bytes(), &mut rng).unwrap();
            sk.public_key().verify(Profile::Xep, &SignAlg::DsaSha256, &i.to_be_bytes(), &ours).unwrap();
        }
        // Digests of other lengths than q are read the same way too.
        for digest in [vec![0xffu8; 20], vec![0x01; 48], vec![0u8; 32]] {
            let theirs = k.sign_prehash(&digest).unwrap();
            let (r, s) = dsa_sign(k, &digest).unwrap();
            assert!(
                r.to_be_bytes() == theirs.r().to_be_bytes() && s.to_be_bytes() == theirs.s().to_be_bytes(),
                "{} octets",
                digest.len()
            );
        }
    }
}
