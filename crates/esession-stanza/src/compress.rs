//! `compress` (XEP-0116 §8.6, XEP-0200 §6 step 2): `none` (MUST) and, with the `zlib` feature,
//! zlib (RFC 1950) with one compression context per direction, initialized after the key
//! exchange and carried from stanza to stanza with a partial (sync) flush at the end of each.

#[cfg(feature = "zlib")]
use crate::error::TerminationCause;
use crate::error::{Error, Result};
use esession_forms::names::Compress;

/// Stanzas larger than this after decompression are refused (a zlib bomb would otherwise
/// expand without bound).
pub const MAX_DECOMPRESSED: usize = 1 << 20;

/// One direction's compression state.
pub(crate) enum Compressor {
    None,
    #[cfg(feature = "zlib")]
    Zlib(Box<flate2::Compress>),
}

/// One direction's decompression state.
pub(crate) enum Decompressor {
    None,
    #[cfg(feature = "zlib")]
    Zlib(Box<flate2::Decompress>),
}

/// Whether this build implements the algorithm.
#[must_use]
pub fn supported(c: &Compress) -> bool {
    match c {
        // X116-8.6-01: `none` is always supported (whatever the build's features).
        Compress::None => true,
        #[cfg(feature = "zlib")]
        Compress::Zlib => true,
        _ => false,
    }
}

impl Compressor {
    pub(crate) fn new(c: &Compress) -> Result<Self> {
        match c {
            Compress::None => Ok(Compressor::None),
            #[cfg(feature = "zlib")]
            Compress::Zlib => {
                Ok(Compressor::Zlib(Box::new(flate2::Compress::new(flate2::Compression::default(), true))))
            }
            _ => Err(Error::Crypto(esession_crypto::Error::Unsupported("compression"))),
        }
    }

    pub(crate) fn compress(&mut self, m: Vec<u8>) -> Result<Vec<u8>> {
        match self {
            // X116-8.6-02: none: the output is the input.
            Compressor::None => Ok(m),
            #[cfg(feature = "zlib")]
            Compressor::Zlib(z) => {
                let mut out = Vec::with_capacity(m.len() + 64);
                let mut input = &m[..];
                loop {
                    out.reserve(out.len().max(256));
                    let before_in = z.total_in();
                    z.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
                        .map_err(|_| Error::Crypto(esession_crypto::Error::Unsupported("compression")))?;
                    let consumed = usize::try_from(z.total_in() - before_in).unwrap_or(input.len());
                    input = &input[consumed.min(input.len())..];
                    // Done when all input is consumed and the flush left spare room.
                    if input.is_empty() && out.len() < out.capacity() {
                        return Ok(out);
                    }
                }
            }
        }
    }
}

impl Decompressor {
    pub(crate) fn new(c: &Compress) -> Result<Self> {
        match c {
            Compress::None => Ok(Decompressor::None),
            #[cfg(feature = "zlib")]
            Compress::Zlib => Ok(Decompressor::Zlib(Box::new(flate2::Decompress::new(true)))),
            _ => Err(Error::Crypto(esession_crypto::Error::Unsupported("compression"))),
        }
    }

    pub(crate) fn decompress(&mut self, data: Vec<u8>) -> Result<Vec<u8>> {
        match self {
            Decompressor::None => Ok(data),
            #[cfg(feature = "zlib")]
            Decompressor::Zlib(z) => {
                let bad = || Error::Terminated(TerminationCause::Compression);
                let mut out = Vec::with_capacity(data.len() * 4 + 64);
                let mut input = &data[..];
                loop {
                    if out.len() > MAX_DECOMPRESSED {
                        return Err(bad());
                    }
                    out.reserve(out.len().max(256));
                    let before_in = z.total_in();
                    let before_out = z.total_out();
                    z.decompress_vec(input, &mut out, flate2::FlushDecompress::Sync).map_err(|_| bad())?;
                    let consumed = usize::try_from(z.total_in() - before_in).map_err(|_| bad())?;
                    input = &input[consumed.min(input.len())..];
                    let progressed = consumed > 0 || z.total_out() > before_out;
                    if input.is_empty() && out.len() < out.capacity() {
                        return Ok(out);
                    }
                    if !progressed {
                        return Err(bad());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::error::TerminationCause;

    #[test]
    fn none_is_identity() {
        let mut c = Compressor::new(&Compress::None).unwrap();
        let mut d = Decompressor::new(&Compress::None).unwrap();
        assert_eq!(c.compress(b"abc".to_vec()).unwrap(), b"abc", "compress(m) = m");
        assert_eq!(d.decompress(b"abc".to_vec()).unwrap(), b"abc", "decompress(m) = m");
        assert_eq!(d.decompress(c.compress(b"abc".to_vec()).unwrap()).unwrap(), b"abc");
        assert!(Compressor::new(&Compress::Lzw).is_err());
        assert!(!supported(&Compress::Lzw));
    }

    #[cfg(feature = "zlib")]
    #[test]
    fn zlib_context_carries_across_stanzas() {
        let mut c = Compressor::new(&Compress::Zlib).unwrap();
        let mut d = Decompressor::new(&Compress::Zlib).unwrap();
        let msg = b"<body>the same words again and again and again</body>".repeat(4);
        let first = c.compress(msg.clone()).unwrap();
        let second = c.compress(msg.clone()).unwrap();
        assert!(second.len() < first.len(), "the shared context makes the repeat cheaper");
        assert_eq!(d.decompress(first.clone()).unwrap(), msg);
        assert_eq!(d.decompress(second.clone()).unwrap(), msg);
        // Out of order, the second stanza cannot be decompressed by a fresh context.
        let mut fresh = Decompressor::new(&Compress::Zlib).unwrap();
        assert!(
            fresh.decompress(second.clone()).is_err()
                || fresh.decompress(second.clone()).map(|m| m != msg).unwrap_or(true)
        );
        // Mutation testing (docs/conformance.md): inputs that take the compression and
        // decompression loops round more than once (incompressible, larger than the first
        // buffers), and sizes at the buffers' edges, come back whole.
        assert!(supported(&Compress::Zlib));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..MAX_DECOMPRESSED / 2)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (mut c3, mut d3) =
            (Compressor::new(&Compress::Zlib).unwrap(), Decompressor::new(&Compress::Zlib).unwrap());
        for n in [0, 1, 63, 64, 255, 256, 257, 4096, 65_536, noise.len()] {
            let m = noise[..n].to_vec();
            assert_eq!(d3.decompress(c3.compress(m.clone()).unwrap()).unwrap(), m, "{n} octets of noise");
            let same = vec![b'z'; n];
            assert_eq!(d3.decompress(c3.compress(same.clone()).unwrap()).unwrap(), same, "{n} equal octets");
        }
        // A stream that ended, then more octets: nothing more is read, refused (not looped on).
        let mut z = flate2::Compress::new(flate2::Compression::default(), true);
        let mut ended = Vec::with_capacity(256);
        z.compress_vec(b"finished", &mut ended, flate2::FlushCompress::Finish).unwrap();
        ended.extend_from_slice(b"trailing octets");
        let mut d5 = Decompressor::new(&Compress::Zlib).unwrap();
        assert_eq!(d5.decompress(ended), Err(Error::Terminated(TerminationCause::Compression)));
        // Garbage is refused, not looped on.
        let mut d4 = Decompressor::new(&Compress::Zlib).unwrap();
        assert_eq!(
            d4.decompress(noise[..4096].to_vec()),
            Err(Error::Terminated(TerminationCause::Compression))
        );
        let big = vec![b'a'; 4 * MAX_DECOMPRESSED];
        let mut c2 = Compressor::new(&Compress::Zlib).unwrap();
        let bomb = c2.compress(big).unwrap();
        let mut d2 = Decompressor::new(&Compress::Zlib).unwrap();
        assert_eq!(d2.decompress(bomb), Err(Error::Terminated(TerminationCause::Compression)));
    }
}
