//! A small, slow and plainly written modular exponentiation (schoolbook multiplication, bitwise
//! reduction), independent of esession-crypto's Montgomery and comb code: the known-answer
//! tests recompute e = g^x and K = d^x with it.

use core::cmp::Ordering;

/// RFC 2409 §6.1, the First Oakley Group (768 bits): the group of the test sessions.
pub(crate) const MODP1_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
    020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
    4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF";

/// Little-endian 32-bit limbs.
fn from_be(b: &[u8]) -> Vec<u32> {
    let mut out = vec![0u32; b.len().div_ceil(4).max(1)];
    for (i, &byte) in b.iter().rev().enumerate() {
        out[i / 4] |= u32::from(byte) << (8 * (i % 4));
    }
    out
}

fn to_be_minimal(a: &[u32]) -> Vec<u8> {
    let bytes: Vec<u8> = a.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

fn cmp(a: &[u32], b: &[u32]) -> Ordering {
    let n = a.len().max(b.len());
    for i in (0..n).rev() {
        let (x, y) = (*a.get(i).unwrap_or(&0), *b.get(i).unwrap_or(&0));
        if x != y {
            return x.cmp(&y);
        }
    }
    Ordering::Equal
}

/// a -= b, for a >= b.
fn sub_assign(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0i64;
    for (i, limb) in a.iter_mut().enumerate() {
        let d = i64::from(*limb) - i64::from(*b.get(i).unwrap_or(&0)) - borrow;
        borrow = i64::from(d < 0);
        *limb = d.rem_euclid(1 << 32) as u32;
    }
    assert_eq!(borrow, 0);
}

fn mul(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = vec![0u64; a.len() + b.len() + 1];
    for (i, &x) in a.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &y) in b.iter().enumerate() {
            let t = out[i + j] + u64::from(x) * u64::from(y) + carry;
            out[i + j] = t & 0xffff_ffff;
            carry = t >> 32;
        }
        out[i + b.len()] += carry;
    }
    out.into_iter().map(|l| l as u32).collect()
}

/// x mod p, one bit at a time.
fn rem(x: &[u32], p: &[u32]) -> Vec<u32> {
    let mut r = vec![0u32; p.len() + 1];
    for bit in (0..x.len() * 32).rev() {
        let mut carry = (x[bit / 32] >> (bit % 32)) & 1;
        for limb in &mut r {
            let next = *limb >> 31;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if cmp(&r, p) != Ordering::Less {
            sub_assign(&mut r, p);
        }
    }
    r
}

/// base^exp mod p, all big-endian octets; the result as minimal octets (XEP-0116 §6.1).
pub(crate) fn modpow(base: &[u8], exp: &[u8], p: &[u8]) -> Vec<u8> {
    let p = from_be(p);
    let b = rem(&from_be(base), &p);
    let mut acc = vec![1u32];
    for byte in exp {
        for i in (0..8).rev() {
            acc = rem(&mul(&acc, &acc), &p);
            if (byte >> i) & 1 == 1 {
                acc = rem(&mul(&acc, &b), &p);
            }
        }
    }
    to_be_minimal(&acc)
}

/// The MODP group 1 prime as octets.
pub(crate) fn modp1() -> Vec<u8> {
    hex::decode(MODP1_HEX.replace(char::is_whitespace, "")).unwrap()
}

#[test]
fn modpow_small_known_answers() {
    assert_eq!(modpow(&[2], &[10], &[0x03, 0xe9]), vec![0x17], "2^10 mod 1001 = 23");
    assert_eq!(modpow(&[0x01, 0x00], &[3], &[0xff, 0xf1]), vec![0x0f, 0x00], "256^3 mod 65521 = 3840");
    assert_eq!(modpow(&[3], &[0], &[7]), vec![1]);
    // Fermat: a^(p-1) = 1 mod p for the prime p.
    let p = modp1();
    let mut pm1 = p.clone();
    *pm1.last_mut().unwrap() -= 1;
    assert_eq!(modpow(&[5], &pm1, &p), vec![1]);
    assert_eq!(p, esession_crypto::ModpGroup::G1.params().unwrap().p_bytes(), "the RFC 2409 text");
}
