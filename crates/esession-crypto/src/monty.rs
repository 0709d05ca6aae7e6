//! Montgomery squaring and variable-base exponentiation for the MODP groups.
//!
//! crypto-bigint 0.7 squares in Montgomery form with its general multiplication (2n² limb
//! products) except at 24, 27, 32 and 35 limbs, where it has a dedicated kernel. An exponentiation
//! is four fifths squarings, so e^y in the groups of 3072 bits and more (48-128 limbs) paid a
//! full multiplication for every squaring. [`Squarer`] computes the square with each
//! off-diagonal product once (n²/2 products), doubles, adds the diagonal and then performs the
//! Montgomery reduction (n² products, two rows per pass over p): 1.5n² in all, about a fifth
//! less time than the multiplication at 48-128 limbs and as fast as crypto-bigint's own kernel at
//! 24 and 32. [`pow`] (e^y) and the comb ([`crate::comb`], g^x) square with it; their
//! multiplications stay crypto-bigint's.
//!
//! Everything here runs in constant time in the values: loops depend only on the (public) limb
//! count and exponent length, the final subtraction of p is a masked select, and the window of
//! the exponent picks its table entry by scanning the whole table with constant-time selects.
//! Written to be contributed upstream as crypto-bigint's dedicated squaring for more sizes.

use crypto_bigint::modular::BoxedMontyForm;
use crypto_bigint::{BoxedUint, CtAssign, CtEq, Limb, MontyForm, MontyMultiplier, WideWord, Word};
use zeroize::Zeroize;

/// -p⁻¹ mod 2^W for an odd p (Newton's iteration: each step doubles the correct low bits).
pub(crate) fn mod_neg_inv(p: &BoxedUint) -> Word {
    let p0 = p.as_limbs()[0].0;
    debug_assert!(p0 & 1 == 1);
    // p0 is its own inverse modulo 8: three bits are right to start with.
    let mut inv = p0;
    for _ in 0..6 {
        inv = inv.wrapping_mul((2 as Word).wrapping_sub(p0.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// Montgomery squaring modulo one odd p, with its scratch space (zeroized on drop).
pub(crate) struct Squarer<'a> {
    modulus: &'a [Limb],
    n0: Word,
    /// The double-width square being reduced.
    wide: Vec<Word>,
}

impl<'a> Squarer<'a> {
    /// `n0` is [`mod_neg_inv`] of `modulus`.
    pub(crate) fn new(modulus: &'a BoxedUint, n0: Word) -> Self {
        let modulus = modulus.as_limbs();
        Self { modulus, n0, wide: vec![0; 2 * modulus.len()] }
    }

    /// a ← a² R⁻¹ mod p, for a < p in Montgomery form.
    pub(crate) fn square_assign(&mut self, a: &mut BoxedUint) {
        let a = a.as_mut_limbs();
        match self.modulus.len() {
            12 => self.sized::<12>(a),
            16 => self.sized::<16>(a),
            24 => self.sized::<24>(a),
            32 => self.sized::<32>(a),
            48 => self.sized::<48>(a),
            64 => self.sized::<64>(a),
            96 => self.sized::<96>(a),
            128 => self.sized::<128>(a),
            _ => self.square_slices(a),
        }
    }

    /// The kernel with a compile-time limb count (no bounds checks, unrolled inner loops).
    fn sized<const N: usize>(&mut self, a: &mut [Limb]) {
        let (Ok(fixed), Ok(m)) = (<&mut [Limb; N]>::try_from(&mut *a), <&[Limb; N]>::try_from(self.modulus))
        else {
            // Unreachable: the caller dispatched on the modulus' limb count, and operands have
            // the modulus' precision. Still correct if it were reached.
            return self.square_slices(a);
        };
        square_reduce(fixed, m, self.n0, &mut self.wide);
    }

    fn square_slices(&mut self, a: &mut [Limb]) {
        square_reduce(a, self.modulus, self.n0, &mut self.wide);
    }
}

impl Drop for Squarer<'_> {
    fn drop(&mut self) {
        self.wide.zeroize();
    }
}

#[inline(always)]
fn mac(a: Word, b: Word, acc: Word, carry: Word) -> (Word, Word) {
    // (2^W - 1)² + 2(2^W - 1) = 2^2W - 1: never overflows the wide word.
    let t = WideWord::from(a) * WideWord::from(b) + WideWord::from(acc) + WideWord::from(carry);
    (t as Word, (t >> Word::BITS) as Word)
}

#[inline(always)]
fn square_reduce(a: &mut [Limb], m: &[Limb], n0: Word, t: &mut [Word]) {
    let n = m.len();
    debug_assert!(a.len() == n && t.len() == 2 * n);
    t.fill(0);

    // Off-diagonal products a_i a_j, i < j, each once.
    for i in 0..n {
        let ai = a[i].0;
        let mut carry = 0;
        for (tk, aj) in t[2 * i + 1..i + n].iter_mut().zip(&a[i + 1..]) {
            (*tk, carry) = mac(ai, aj.0, *tk, carry);
        }
        t[i + n] = carry;
    }

    // Double them and add the diagonal squares a_i².
    let mut top = 0;
    for w in t.iter_mut() {
        let next = *w >> (Word::BITS - 1);
        *w = (*w << 1) | top;
        top = next;
    }
    let mut carry = 0;
    for (pair, ai) in t.chunks_exact_mut(2).zip(a.iter()) {
        let (lo, hi) = mac(ai.0, ai.0, pair[0], carry);
        pair[0] = lo;
        let s = WideWord::from(pair[1]) + WideWord::from(hi);
        pair[1] = s as Word;
        carry = (s >> Word::BITS) as Word;
    }

    // Montgomery reduction: add q·m·2^(iW) to clear limb i, for every i < n, then divide by
    // R = 2^(nW). Two limbs are cleared per pass over m (q0 for limb i, q1 for limb i + 1,
    // chosen once q0's row has reached it), so t is loaded and stored once per two products.
    // Write B = 2^W. Every carry below stays <= 2B - 2, so carry + (B - 1)² fits a wide word.
    let mut overflow: Word = 0; // the carry out of column i + n + 1, owed to the next pass.
    let mut i = 0;
    while i + 1 < n {
        let q0 = t[i].wrapping_mul(n0);
        let x = WideWord::from(q0) * WideWord::from(m[0].0) + WideWord::from(t[i]);
        let y = WideWord::from(q0) * WideWord::from(m[1].0) + WideWord::from(t[i + 1]) + (x >> Word::BITS);
        let q1 = (y as Word).wrapping_mul(n0);
        let z = WideWord::from(q1) * WideWord::from(m[0].0) + WideWord::from(y as Word);
        let mut carry = (y >> Word::BITS) + (z >> Word::BITS);
        for (tk, mm) in t[i + 2..i + n].iter_mut().zip(m.windows(2).skip(1)) {
            let a = WideWord::from(q0) * WideWord::from(mm[1].0) + WideWord::from(*tk);
            let b = WideWord::from(q1) * WideWord::from(mm[0].0) + carry;
            let low = WideWord::from(a as Word) + WideWord::from(b as Word);
            *tk = low as Word;
            carry = (a >> Word::BITS) + (b >> Word::BITS) + (low >> Word::BITS);
        }
        let p = WideWord::from(q1) * WideWord::from(m[n - 1].0) + carry;
        let low = WideWord::from(p as Word) + WideWord::from(t[i + n]) + WideWord::from(overflow);
        t[i + n] = low as Word;
        let high = WideWord::from(t[i + n + 1]) + (p >> Word::BITS) + (low >> Word::BITS);
        t[i + n + 1] = high as Word;
        overflow = (high >> Word::BITS) as Word;
        i += 2;
    }
    if i < n {
        // An odd limb count leaves one row.
        let u = t[i].wrapping_mul(n0);
        let mut carry = 0;
        for (tk, mj) in t[i..i + n].iter_mut().zip(m) {
            (*tk, carry) = mac(u, mj.0, *tk, carry);
        }
        let s = WideWord::from(t[i + n]) + WideWord::from(carry) + WideWord::from(overflow);
        t[i + n] = s as Word;
        overflow = (s >> Word::BITS) as Word;
    }

    // a < p gives a result below 2p: subtract p once if it overflowed R or is at least p.
    let hi = &t[n..];
    let mut borrow: Word = 0;
    for (out, (&h, mj)) in a.iter_mut().zip(hi.iter().zip(m)) {
        let d = WideWord::from(h).wrapping_sub(WideWord::from(mj.0)).wrapping_sub(WideWord::from(borrow));
        out.0 = d as Word;
        borrow = ((d >> Word::BITS) as Word) & 1;
    }
    // Keep the difference when there was an overflow or no borrow; else the unsubtracted value.
    let keep_hi = (borrow & !overflow & 1).wrapping_neg();
    for (out, &h) in a.iter_mut().zip(hi) {
        out.0 = (h & keep_hi) | (out.0 & !keep_hi);
    }
}

/// Bit `pos` of an exponent's little-endian limbs, 0 beyond them. Positions are public; the bit
/// itself only flows through arithmetic.
pub(crate) fn bit_at(limbs: &[Limb], pos: u32) -> Word {
    let word = limbs.get((pos / Word::BITS) as usize).map_or(0, |l| l.0);
    (word >> (pos % Word::BITS)) & 1
}

/// `out` ← entry `idx` of `table`, by scanning every entry with a constant-time select (neither
/// the access pattern nor the timing depends on `idx`, which is wiped afterwards).
pub(crate) fn select_ct<'a>(out: &mut BoxedUint, table: impl Iterator<Item = &'a BoxedUint>, mut idx: Word) {
    for (i, t) in table.enumerate() {
        out.ct_assign(t, (i as Word).ct_eq(&idx));
    }
    idx.zeroize();
}

/// Bits per window of [`pow`] for an exponent of `bits` bits: 2^w - 2 multiplications build the
/// table, then one follows every w squarings. 4 is best up to 320 bits, 5 above.
fn window_for(bits: u32) -> u32 {
    if bits <= 320 { 4 } else { 5 }
}

/// base^x mod p for an exponent of at most `bits` significant bits (a public bound), in
/// constant time in x. `n0` is [`mod_neg_inv`] of p.
pub(crate) fn pow(base: &BoxedMontyForm, x: &BoxedUint, bits: u32, n0: Word) -> BoxedMontyForm {
    let params = base.params();
    let mut mul = <BoxedMontyForm as MontyForm>::Multiplier::from(params);
    let mut sq = Squarer::new(params.modulus().as_ref(), n0);

    // table[i] = base^i.
    let window = window_for(bits);
    let mut table: Vec<BoxedMontyForm> = Vec::with_capacity(1 << window);
    table.push(BoxedMontyForm::one(params));
    table.push(base.clone());
    for i in 2..1 << window {
        let mut t = table[i - 1].clone();
        MontyMultiplier::mul_assign(&mut mul, &mut t, base);
        table.push(t);
    }

    let limbs = x.as_limbs();
    let windows = bits.div_ceil(window);
    let mut acc = BoxedMontyForm::one(params);
    let mut entry = BoxedMontyForm::one(params);
    for w in (0..windows).rev() {
        if w + 1 < windows {
            for _ in 0..window {
                sq.square_assign(acc.as_montgomery_mut());
            }
        }
        let mut idx: Word = 0;
        for k in 0..window {
            idx |= bit_at(limbs, w * window + k) << k;
        }
        select_ct(entry.as_montgomery_mut(), table.iter().map(BoxedMontyForm::as_montgomery), idx);
        MontyMultiplier::mul_assign(&mut mul, &mut acc, &entry);
    }
    entry.zeroize();
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modp::ModpGroup;
    use crypto_bigint::modular::BoxedMontyParams;
    use crypto_bigint::{ConcatenatingMul, Odd, Resize};

    /// Pseudo-random words (xorshift), the top word's high half cleared so the value is below
    /// any of our moduli of that many limbs.
    fn rand_words(nlimbs: usize, seed: &mut u64) -> BoxedUint {
        let mut words: Vec<Word> = (0..nlimbs)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed
            })
            .collect();
        let last = words.len() - 1;
        words[last] >>= Word::BITS / 2;
        BoxedUint::from_words(words)
    }

    /// Edge operands of every limb count we dispatch on: 0, 1, p - 1, p - 2, values with all
    /// ones in the low limbs, and random ones; squaring equals crypto-bigint's multiplication.
    #[test]
    fn squaring_equals_multiplication() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for group in ModpGroup::SUPPORTED {
            let params = group.params().expect("supported");
            let p = params.p();
            let monty = params.monty();
            let n0 = mod_neg_inv(p);
            let mut mul = <BoxedMontyForm as MontyForm>::Multiplier::from(monty);
            let mut sq = Squarer::new(p, n0);
            let one = BoxedUint::one_with_precision(p.bits_precision());
            let mut cases = vec![
                BoxedUint::zero_with_precision(p.bits_precision()),
                one.clone(),
                p.wrapping_sub(&one),
                p.wrapping_sub(&one).wrapping_sub(&one),
                BoxedUint::from_words(
                    (0..p.nlimbs()).map(|i| if i < p.nlimbs() / 2 { Word::MAX } else { 0 }),
                ),
            ];
            for _ in 0..20 {
                cases.push(rand_words(p.nlimbs(), &mut seed));
            }
            for v in cases {
                let a = BoxedMontyForm::new(v, monty);
                let mut want = a.clone();
                MontyMultiplier::mul_assign(&mut mul, &mut want, &a);
                let mut got = a.as_montgomery().clone();
                sq.square_assign(&mut got);
                assert!(bool::from(got.ct_eq(want.as_montgomery())), "{group:?}");
                assert!(got < *p, "{group:?}: reduced below p");
            }
        }
    }

    /// The slice kernel (limb counts without a sized instance) on a small odd modulus whose
    /// results reach R before the final subtraction (counted by a reference reduction), against
    /// crypto-bigint.
    #[test]
    fn slice_kernel_and_overflow() {
        let mut seed = 7u64;
        for nlimbs in [1usize, 2, 3, 5] {
            // p = R - 1 - 2^63 ... odd and close to R: squares of values near p overflow R
            // before the final subtraction.
            let p =
                BoxedUint::from_words((0..nlimbs).map(|i| if i == 0 { Word::MAX - 58 } else { Word::MAX }));
            let params = BoxedMontyParams::new(Odd::new(p.clone()).expect("odd"));
            let n0 = mod_neg_inv(&p);
            let mut mul = <BoxedMontyForm as MontyForm>::Multiplier::from(&params);
            let mut sq = Squarer::new(&p, n0);
            let one = BoxedUint::one_with_precision(p.bits_precision());
            let mut cases = vec![p.wrapping_sub(&one), p.wrapping_sub(&one).wrapping_sub(&one)];
            for _ in 0..50 {
                let r = rand_words(nlimbs, &mut seed);
                cases.push(r.wrapping_add(p.wrapping_sub(&one).shr(1)));
            }
            let mut overflowed = 0;
            for v in cases {
                let u = redc(&v.concatenating_mul(&v), &p, n0);
                let a = BoxedMontyForm::from_montgomery(v, &params);
                let mut want = a.clone();
                MontyMultiplier::mul_assign(&mut mul, &mut want, &a);
                let mut got = a.as_montgomery().clone();
                sq.square_assign(&mut got);
                assert!(bool::from(got.ct_eq(want.as_montgomery())), "{nlimbs} limbs");
                // The reference reduction is right: u is the result, or the result plus p.
                let wide_p = p.clone().resize(u.bits_precision());
                let reduced = if u >= wide_p { u.wrapping_sub(&wide_p) } else { u.clone() };
                assert_eq!(reduced.resize(p.bits_precision()), *want.as_montgomery());
                if u.as_words()[nlimbs] != 0 {
                    overflowed += 1;
                }
            }
            // The case this test is for did occur.
            assert!(overflowed > 0, "{nlimbs} limbs: no result reached R");
        }
    }

    /// The Montgomery reduction of `t` before the final subtraction of p, (t + m p) / R with the
    /// unique m < R making it exact, in n + 1 limbs: computed word by word with crypto-bigint's
    /// arithmetic. Limb n is nonzero exactly when it reached R.
    fn redc(t: &BoxedUint, p: &BoxedUint, n0: Word) -> BoxedUint {
        let n = p.nlimbs();
        let bits = (2 * n as u32 + 1) * Word::BITS;
        let mut acc = t.clone().resize(bits);
        for i in 0..n {
            let mi = acc.as_words()[i].wrapping_mul(n0);
            let step =
                p.concatenating_mul(&BoxedUint::from_words([mi])).resize(bits).shl(i as u32 * Word::BITS);
            acc = acc.wrapping_add(&step);
        }
        assert!(acc.as_words()[..n].iter().all(|&w| w == 0), "exact division by R");
        BoxedUint::from_words(acc.as_words()[n..].iter().copied())
    }

    /// pow agrees with crypto-bigint's constant-time exponentiation for exponents of every
    /// window alignment, all ones, a single top bit and zero.
    #[test]
    fn pow_equals_crypto_bigint() {
        let mut seed = 0x1234_5678u64;
        for group in ModpGroup::SUPPORTED {
            let params = group.params().expect("supported");
            let p = params.p();
            let n0 = mod_neg_inv(p);
            let base = BoxedMontyForm::new(rand_words(p.nlimbs(), &mut seed), params.monty());
            for bits in [1u32, 4, 5, 6, 64, 255, 256, 320, 641] {
                let prec = bits.div_ceil(Word::BITS) * Word::BITS;
                let ones = BoxedUint::max(prec).shr(prec - bits);
                let top = BoxedUint::one_with_precision(prec).shl(bits - 1);
                let zero = BoxedUint::zero_with_precision(prec);
                let random = rand_words(ones.nlimbs(), &mut seed).bitand(&ones);
                for x in [ones, top, zero, random] {
                    let want = base.pow_bounded_exp(&x, bits);
                    let got = pow(&base, &x, bits, n0);
                    assert!(bool::from(got.as_montgomery().ct_eq(want.as_montgomery())), "{group:?} {bits}");
                }
            }
        }
    }
}
