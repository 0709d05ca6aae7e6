//! Errors of the negotiation, in the categories of STYLE.md, with the XMPP error each maps to.

use core::fmt;

/// The check that failed when a peer's message is refused (the names of the vector format's
/// `check` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// An option is not acceptable.
    Options,
    /// `nonce` is not my ESession ID.
    NonceEcho,
    /// d out of range.
    DRange,
    /// e out of range.
    ERange,
    /// SHA256(e) differs from He.
    HeCommitment,
    /// M_A does not verify.
    MA,
    /// M_B does not verify.
    MB,
    /// mac_A (`none` identity) does not verify.
    MacA,
    /// mac_B (`none` identity) does not verify.
    MacB,
    /// The signature over the MAC does not verify.
    Signature,
    /// The key is not trusted for this JID.
    KeyTrust,
    /// The fingerprint matches no known key.
    KeyUnknown,
    /// The identity cannot be parsed.
    IdentityFormat,
    /// A form could not be parsed.
    Form,
}

impl Check {
    /// The check's name as the vector format writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Options => "options",
            Check::NonceEcho => "nonce-echo",
            Check::DRange => "d-range",
            Check::ERange => "e-range",
            Check::HeCommitment => "He-commitment",
            Check::MA => "M_A",
            Check::MB => "M_B",
            Check::MacA => "mac_A",
            Check::MacB => "mac_B",
            Check::Signature => "signature",
            Check::KeyTrust => "key-trust",
            Check::KeyUnknown => "key-unknown",
            Check::IdentityFormat => "identity-format",
            Check::Form => "form",
        }
    }
}

/// The XMPP error condition a refusal is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Condition {
    /// `<not-acceptable/>`.
    NotAcceptable,
    /// `<feature-not-implemented/>`.
    FeatureNotImplemented,
    /// `<service-unavailable/>`: a negotiation form of a FORM_TYPE other than `urn:xmpp:ssn`
    /// (XEP-0155 §4.3).
    ServiceUnavailable,
}

impl Condition {
    /// The element name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::NotAcceptable => "not-acceptable",
            Condition::FeatureNotImplemented => "feature-not-implemented",
            Condition::ServiceUnavailable => "service-unavailable",
        }
    }
}

/// Why a negotiation failed. After any error the party discards everything it learned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer's message failed a check; we answered with `condition` (naming `fields`). (A
    /// plain stanza session answer Alice cannot confirm is answered with a cancel form instead,
    /// XEP-0155 §4.4; a peer's own failure, such as our generator returning its values, is
    /// `Crypto`.)
    PeerMisbehaved {
        /// The failed check.
        check: Check,
        /// What we sent back.
        condition: Condition,
        /// The fields named in the error.
        fields: Vec<String>,
    },
    /// The peer refused our request (an error stanza, or `accept` false).
    Rejected {
        /// The XMPP condition the peer sent, if any.
        condition: Option<String>,
        /// The fields it named.
        fields: Vec<String>,
    },
    /// The call does not fit the state (a response when none is awaited, start twice...).
    ApiMisuse(&'static str),
    /// Our own configuration cannot produce a valid offer (no group, a 3-message request with
    /// `none` identities...).
    Config(&'static str),
    /// A primitive failed unexpectedly.
    Crypto(esession_crypto::Error),
    /// The stanza layer refused the keys.
    Stanza(esession_stanza::Error),
    /// A store could not record what the negotiation must keep (retained secret, key
    /// association): the negotiation fails rather than forget it.
    Store(crate::store::StoreError),
}

impl Error {
    pub(crate) fn peer(check: Check, condition: Condition, fields: &[&str]) -> Self {
        Error::PeerMisbehaved { check, condition, fields: fields.iter().map(|f| (*f).to_owned()).collect() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::PeerMisbehaved { check, condition, .. } => {
                write!(f, "peer failed the {} check ({})", check.as_str(), condition.as_str())
            }
            Error::Rejected { condition, .. } => {
                write!(f, "peer refused the session ({})", condition.as_deref().unwrap_or("declined"))
            }
            Error::ApiMisuse(w) => write!(f, "API misuse: {w}"),
            Error::Config(w) => write!(f, "configuration: {w}"),
            Error::Crypto(e) => write!(f, "{e}"),
            Error::Stanza(e) => write!(f, "{e}"),
            Error::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    /// The wrapped error of [`Error::Crypto`], [`Error::Stanza`] and [`Error::Store`].
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Crypto(e) => Some(e),
            Error::Stanza(e) => Some(e),
            Error::Store(e) => Some(e),
            Error::PeerMisbehaved { .. }
            | Error::Rejected { .. }
            | Error::ApiMisuse(_)
            | Error::Config(_) => None,
        }
    }
}

impl From<esession_crypto::Error> for Error {
    fn from(e: esession_crypto::Error) -> Self {
        Error::Crypto(e)
    }
}

impl From<esession_stanza::Error> for Error {
    fn from(e: esession_stanza::Error) -> Self {
        Error::Stanza(e)
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        Error::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreError, StoreErrorKind};
    use std::error::Error as _;

    #[test]
    fn wrapping_variants_have_their_cause_as_source() {
        let crypto = Error::from(esession_crypto::Error::InvalidKey);
        let source = crypto.source().and_then(|s| s.downcast_ref::<esession_crypto::Error>());
        assert_eq!(source, Some(&esession_crypto::Error::InvalidKey));

        let stanza = Error::from(esession_stanza::Error::SessionClosed);
        let source = stanza.source().and_then(|s| s.downcast_ref::<esession_stanza::Error>());
        assert_eq!(source, Some(&esession_stanza::Error::SessionClosed));

        let store = Error::from(StoreError::new(StoreErrorKind::Io, "x"));
        let source = store.source().and_then(|s| s.downcast_ref::<StoreError>());
        assert_eq!(source.map(StoreError::kind), Some(StoreErrorKind::Io));
    }

    #[test]
    fn the_source_chain_reaches_the_store_cause() {
        let io = std::io::Error::other("disk full");
        let e = Error::from(StoreError::new(StoreErrorKind::Io, "cannot write").with_source(io));
        let mut chain = Vec::new();
        let mut next = e.source();
        while let Some(s) = next {
            chain.push(s);
            next = s.source();
        }
        assert_eq!(chain.len(), 2, "Error -> StoreError -> io::Error");
        let inner = chain[1].downcast_ref::<std::io::Error>();
        assert_eq!(inner.map(std::io::Error::kind), Some(std::io::ErrorKind::Other));
        assert_eq!(e.to_string(), "store: cannot write: disk full");
    }

    #[test]
    fn variants_without_a_cause_have_no_source() {
        assert!(Error::ApiMisuse("x").source().is_none());
        assert!(Error::Config("x").source().is_none());
        assert!(Error::peer(Check::Form, Condition::NotAcceptable, &[]).source().is_none());
    }

    /// The names are those of the vector format's `check` column (the shared vectors'
    /// README-xep.md), which the vector checker compares; `form` is ours.
    #[test]
    fn checks_are_named_as_the_vector_format_names_them() {
        let names = [
            (Check::Options, "options"),
            (Check::NonceEcho, "nonce-echo"),
            (Check::DRange, "d-range"),
            (Check::ERange, "e-range"),
            (Check::HeCommitment, "He-commitment"),
            (Check::MA, "M_A"),
            (Check::MB, "M_B"),
            (Check::MacA, "mac_A"),
            (Check::MacB, "mac_B"),
            (Check::Signature, "signature"),
            (Check::KeyTrust, "key-trust"),
            (Check::KeyUnknown, "key-unknown"),
            (Check::IdentityFormat, "identity-format"),
            (Check::Form, "form"),
        ];
        for (check, name) in names {
            assert_eq!(check.as_str(), name);
        }
    }
}
