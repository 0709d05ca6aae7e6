//! The octet layout of kept states ([`crate::Session::export_receiving`], and the layers above
//! that wrap it with their own fields): fixed-size integers big-endian, variable fields
//! length-prefixed (four octets, big-endian). Reading checks every length before using it, so
//! truncated or hostile octets give [`Error::Snapshot`], never a panic.
//!
//! The octets written are usually **secret** (keys): write them into a buffer sized once, so
//! that no reallocation leaves a copy behind, and seal the result before it leaves memory.

use crate::{Error, Result};

/// Appends `b` as a length-prefixed field. No field of a kept state comes near 4 GiB; a longer
/// one would be written with a wrong length, and refused when read back.
pub fn put_field(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

/// A reader of kept octets, from the front.
#[derive(Clone, Copy)]
pub struct Fields<'a>(&'a [u8]);

impl core::fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The octets are secret: only how many are left.
        write!(f, "Fields({} octets left)", self.0.len())
    }
}

impl<'a> Fields<'a> {
    /// A reader of `kept`.
    #[must_use]
    pub fn new(kept: &'a [u8]) -> Self {
        Self(kept)
    }

    /// The next `n` octets.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(Error::Snapshot("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    /// The next `N` octets, as an array.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when fewer are left.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The next four octets, a big-endian `u32`.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when fewer are left.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// The next length-prefixed field ([`put_field`]).
    ///
    /// # Errors
    /// [`Error::Snapshot`] when its length goes past the end.
    pub fn field(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// The next length-prefixed field, as UTF-8 text.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when its length goes past the end or it is not UTF-8.
    pub fn text(&mut self) -> Result<&'a str> {
        core::str::from_utf8(self.field()?).map_err(|_| Error::Snapshot("a text that is not UTF-8"))
    }

    /// Whether every octet has been read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_what_was_put_and_refuse_short_or_bad_octets() {
        let mut out = Vec::new();
        out.extend_from_slice(&7u32.to_be_bytes());
        put_field(&mut out, b"abc");
        put_field(&mut out, "ünï".as_bytes());
        put_field(&mut out, &[]);
        let mut r = Fields::new(&out);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.field().unwrap(), b"abc");
        assert_eq!(r.text().unwrap(), "ünï");
        assert!(!r.is_empty());
        assert_eq!(r.field().unwrap(), b"");
        assert!(r.is_empty());
        assert!(matches!(r.take(1), Err(Error::Snapshot("truncated"))));
        // A length past the end, cut anywhere, and text that is not UTF-8.
        for cut in 0..out.len() {
            let mut r = Fields::new(&out[..cut]);
            let all = r.u32().and_then(|_| r.field()).and_then(|_| r.text()).and_then(|_| r.field());
            assert!(matches!(all, Err(Error::Snapshot("truncated"))), "{cut}");
        }
        let mut bad = Vec::new();
        put_field(&mut bad, &[0xff, 0xfe]);
        assert!(matches!(Fields::new(&bad).text(), Err(Error::Snapshot("a text that is not UTF-8"))));
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Fields::new(&huge).field().is_err());
        assert_eq!(format!("{:?}", Fields::new(&out)), format!("Fields({} octets left)", out.len()));
    }
}
