//! Errors of the forms layer.

use core::fmt;

/// Why an element is not a valid form (or key, or signature value).
///
/// Parsing is strict: every deviation from XEP-0004 and from the ESession schemas is an error
/// naming what was wrong, never a silent default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The element is not the one expected (name or namespace).
    UnexpectedElement {
        /// The expected element name.
        expected: &'static str,
    },
    /// A required attribute is missing.
    MissingAttribute(&'static str),
    /// An attribute has a value outside its value space.
    BadAttribute {
        /// The attribute.
        name: &'static str,
        /// The offending value.
        value: String,
    },
    /// A `<field/>` has an unknown `type`.
    UnknownFieldType(String),
    /// A `<field/>` other than `fixed` has no `var`.
    MissingVar,
    /// Two fields share a `var`.
    DuplicateVar(String),
    /// A field has more values than its type allows, or an option has not exactly one value.
    ValueCount {
        /// The field.
        var: String,
    },
    /// A field that is not a list carries `<option/>`s.
    UnexpectedOptions {
        /// The field.
        var: String,
    },
    /// A field the form requires is absent.
    MissingField(&'static str),
    /// A field's value is not valid for it.
    BadValue {
        /// The field.
        var: String,
        /// Why.
        reason: &'static str,
    },
    /// The form's FORM_TYPE is absent or not `urn:xmpp:ssn`.
    WrongFormType,
    /// The form has the wrong `type` attribute for where it appears.
    WrongDataFormType,
    /// A size limit was exceeded (too many fields or values, a value too long).
    TooLarge(&'static str),
    /// Unexpected text or child element.
    UnexpectedContent(&'static str),
    /// A Base64 value is invalid.
    Base64 {
        /// Where.
        var: String,
    },
    /// The XML could not be parsed.
    Xml(String),
    /// A key could not be built from its components.
    Crypto(esession_crypto::Error),
}

impl Error {
    /// The field the error is about, when it is about one (to name it in a refusal, XEP-0116
    /// §4.4, XEP-0155 §4.3).
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::MissingField(v) => Some(v),
            Error::BadValue { var, .. }
            | Error::ValueCount { var }
            | Error::UnexpectedOptions { var }
            | Error::Base64 { var }
            | Error::DuplicateVar(var) => Some(var),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnexpectedElement { expected } => write!(f, "expected a <{expected}/> element"),
            Error::MissingAttribute(a) => write!(f, "missing attribute {a}"),
            Error::BadAttribute { name, value } => write!(f, "invalid value {value:?} for attribute {name}"),
            Error::UnknownFieldType(t) => write!(f, "unknown field type {t:?}"),
            Error::MissingVar => f.write_str("field without var"),
            Error::DuplicateVar(v) => write!(f, "duplicate field {v:?}"),
            Error::ValueCount { var } => write!(f, "wrong number of values in field {var:?}"),
            Error::UnexpectedOptions { var } => write!(f, "options in non-list field {var:?}"),
            Error::MissingField(v) => write!(f, "missing field {v:?}"),
            Error::BadValue { var, reason } => write!(f, "invalid value in field {var:?}: {reason}"),
            Error::WrongFormType => f.write_str("FORM_TYPE is not urn:xmpp:ssn"),
            Error::WrongDataFormType => f.write_str("data form of the wrong type"),
            Error::TooLarge(what) => write!(f, "too large: {what}"),
            Error::UnexpectedContent(what) => write!(f, "unexpected content: {what}"),
            Error::Base64 { var } => write!(f, "invalid base64 in {var:?}"),
            Error::Xml(e) => write!(f, "XML error: {e}"),
            Error::Crypto(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<esession_crypto::Error> for Error {
    fn from(e: esession_crypto::Error) -> Self {
        Error::Crypto(e)
    }
}

/// Result alias of this crate.
pub type Result<T> = core::result::Result<T, Error>;
