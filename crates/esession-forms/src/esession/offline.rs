//! XEP-0187 offline options (§3.1) and the XEP-0082 dates they carry.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Alice's XEP-0187 offline options (§3.1, Example 3): the request form without `accept`,
/// `init_pubkey` and `resp_pubkey` (A1), 3-message style (`dhkeys`), plus `expires`,
/// `match_resource` and `signs` (I24).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineOptions {
    /// The options (`stanzas` never offers `iq`).
    pub offers: Offers,
    /// `expires`: XEP-0082 `YYYY-MM-DDThh:mm:ssZ`.
    pub expires: String,
    /// `my_nonce`: N_A.
    pub my_nonce: Vec<u8>,
    /// `dhkeys`: one e per offered group.
    pub dhkeys: Vec<Vec<u8>>,
    /// `match_resource`: the only resource that may receive the session.
    pub match_resource: Option<String>,
    /// `signs`: one signature per identity key over the form content without `signs`.
    pub signs: Vec<Vec<u8>>,
}

impl OfflineOptions {
    /// Parses published options.
    ///
    /// # Errors
    /// Missing or malformed fields; a malformed `expires`.
    pub fn parse(form: &DataForm) -> Result<Self> {
        let r = Reader::new(form)?;
        let offers = Offers::read(&r)?;
        let dhkeys = r.b64_list("dhkeys")?;
        if dhkeys.len() != offers.modp.len() {
            return Err(Error::BadValue { var: "dhkeys".into(), reason: "one value per modp option" });
        }
        let expires = r.one("expires")?.to_owned();
        // XEP-0187 §3.1 gives `expires` as a XEP-0082 DateTime: every form of the profile is
        // accepted on receipt (fractional seconds, offsets); we send the canonical UTC form.
        if !is_xep0082_datetime(&expires) {
            return Err(Error::BadValue { var: "expires".into(), reason: "not a XEP-0082 DateTime" });
        }
        let match_resource = match r.get("match_resource") {
            Some(f) => Some(r.one_of(f, "match_resource")?.to_owned()),
            None => None,
        };
        let signs = match r.get("signs") {
            Some(f) => f.values.iter().map(|v| decode(v, "signs")).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok(Self { offers, expires, my_nonce: r.nonce("my_nonce")?, dhkeys, match_resource, signs })
    }

    /// Serializes in the field order of XEP-0187 Example 3 (I24).
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        let mut w = Writer::new(profile, FormType::Form);
        self.offers.write_head(&mut w);
        self.offers.write_tail(&mut w);
        w.value("expires", Some(FieldType::Hidden), self.expires.clone());
        w.b64("my_nonce", Some(FieldType::Hidden), &self.my_nonce);
        w.values("dhkeys", Some(FieldType::Hidden), self.dhkeys.iter().map(|e| mpi::b64_encode(e)));
        if let Some(m) = &self.match_resource {
            w.value("match_resource", Some(FieldType::TextSingle), m.clone());
        }
        if !self.signs.is_empty() {
            w.values("signs", Some(FieldType::Hidden), self.signs.iter().map(|s| mpi::b64_encode(s)));
        }
        w.finish()
    }
}

/// The longest XEP-0082 DateTime accepted from a peer (fractions beyond nanoseconds carry
/// nothing; a peer's value is bounded before it is parsed).
pub const MAX_XEP0082_LEN: usize = 40;

/// Whether `s` has the syntax of the XEP-0082 DateTime profile,
/// `CCYY-MM-DDThh:mm:ss[.sss]TZD` with TZD `Z` or `+hh:mm`/`-hh:mm`, fractional seconds of any
/// number of digits (at most [`MAX_XEP0082_LEN`] characters in all). Only the syntax: the
/// ranges (month 13, hour 25) are checked by whoever turns it into a time (chrono's RFC 3339
/// parser, of which this profile is a subset).
#[must_use]
pub fn is_xep0082_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > MAX_XEP0082_LEN || !is_xep0082_utc_prefix(b) {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2] => {
            (*sign == b'+' || *sign == b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// `CCYY-MM-DDThh:mm:ss` at the start of `b` (19 octets).
fn is_xep0082_utc_prefix(b: &[u8]) -> bool {
    let digits = |r: core::ops::Range<usize>| r.into_iter().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
}

/// Whether `s` is the canonical form we send: a XEP-0082 UTC DateTime without fractions,
/// `YYYY-MM-DDThh:mm:ssZ`. Receivers accept every form ([`is_xep0082_datetime`]).
#[must_use]
pub fn is_xep0082_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20 && is_xep0082_utc_prefix(b) && b[19] == b'Z'
}

#[cfg(test)]
mod tests {
    use super::{is_xep0082_datetime, is_xep0082_utc};

    #[test]
    fn xep0082_syntax() {
        for s in [
            "2006-06-09T02:56:15Z",
            "2006-06-09T02:56:15.25Z",
            "2006-06-09T04:56:15+02:00",
            "2006-06-08T21:56:15.000-05:00",
        ] {
            assert!(is_xep0082_datetime(s), "{s}");
        }
        for s in [
            "2006-06-09",
            "2006-06-09T02:56:15",
            "2006-06-09T02:56:15.Z",
            "2006-06-09T02:56:15+0200",
            "2006-06-09T02:56:15ZZ",
            "2006-06-09T02:56:15-02:0a",
        ] {
            assert!(!is_xep0082_datetime(s), "{s}");
        }
        assert!(is_xep0082_utc("2006-06-09T02:56:15Z"));
        assert!(!is_xep0082_utc("2006-06-09T02:56:15.25Z"), "the canonical form has no fraction");
    }
}
