//! Fixed-base exponentiation g^x for the MODP groups' generator, by the Lim-Lee comb method.
//!
//! g = 2 is the same for every key pair of a group, so the powers g^(2^(j·a)) and all their
//! products can be computed once per process. An exponent of at most h·a bits is then read as h
//! rows of a bits: a squarings and a multiplications by one of 2^h table entries, against about
//! 1.3 × h·a multiplications for the windowed exponentiation of an arbitrary base. The entry is
//! chosen by scanning the whole table with constant-time selects, so neither the memory access
//! pattern nor the timing depends on the exponent beyond its public length class.
//!
//! Exponents longer than the table (only ever given to [`crate::DhKeyPair::from_exponent`], e.g.
//! by test vectors) take the generic path.

use crate::modp::GroupParams;
use crate::monty::{Squarer, bit_at, select_ct};
use crypto_bigint::modular::BoxedMontyForm;
use crypto_bigint::{BoxedUint, MontyForm, MontyMultiplier, Word};
use zeroize::Zeroize;

/// The precomputed table of one group.
pub(crate) struct Comb {
    /// h: rows of the exponent, and log2 of the table size.
    teeth: u32,
    /// a: bits per row.
    spacing: u32,
    /// Entry i = the product of g^(2^(j·a)) over the bits j set in i, in Montgomery form.
    table: Vec<BoxedUint>,
}

impl Comb {
    /// Teeth per group size: a table of 2^h entries costs 2^h selects per step, cheap beside a
    /// multiplication for large moduli.
    fn teeth_for(p_bits: u32) -> u32 {
        if p_bits >= 4096 { 7 } else { 6 }
    }

    /// Builds the table for exponents of up to `max_bits` bits (one exponentiation's work).
    pub(crate) fn build(params: &GroupParams, max_bits: u32) -> Self {
        let teeth = Self::teeth_for(params.bits());
        let spacing = max_bits.div_ceil(teeth);
        let monty = params.monty();
        let mut mul = <BoxedMontyForm as MontyForm>::Multiplier::from(monty);
        let mut bases = Vec::with_capacity(teeth as usize);
        let mut cur = params.generator().clone();
        for j in 0..teeth {
            if j > 0 {
                for _ in 0..spacing {
                    MontyMultiplier::square_assign(&mut mul, &mut cur);
                }
            }
            bases.push(cur.clone());
        }
        let mut table: Vec<BoxedMontyForm> = Vec::with_capacity(1 << teeth);
        table.push(BoxedMontyForm::one(monty));
        for base in &bases {
            for i in 0..table.len() {
                let mut t = table[i].clone();
                MontyMultiplier::mul_assign(&mut mul, &mut t, base);
                table.push(t);
            }
        }
        let table = table.iter().map(|t| t.as_montgomery().clone()).collect();
        Self { teeth, spacing, table }
    }

    /// The largest exponent length this table serves.
    pub(crate) fn max_bits(&self) -> u32 {
        self.teeth * self.spacing
    }

    /// g^x for an exponent of at most [`Self::max_bits`] significant bits (the caller checks
    /// the precision, which is public). Constant time in the value of `x`.
    pub(crate) fn pow(&self, params: &GroupParams, x: &BoxedUint) -> BoxedMontyForm {
        debug_assert!(x.bits_precision() <= self.max_bits());
        let monty = params.monty();
        let mut mul = <BoxedMontyForm as MontyForm>::Multiplier::from(monty);
        let mut sq = Squarer::new(params.p(), params.n0());
        let mut acc = BoxedMontyForm::one(monty);
        let mut entry = BoxedMontyForm::one(monty);
        let limbs = x.as_limbs();
        for k in (0..self.spacing).rev() {
            sq.square_assign(acc.as_montgomery_mut());
            let mut idx: Word = 0;
            for j in 0..self.teeth {
                // Bit positions are public; the bits themselves only flow through arithmetic.
                idx |= bit_at(limbs, j * self.spacing + k) << j;
            }
            select_ct(entry.as_montgomery_mut(), self.table.iter(), idx);
            MontyMultiplier::mul_assign(&mut mul, &mut acc, &entry);
        }
        entry.zeroize();
        acc
    }
}

#[cfg(test)]
mod tests {
    use crate::modp::ModpGroup;
    use crypto_bigint::BoxedUint;

    /// The comb agrees with the generic windowed exponentiation of crypto-bigint for exponents
    /// of every length class it serves, including all-ones, a single bit and zero rows.
    #[test]
    fn comb_equals_generic_exponentiation() {
        for group in [ModpGroup::G1, ModpGroup::G5, ModpGroup::G14] {
            let params = group.params().unwrap();
            let comb = params.comb();
            let max = comb.max_bits();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let exp_bits = group.exponent_bits().unwrap();
            for bits in [64, 256, exp_bits, max / 64 * 64] {
                let nbytes = (bits / 8) as usize;
                let mut cases: Vec<Vec<u8>> = vec![vec![0xff; nbytes], vec![0; nbytes]];
                let mut single = vec![0; nbytes];
                single[nbytes - 1] = 1;
                cases.push(single);
                let mut top = vec![0; nbytes];
                top[0] = 0x80;
                cases.push(top);
                for _ in 0..4 {
                    cases.push((0..nbytes).map(|_| next() as u8).collect());
                }
                for c in cases {
                    let x = BoxedUint::from_be_slice(&c, bits).unwrap();
                    let want = params.generator().pow_bounded_exp(&x, bits).retrieve();
                    let got = comb.pow(params, &x).retrieve();
                    assert!(got == want, "modp {group}, {bits}-bit exponent {c:02x?}");
                }
            }
        }
    }
}
