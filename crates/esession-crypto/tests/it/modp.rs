//! The MODP primes: equal to the RFC text, of the stated size, safe primes, and re-derived from
//! the RFC formula p = 2^B - 2^(B-64) - 1 + 2^64 * (floor(2^(B-130) * pi) + k) with pi computed
//! here by Machin's formula: an independent derivation of every digit.

use esession_crypto::ModpGroup;

/// A little unsigned big integer (little-endian u64 limbs), just what Machin's formula needs.
#[derive(Clone, PartialEq, Debug)]
struct Big(Vec<u64>);

impl Big {
    fn pow2(n: u32) -> Big {
        let mut v = vec![0u64; (n / 64 + 1) as usize];
        v[(n / 64) as usize] = 1 << (n % 64);
        Big(v)
    }
    fn is_zero(&self) -> bool {
        self.0.iter().all(|&x| x == 0)
    }
    fn div_small(&self, d: u64) -> Big {
        let mut out = vec![0u64; self.0.len()];
        let mut rem: u128 = 0;
        for i in (0..self.0.len()).rev() {
            let cur = (rem << 64) | u128::from(self.0[i]);
            out[i] = (cur / u128::from(d)) as u64;
            rem = cur % u128::from(d);
        }
        Big(out)
    }
    fn mul_small(&self, m: u64) -> Big {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut carry: u128 = 0;
        for &x in &self.0 {
            let cur = u128::from(x) * u128::from(m) + carry;
            out.push(cur as u64);
            carry = cur >> 64;
        }
        out.push(carry as u64);
        Big(out)
    }
    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len()) + 1;
        let mut out = vec![0u64; n];
        let mut carry = 0u128;
        for (i, slot) in out.iter_mut().enumerate() {
            let a = u128::from(*self.0.get(i).unwrap_or(&0));
            let b = u128::from(*o.0.get(i).unwrap_or(&0));
            let cur = a + b + carry;
            *slot = cur as u64;
            carry = cur >> 64;
        }
        Big(out)
    }
    /// self - o, requires self >= o.
    fn sub(&self, o: &Big) -> Big {
        let mut out = vec![0u64; self.0.len()];
        let mut borrow = 0i128;
        for (i, slot) in out.iter_mut().enumerate() {
            let cur = i128::from(self.0[i]) - i128::from(*o.0.get(i).unwrap_or(&0)) - borrow;
            borrow = i128::from(cur < 0);
            *slot = cur.rem_euclid(1 << 64) as u64;
        }
        assert_eq!(borrow, 0, "negative result");
        Big(out)
    }
    fn shr64(&self) -> Big {
        Big(self.0[1..].to_vec())
    }
    fn shl64(&self) -> Big {
        let mut v = vec![0];
        v.extend_from_slice(&self.0);
        Big(v)
    }
    fn to_be_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.0.iter().rev().flat_map(|x| x.to_be_bytes()).collect();
        let first = out.iter().position(|&b| b != 0).unwrap_or(out.len());
        out.drain(..first);
        out
    }
}

/// scale * atan(1/x), by the alternating series (truncating divisions).
fn atan_inv(x: u64, scale: &Big) -> Big {
    let mut pos = Big(vec![0]);
    let mut neg = Big(vec![0]);
    let mut power = scale.div_small(x);
    let mut k = 0u64;
    while !power.is_zero() {
        let term = power.div_small(2 * k + 1);
        if k.is_multiple_of(2) {
            pos = pos.add(&term)
        } else {
            neg = neg.add(&term)
        }
        power = power.div_small(x * x);
        k += 1;
    }
    pos.sub(&neg)
}

/// floor(2^e * pi), with 64 guard bits against the truncation errors of the series.
fn pi_scaled(e: u32) -> Big {
    let scale = Big::pow2(e + 64);
    let pi = atan_inv(5, &scale).mul_small(16).sub(&atan_inv(239, &scale).mul_small(4));
    pi.shr64()
}

fn groups() -> Vec<(ModpGroup, u32, u64, Vec<u8>)> {
    let text = include_str!("../vectors/modp-groups.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap(), crate::hex(f[3]))
        })
        .collect()
}

#[test]
fn primes_equal_the_rfc_text_and_size() {
    let gs = groups();
    assert_eq!(gs.len(), 8);
    for (g, bits, _, p) in gs {
        let params = g.params().unwrap();
        assert_eq!(params.p_bytes(), p, "modp {g}");
        assert_eq!(params.bits(), bits);
        assert_eq!(g.bits(), Some(bits));
        assert_eq!(p.len() * 8, bits as usize);
        assert_eq!(p[0], 0xff, "top 64 bits are ones");
        assert!(p[p.len() - 8..].iter().all(|&b| b == 0xff), "bottom 64 bits are ones");
        assert_eq!(params.g(), 2);
        assert!(g.exponent_bits().unwrap() >= 256);
    }
}

#[test]
fn primes_rederived_from_pi() {
    for (g, bits, k, p) in groups() {
        let f = pi_scaled(bits - 130).add(&Big(vec![k]));
        let top = Big::pow2(bits).sub(&Big::pow2(bits - 64)).sub(&Big(vec![1]));
        let derived = top.add(&f.shl64());
        assert_eq!(derived.to_be_bytes(), p, "modp {g}: the RFC formula gives another prime");
    }
}

#[test]
fn primes_are_safe_primes() {
    // BPSW on p and on (p - 1) / 2 (crypto-primes); the largest groups take the longest.
    for (g, _, _, _) in groups() {
        let p = g.params().unwrap().p().clone();
        assert!(crypto_primes::is_prime(crypto_primes::Flavor::Safe, &p), "modp {g}");
    }
}
