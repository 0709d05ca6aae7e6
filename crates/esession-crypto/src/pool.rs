//! A pool of pre-generated Diffie-Hellman key pairs, so that starting a negotiation costs no
//! exponentiation on the critical path.
//!
//! An initiator offering all eight groups needs eight fresh key pairs before its first message
//! (XEP-0116 §4.3: a hash of e, or e itself, per group); generating them on the spot costs tens
//! of milliseconds, the 8192-bit group alone about half of it. A [`DhPool`] holds up to `depth`
//! pairs per group. [`DhPool::take`] moves a pair out (so each exponent is used by one
//! negotiation only) and the caller refills off the critical path: [`DhPool::refill`] in one call,
//! or one pair at a time with [`DhPool::wanted`] and [`DhPool::put`], which lets a background
//! thread generate without holding a lock. Pairs left in the pool are zeroized when it drops.
//!
//! ```
//! use esession_crypto::{DhPool, ModpGroup};
//!
//! # fn main() -> Result<(), esession_crypto::Error> {
//! let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
//! let mut pool = DhPool::new(&[ModpGroup::G14, ModpGroup::G5], 2)?;
//! assert_eq!(pool.refill(&mut rng)?, 4);
//! let pair = pool.take(ModpGroup::G14).expect("filled");
//! assert_eq!(pool.available(ModpGroup::G14), 1);
//! assert_eq!(pool.wanted(), Some(ModpGroup::G14));
//! # drop(pair);
//! # Ok(()) }
//! ```

use crate::dh::DhKeyPair;
use crate::error::{Error, Result};
use crate::modp::ModpGroup;
use core::fmt;
use rand_core::CryptoRng;
use std::collections::VecDeque;

/// Pre-generated key pairs per group; see the [module documentation](self).
pub struct DhPool {
    depth: usize,
    slots: Vec<(ModpGroup, VecDeque<DhKeyPair>)>,
}

impl fmt::Debug for DhPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (g, q) in &self.slots {
            m.entry(&g.number(), &q.len());
        }
        m.finish()
    }
}

impl DhPool {
    /// An empty pool that keeps up to `depth` pairs for each of `groups`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if a group is not implemented by this crate.
    pub fn new(groups: &[ModpGroup], depth: usize) -> Result<Self> {
        let mut slots: Vec<(ModpGroup, VecDeque<DhKeyPair>)> = Vec::new();
        for g in groups {
            if !g.is_supported() {
                return Err(Error::Unsupported("MODP group"));
            }
            if !slots.iter().any(|(s, _)| s == g) {
                slots.push((*g, VecDeque::with_capacity(depth)));
            }
        }
        Ok(Self { depth, slots })
    }

    /// The groups this pool keeps pairs for.
    pub fn groups(&self) -> impl Iterator<Item = ModpGroup> + '_ {
        self.slots.iter().map(|(g, _)| *g)
    }

    /// Pairs per group the pool fills up to.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// How many pairs for `group` are ready.
    #[must_use]
    pub fn available(&self, group: ModpGroup) -> usize {
        self.slots.iter().find(|(g, _)| *g == group).map_or(0, |(_, q)| q.len())
    }

    /// Moves one pre-generated pair for `group` out of the pool, or `None` if none is ready (the
    /// caller then generates one itself). A pair is never handed out twice.
    pub fn take(&mut self, group: ModpGroup) -> Option<DhKeyPair> {
        self.slots.iter_mut().find(|(g, _)| *g == group).and_then(|(_, q)| q.pop_front())
    }

    /// The group whose supply is lowest relative to the depth, or `None` when the pool is full.
    /// Smaller groups win ties, as they are cheapest to fill.
    #[must_use]
    pub fn wanted(&self) -> Option<ModpGroup> {
        self.slots
            .iter()
            .filter(|(_, q)| q.len() < self.depth)
            .min_by_key(|(g, q)| (q.len(), g.bits().unwrap_or(u32::MAX)))
            .map(|(g, _)| *g)
    }

    /// Adds a pair generated elsewhere. Returns it back if its group is not pooled or already
    /// full (the caller drops it, which zeroizes it).
    ///
    /// # Errors
    /// The pair itself, when the pool has no room for it.
    pub fn put(&mut self, pair: DhKeyPair) -> core::result::Result<(), DhKeyPair> {
        let depth = self.depth;
        match self.slots.iter_mut().find(|(g, _)| *g == pair.group()) {
            Some((_, q)) if q.len() < depth => {
                q.push_back(pair);
                Ok(())
            }
            _ => Err(pair),
        }
    }

    /// Generates one pair for [`Self::wanted`]'s group. Returns whether the pool had room.
    ///
    /// # Errors
    /// Only what [`DhKeyPair::generate`] returns for a supported group (nothing in practice).
    pub fn refill_one<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<bool> {
        let Some(group) = self.wanted() else { return Ok(false) };
        let pair = DhKeyPair::generate(group, rng)?;
        // `wanted` just said there is room.
        let _ = self.put(pair);
        Ok(true)
    }

    /// Fills every group up to the depth; returns how many pairs were generated.
    ///
    /// # Errors
    /// As [`Self::refill_one`].
    pub fn refill<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<usize> {
        let mut n = 0;
        while self.refill_one(rng)? {
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
        getrandom::rand_core::UnwrapErr(getrandom::SysRng)
    }

    #[test]
    fn fills_to_depth_and_hands_each_pair_out_once() {
        let mut r = rng();
        let mut pool = DhPool::new(&[ModpGroup::G2, ModpGroup::G1, ModpGroup::G2], 3).unwrap();
        assert_eq!(pool.groups().collect::<Vec<_>>(), [ModpGroup::G2, ModpGroup::G1]);
        assert_eq!(pool.wanted(), Some(ModpGroup::G1), "the cheaper group first on a tie");
        assert_eq!(pool.refill(&mut r).unwrap(), 6);
        assert_eq!(pool.refill(&mut r).unwrap(), 0, "full");
        assert_eq!(pool.wanted(), None);
        let mut seen = Vec::new();
        while let Some(p) = pool.take(ModpGroup::G2) {
            assert_eq!(p.group(), ModpGroup::G2);
            seen.push(p.public().to_vec());
        }
        assert_eq!(seen.len(), 3);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "three distinct pairs");
        assert!(pool.take(ModpGroup::G2).is_none());
        assert!(pool.take(ModpGroup::G14).is_none(), "not pooled");
        assert_eq!(pool.available(ModpGroup::G1), 3);
        assert_eq!(pool.wanted(), Some(ModpGroup::G2));
    }

    #[test]
    fn put_refuses_foreign_groups_and_overflow() {
        let mut r = rng();
        let mut pool = DhPool::new(&[ModpGroup::G1], 1).unwrap();
        let other = DhKeyPair::generate(ModpGroup::G2, &mut r).unwrap();
        assert!(pool.put(other).is_err());
        assert!(pool.put(DhKeyPair::generate(ModpGroup::G1, &mut r).unwrap()).is_ok());
        assert!(pool.put(DhKeyPair::generate(ModpGroup::G1, &mut r).unwrap()).is_err());
        assert!(!pool.refill_one(&mut r).unwrap());
        assert!(DhPool::new(&[ModpGroup::Ec2n3], 1).is_err());
    }

    #[test]
    fn pooled_pairs_agree() {
        let mut r = rng();
        let mut pool = DhPool::new(&[ModpGroup::G5], 2).unwrap();
        pool.refill(&mut r).unwrap();
        let a = pool.take(ModpGroup::G5).unwrap();
        let b = pool.take(ModpGroup::G5).unwrap();
        let (ea, eb) = (a.public().to_vec(), b.public().to_vec());
        assert_eq!(a.agree(&eb).unwrap().expose_secret(), b.agree(&ea).unwrap().expose_secret());
        assert_eq!(format!("{pool:?}"), "{5: 0}");
    }
}
