//! Randomness as a parameter: every random value a negotiation consumes comes through
//! [`Entropy`], so tests and vector replays can fix them.

use esession_crypto::{DhKeyPair, DhPool, ModpGroup, Profile, Result};
use rand_core::CryptoRng;
#[cfg(feature = "replay")]
use std::collections::VecDeque;

mod sealed {
    /// Only this crate's sources of randomness are [`super::Entropy`].
    pub trait Sealed {}
}

/// The random values of a negotiation.
///
/// Sealed (X116-7.1-01): the only implementations are [`RngEntropy`] and [`PooledEntropy`] over
/// a `CryptoRng`, and, for replaying recorded negotiations, `hazmat::ScriptedEntropy` (feature
/// `replay`). An application cannot feed a negotiation values of its own:
///
/// ```compile_fail
/// use esession_crypto::{DhKeyPair, ModpGroup, Profile, Result};
/// struct Fixed;
/// impl esession_negotiate::Entropy for Fixed {
///     fn nonce(&mut self) -> Vec<u8> { vec![0; 32] }
///     fn dh(&mut self, g: ModpGroup) -> Result<DhKeyPair> { DhKeyPair::from_exponent(g, &[2]) }
///     fn counter(&mut self, _: Profile) -> u128 { 0 }
///     fn bytes(&mut self, n: usize) -> Vec<u8> { vec![0; n] }
///     fn rng(&mut self) -> &mut dyn rand_core::CryptoRng { unimplemented!() }
/// }
/// ```
pub trait Entropy: sealed::Sealed {
    /// An ESession ID (N_A or N_B).
    fn nonce(&mut self) -> Vec<u8>;
    /// A fresh DH key pair for `group`.
    ///
    /// # Errors
    /// An unsupported group.
    fn dh(&mut self, group: ModpGroup) -> Result<DhKeyPair>;
    /// C_A, chosen by Bob.
    fn counter(&mut self, profile: Profile) -> u128;
    /// Random octets (rshash decoys, a random srshash).
    fn bytes(&mut self, len: usize) -> Vec<u8>;
    /// A generator for what needs no recording (RSA blinding when signing).
    fn rng(&mut self) -> &mut dyn CryptoRng;
}

/// Nonces are 32 octets (I7).
pub const NONCE_LEN: usize = 32;

/// [`Entropy`] from a cryptographically secure generator.
// X116-7.1-01: every random value of a negotiation (nonces, exponents, C_A, decoys, srshash,
// signature blinding) comes from a `CryptoRng`.
pub struct RngEntropy<'a, R: CryptoRng>(pub &'a mut R);

impl<R: CryptoRng> sealed::Sealed for RngEntropy<'_, R> {}

impl<R: CryptoRng> Entropy for RngEntropy<'_, R> {
    fn nonce(&mut self) -> Vec<u8> {
        self.bytes(NONCE_LEN)
    }

    fn dh(&mut self, group: ModpGroup) -> Result<DhKeyPair> {
        DhKeyPair::generate(group, self.0)
    }

    fn counter(&mut self, profile: Profile) -> u128 {
        let mut b = [0u8; 16];
        self.0.fill_bytes(&mut b);
        let c = u128::from_be_bytes(b);
        match profile {
            Profile::Xep => c,
            // Gajim's receiver MACs the 16-octet counter: keep C_A and C_B = C_A xor 2^127 at or
            // above 2^120 so their minimal encodings are 16 octets too (ARCHITECTURE.md).
            Profile::Gajim => c | (1 << 126),
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.0.fill_bytes(&mut v);
        v
    }

    fn rng(&mut self) -> &mut dyn CryptoRng {
        self.0
    }
}

/// [`Entropy`] that takes Diffie-Hellman key pairs from a [`DhPool`] filled in advance, and
/// generates one on the spot only when the pool has none for the group. Everything else comes
/// from the generator. Refill the pool between negotiations with [`DhPool::refill`] (or from a
/// background thread, as esession-xmpp does); each pooled pair is used once.
///
/// ```
/// use esession_crypto::{DhPool, ModpGroup};
/// use esession_negotiate::{Config, Initiator, Mode, PooledEntropy};
/// use std::sync::Arc;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
/// let cfg = Arc::new(Config::default());
/// let mut pool = DhPool::new(&cfg.provider.modp, 1)?;
/// pool.refill(&mut rng)?; // off the critical path
/// let mut alice = Initiator::new(cfg.clone(), esession_negotiate::Jid::new("bob@example.org/laptop")?, "thread-1");
/// alice.start(Mode::Four, &mut PooledEntropy { rng: &mut rng, pool: &mut pool })?;
/// // One pair of every offered group went into the request; none is left for the next one.
/// assert!(cfg.provider.modp.iter().all(|g| pool.available(*g) == 0));
/// # Ok(()) }
/// ```
pub struct PooledEntropy<'a, R: CryptoRng, P: DhSource + ?Sized = DhPool> {
    /// The generator for nonces, counters, decoys and pairs the pool lacks.
    pub rng: &'a mut R,
    /// The key pairs prepared in advance.
    pub pool: &'a mut P,
}

/// Where [`PooledEntropy`] takes pre-generated key pairs from: a [`DhPool`], `None` (no pool), or
/// a shared pool such as esession-xmpp's background-filled `KeyPool`.
pub trait DhSource {
    /// A pre-generated pair for `group`, handed out once, or `None`.
    fn take(&mut self, group: ModpGroup) -> Option<DhKeyPair>;
}

impl DhSource for DhPool {
    fn take(&mut self, group: ModpGroup) -> Option<DhKeyPair> {
        DhPool::take(self, group)
    }
}

impl<S: DhSource> DhSource for Option<S> {
    fn take(&mut self, group: ModpGroup) -> Option<DhKeyPair> {
        self.as_mut().and_then(|s| s.take(group))
    }
}

impl<R: CryptoRng, P: DhSource + ?Sized> sealed::Sealed for PooledEntropy<'_, R, P> {}

impl<R: CryptoRng, P: DhSource + ?Sized> Entropy for PooledEntropy<'_, R, P> {
    fn nonce(&mut self) -> Vec<u8> {
        RngEntropy(&mut *self.rng).nonce()
    }

    fn dh(&mut self, group: ModpGroup) -> Result<DhKeyPair> {
        match self.pool.take(group) {
            Some(pair) => Ok(pair),
            None => DhKeyPair::generate(group, self.rng),
        }
    }

    fn counter(&mut self, profile: Profile) -> u128 {
        RngEntropy(&mut *self.rng).counter(profile)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        RngEntropy(&mut *self.rng).bytes(len)
    }

    fn rng(&mut self) -> &mut dyn CryptoRng {
        self.rng
    }
}

/// [`Entropy`] whose draws the caller fixes (hazmat: vector replays and tests). Each value left
/// `None` (or empty) is drawn from `rng` as [`RngEntropy`] would.
#[cfg(feature = "replay")]
pub struct ScriptedEntropy<R: CryptoRng> {
    /// Every nonce (N_A, N_B).
    pub nonce: Option<Vec<u8>>,
    /// C_A.
    pub counter: Option<u128>,
    /// The DH exponent of a group.
    pub by_group: Vec<(ModpGroup, Vec<u8>)>,
    /// DH exponents in order, for groups `by_group` does not list.
    pub queue: VecDeque<Vec<u8>>,
    /// The octet every random byte string (decoys, a random srshash) is filled with.
    pub fill: Option<u8>,
    /// When true, a DH draw for which no exponent is scripted fails (`Error::Rng`) instead of
    /// generating one: a replay must not run on values it was not given.
    pub strict: bool,
    /// Everything else.
    pub rng: R,
}

#[cfg(feature = "replay")]
impl<R: CryptoRng> ScriptedEntropy<R> {
    /// Nothing scripted: every draw from `rng`.
    pub fn new(rng: R) -> Self {
        Self {
            nonce: None,
            counter: None,
            by_group: Vec::new(),
            queue: VecDeque::new(),
            fill: None,
            strict: false,
            rng,
        }
    }
}

#[cfg(feature = "replay")]
impl<R: CryptoRng> sealed::Sealed for ScriptedEntropy<R> {}

#[cfg(feature = "replay")]
impl<R: CryptoRng> Entropy for ScriptedEntropy<R> {
    fn nonce(&mut self) -> Vec<u8> {
        match &self.nonce {
            Some(n) => n.clone(),
            None => RngEntropy(&mut self.rng).nonce(),
        }
    }

    fn dh(&mut self, group: ModpGroup) -> Result<DhKeyPair> {
        let x = match self.by_group.iter().find(|(g, _)| *g == group) {
            Some((_, x)) => Some(x.clone()),
            None => self.queue.pop_front(),
        };
        match x {
            Some(x) => DhKeyPair::from_exponent(group, &x),
            None if self.strict => Err(esession_crypto::Error::Rng),
            None => DhKeyPair::generate(group, &mut self.rng),
        }
    }

    fn counter(&mut self, profile: Profile) -> u128 {
        match self.counter {
            Some(c) => c,
            None => RngEntropy(&mut self.rng).counter(profile),
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        match self.fill {
            Some(b) => vec![b; len],
            None => RngEntropy(&mut self.rng).bytes(len),
        }
    }

    fn rng(&mut self) -> &mut dyn CryptoRng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use esession_crypto::testing::TestRng;

    const G: ModpGroup = ModpGroup::G1;

    /// A `PooledEntropy` draws nonces, counters and octets from its generator exactly as
    /// `RngEntropy` does, and key pairs from its pool first.
    #[test]
    fn pooled_entropy_draws_from_its_generator_and_its_pool() {
        for profile in [Profile::Xep, Profile::Gajim] {
            let (mut r1, mut r2) = (TestRng::new(1), TestRng::new(1));
            let mut none: Option<DhPool> = None;
            let mut pooled = PooledEntropy { rng: &mut r1, pool: &mut none };
            let mut plain = RngEntropy(&mut r2);
            assert_eq!(pooled.nonce(), plain.nonce());
            assert_eq!(pooled.counter(profile), plain.counter(profile));
            let (a, b) = (pooled.bytes(24), plain.bytes(24));
            assert_eq!((a.len(), &a), (24, &b));
            assert_eq!(pooled.dh(G).unwrap().public(), plain.dh(G).unwrap().public());
        }
        let mut rng = TestRng::new(2);
        let mut pool = DhPool::new(&[G], 1).unwrap();
        pool.refill(&mut rng).unwrap();
        let mut src = Some(pool);
        assert!(DhSource::take(&mut src, G).is_some(), "the pooled pair");
        assert!(DhSource::take(&mut src, G).is_none(), "used once");
        assert!(DhSource::take(&mut None::<DhPool>, G).is_none());
    }

    /// C_A in the Gajim profile keeps bit 126 set (C_A and C_B = C_A xor 2^127 at or above
    /// 2^120, ARCHITECTURE.md); in the XEP profile it is the generator's 128 bits.
    #[test]
    fn gajim_counters_stay_high() {
        let mut rng = TestRng::new(3);
        let mut e = RngEntropy(&mut rng);
        let gajim: Vec<u128> = (0..64).map(|_| e.counter(Profile::Gajim)).collect();
        assert!(gajim.iter().all(|c| c & (1 << 126) != 0 && (c ^ (1 << 127)) >= 1 << 120));
        let xep: Vec<u128> = (0..64).map(|_| e.counter(Profile::Xep)).collect();
        assert!(xep.iter().any(|c| c & (1 << 126) == 0), "64 draws, each with bit 126 set");
    }

    /// `ScriptedEntropy` gives what is scripted and draws the rest; strict, it refuses a key pair
    /// it was not given.
    #[cfg(feature = "replay")]
    #[test]
    fn scripted_entropy_gives_what_is_scripted() {
        let x = DhKeyPair::generate(G, &mut TestRng::new(4)).unwrap();
        let mut e = ScriptedEntropy::new(TestRng::new(5));
        e.nonce = Some(vec![9; 20]);
        e.counter = Some(42);
        e.fill = Some(7);
        e.by_group = vec![(G, x.export_secret().expose_secret().to_vec())];
        assert_eq!(e.nonce(), vec![9; 20]);
        assert_eq!(e.counter(Profile::Gajim), 42);
        assert_eq!(e.bytes(3), vec![7; 3]);
        assert_eq!(e.dh(G).unwrap().public(), x.public());
        let mut free = ScriptedEntropy::new(TestRng::new(6));
        let mut same = TestRng::new(6);
        let mut plain = RngEntropy(&mut same);
        assert_eq!(free.nonce(), plain.nonce());
        assert_eq!(free.counter(Profile::Xep), plain.counter(Profile::Xep));
        assert_eq!(free.bytes(5), plain.bytes(5));
        assert!(free.dh(G).is_ok(), "not strict: generated");
        free.queue.push_back(x.export_secret().expose_secret().to_vec());
        assert_eq!(free.dh(G).unwrap().public(), x.public(), "the queue");
        free.strict = true;
        assert!(matches!(free.dh(G), Err(esession_crypto::Error::Rng)), "strict: nothing left");
    }
}
