//! Deterministic randomness for tests and vector replays (feature `testing`, never in default
//! builds): SHA-256 in counter mode over a seed. Not a CSPRNG for production use: the same seed
//! gives the same values.

use rand_core::{TryCryptoRng, TryRng};

/// A seeded, deterministic generator.
#[derive(Debug, Clone)]
pub struct TestRng {
    seed: [u8; 32],
    n: u64,
    buf: [u8; 32],
    used: usize,
}

impl TestRng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { seed: crate::hash::sha256(&seed.to_be_bytes()), n: 0, buf: [0; 32], used: 32 }
    }
}

impl TryRng for TestRng {
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
            if self.used == 32 {
                self.n += 1;
                let mut input = self.seed.to_vec();
                input.extend_from_slice(&self.n.to_be_bytes());
                self.buf = crate::hash::sha256(&input);
                self.used = 0;
            }
            *d = self.buf[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}
