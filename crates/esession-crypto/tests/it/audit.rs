//! Conformance audit (issue 22): tests that fail when the requirement of their row is broken.

use esession_crypto::{DhKeyPair, ModpGroup};
use getrandom::rand_core::{TryCryptoRng, TryRng};

/// A generator that hands out a known stream (xorshift64*) and keeps every octet it gave.
struct Recording {
    state: u64,
    given: Vec<u8>,
}

impl Recording {
    fn new(seed: u64) -> Self {
        Self { state: seed | 1, given: Vec::new() }
    }

    fn octet(&mut self) -> u8 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    }
}

impl TryRng for Recording {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for d in dst {
            *d = self.octet();
            self.given.push(*d);
        }
        Ok(())
    }
}

impl TryCryptoRng for Recording {}

/// X200-11.3-01 (every x unique): uniqueness rests on x being drawn whole from the CSPRNG. The
/// exponent of every group is exactly the generator's octets (its top bit forced), so no octet
/// of x is a constant or left unfilled (a generator filling only part of x, or none of it, makes
/// repeats likely; 32 draws of `generated_key_pairs_are_unique` may not see them).
#[test]
fn every_exponent_bit_below_the_top_comes_from_the_generator() {
    for (i, g) in ModpGroup::SUPPORTED.into_iter().enumerate() {
        let mut rng = Recording::new(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
        let pair = DhKeyPair::generate(g, &mut rng).unwrap();
        let bits = g.exponent_bits().unwrap() as usize;
        let mut expected = rng.given.clone();
        assert_eq!(expected.len(), bits / 8, "modp {g}: one octet drawn per octet of x");
        expected[0] |= 0x80;
        assert_eq!(
            pair.export_secret().expose_secret(),
            &expected[..],
            "modp {g}: x is the generator's output"
        );
    }
}
