//! The typed ESession forms (XEP-0116 §4, XEP-0155, XEP-0187 §3).
//!
//! Each form parses from a [`DataForm`] (strictly: a required field missing, a value of the
//! wrong shape or invalid Base64 is an error naming the field) and serializes to one in the
//! layout of the XEP examples (`Profile::Xep`, I1/I4/I5) or of Gajim (`Profile::Gajim`: `type`
//! on every field, `label="None"` on modp options, `<required/>` first).
//!
//! MACs and signatures never cover these typed values: they cover the received `<x/>` element,
//! normalized ([`crate::normalize::form_content`]), so field order and attributes chosen by the
//! peer do not matter.

use crate::dataform::{DataForm, Field, FieldType, FormOption, FormType, parse_bool};
use crate::error::{Error, Result};
use crate::names::{
    Compress, CryptAlg, Disclosure, HashAlg, Logging, ModpGroup, PubkeyMethod, SasAlg, Security, SignAlg,
    StanzaType, Version,
};
use esession_crypto::{Profile, mpi};
use minidom::Element;
use std::str::FromStr;

mod offline;
mod request;
mod response;
mod ssn;

pub use offline::{MAX_XEP0082_LEN, OfflineOptions, is_xep0082_datetime, is_xep0082_utc};
pub use request::{DhOffer, Offers, Request};
pub use response::{Accept, BobIdentity, Response};
pub use ssn::{SsnAnswer, SsnCompletion, Terminate};

/// The FORM_TYPE of every ESession form.
pub const FORM_TYPE: &str = "urn:xmpp:ssn";
/// XEP-0020 feature negotiation.
pub const FEATURE_NEG_NS: &str = "http://jabber.org/protocol/feature-neg";
/// The `<init/>` wrapper of XEP-0116 Example 12 and XEP-0187 Example 7.
pub const INIT_NS: &str = "http://www.xmpp.org/extensions/xep-0116.html#ns-init";
/// The disco#info feature of XEP-0116 (§3) and the everyone-options PEP node of XEP-0187.
pub const ESESSION_NS: &str = "http://www.xmpp.org/extensions/xep-0116.html#ns";
/// The shortest nonce (`my_nonce`, `nonce`) accepted from a peer, in octets. The texts give no
/// length; ours are 32 octets (I7), the deployed dialect's 8 (Gajim). A shorter ESession ID
/// would identify little and, as the HMAC key of `rshashes` (XEP-0116 §4.6.4), protect less.
pub const MIN_NONCE_LEN: usize = 8;
/// The length of a hash commitment He = SHA256(e) in `dhhashes` (XEP-0116 §4.3): SHA-256
/// whatever `hash_algs` offers.
pub const HE_LEN: usize = 32;

/// The element a form travels in (A8). Either is accepted on receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    /// `<feature xmlns='http://jabber.org/protocol/feature-neg'/>`: request, response, accept,
    /// terminate.
    Feature,
    /// `<init xmlns='http://www.xmpp.org/extensions/xep-0116.html#ns-init'/>`: Bob's identity
    /// (4th message) and the XEP-0187 offline start.
    Init,
}

impl Wrapper {
    /// Wraps a `<x/>` element.
    #[must_use]
    pub fn wrap(self, x: Element) -> Element {
        match self {
            Wrapper::Feature => Element::builder("feature", FEATURE_NEG_NS).append(x).build(),
            Wrapper::Init => Element::builder("init", INIT_NS).append(x).build(),
        }
    }

    /// Finds the wrapper and its single data form in a stanza child.
    ///
    /// # Errors
    /// [`Error::UnexpectedElement`] for anything else (the element is left for other parsers).
    pub fn unwrap(e: &Element) -> Result<(Wrapper, &Element)> {
        let w = if e.is("feature", FEATURE_NEG_NS) {
            Wrapper::Feature
        } else if e.is("init", INIT_NS) {
            Wrapper::Init
        } else {
            return Err(Error::UnexpectedElement { expected: "feature or init" });
        };
        let mut forms = e.children().filter(|c| c.is("x", crate::dataform::NS));
        let x = forms.next().ok_or(Error::UnexpectedElement { expected: "x" })?;
        if forms.next().is_some() {
            return Err(Error::UnexpectedContent("several data forms"));
        }
        Ok((w, x))
    }

    /// Finds the ESession wrapper among a stanza's children.
    #[must_use]
    pub fn find(stanza: &Element) -> Option<&Element> {
        stanza.children().find(|c| c.is("feature", FEATURE_NEG_NS) || c.is("init", INIT_NS))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading helpers

struct Reader<'a> {
    form: &'a DataForm,
}

impl<'a> Reader<'a> {
    fn new(form: &'a DataForm) -> Result<Self> {
        let ft = form.field("FORM_TYPE").ok_or(Error::WrongFormType)?;
        if ft.values.len() != 1 || ft.values[0] != FORM_TYPE {
            return Err(Error::WrongFormType);
        }
        Ok(Self { form })
    }

    fn get(&self, var: &str) -> Option<&'a Field> {
        self.form.field(var)
    }

    fn req(&self, var: &'static str) -> Result<&'a Field> {
        self.get(var).ok_or(Error::MissingField(var))
    }

    /// An offer: the options of a list field, or its values (Gajim sends some offers as hidden
    /// fields with one value). Never empty.
    fn offer<T: FromStr<Err = core::convert::Infallible>>(&self, var: &'static str) -> Result<Vec<T>> {
        self.offer_of(self.req(var)?, var)
    }

    fn offer_of<T: FromStr<Err = core::convert::Infallible>>(
        &self,
        f: &Field,
        var: &'static str,
    ) -> Result<Vec<T>> {
        // Defaults first (XEP-0155 §4.1, Example 1): the offerer's preferred value.
        let raw = f.offered();
        if raw.is_empty() {
            return Err(Error::BadValue { var: var.into(), reason: "no option offered" });
        }
        Ok(raw.into_iter().filter_map(|s| s.parse().ok()).collect())
    }

    fn one_of(&self, f: &'a Field, var: &str) -> Result<&'a str> {
        match f.values.as_slice() {
            [v] => Ok(v.as_str()),
            _ => Err(Error::ValueCount { var: var.into() }),
        }
    }

    fn one(&self, var: &'static str) -> Result<&'a str> {
        self.one_of(self.req(var)?, var)
    }

    fn choice<T: FromStr<Err = core::convert::Infallible>>(&self, var: &'static str) -> Result<T> {
        self.one(var)?.parse().map_err(|_| Error::BadValue { var: var.into(), reason: "unparsable" })
    }

    fn opt_choice<T: FromStr<Err = core::convert::Infallible>>(
        &self,
        var: &'static str,
    ) -> Result<Option<T>> {
        match self.get(var) {
            None => Ok(None),
            Some(f) => Ok(Some(
                self.one_of(f, var)?
                    .parse()
                    .map_err(|_| Error::BadValue { var: var.into(), reason: "unparsable" })?,
            )),
        }
    }

    fn b64(&self, var: &'static str) -> Result<Vec<u8>> {
        decode(self.one(var)?, var)
    }

    /// A nonce (`my_nonce`, `nonce`): at least [`MIN_NONCE_LEN`] octets (an empty or a
    /// one-octet ESession ID identifies nothing).
    fn nonce(&self, var: &'static str) -> Result<Vec<u8>> {
        let n = self.b64(var)?;
        if n.is_empty() {
            return Err(Error::BadValue { var: var.into(), reason: "empty nonce" });
        }
        if n.len() < MIN_NONCE_LEN {
            return Err(Error::BadValue { var: var.into(), reason: "nonce shorter than 8 octets" });
        }
        Ok(n)
    }

    fn opt_b64(&self, var: &'static str) -> Result<Option<Vec<u8>>> {
        match self.get(var) {
            None => Ok(None),
            Some(f) => Ok(Some(decode(self.one_of(f, var)?, var)?)),
        }
    }

    fn b64_list(&self, var: &'static str) -> Result<Vec<Vec<u8>>> {
        let f = self.req(var)?;
        if f.values.is_empty() {
            return Err(Error::ValueCount { var: var.into() });
        }
        f.values.iter().map(|v| decode(v, var)).collect()
    }

    fn boolean(&self, var: &'static str) -> Result<bool> {
        parse_bool(self.one(var)?).ok_or(Error::BadValue { var: var.into(), reason: "not a boolean" })
    }

    fn opt_boolean(&self, var: &'static str) -> Result<bool> {
        match self.get(var) {
            None => Ok(false),
            Some(f) => parse_bool(self.one_of(f, var)?)
                .ok_or(Error::BadValue { var: var.into(), reason: "not a boolean" }),
        }
    }

    fn rekey_freq(&self) -> Result<u32> {
        let v = self.one("rekey_freq")?;
        let canonical =
            !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0');
        let n: u64 = if canonical { v.parse().unwrap_or(0) } else { 0 };
        // X116-4.3-05: rekey_freq is below 2^32 (and at least 1); ours are `u32` by type.
        if n == 0 || n >= 1 << 32 {
            return Err(Error::BadValue { var: "rekey_freq".into(), reason: "must be 1 to 2^32 - 1" });
        }
        u32::try_from(n)
            .map_err(|_| Error::BadValue { var: "rekey_freq".into(), reason: "must be below 2^32" })
    }

    /// `logging` (or the legacy `otr`) as an offer, per A2.
    fn logging_offer(&self) -> Result<Vec<Logging>> {
        let (var, f) = match (self.get("logging"), self.get("otr")) {
            (Some(f), _) => ("logging", f),
            (None, Some(f)) => ("otr", f),
            (None, None) => return Err(Error::MissingField("logging")),
        };
        let raw = f.offered();
        if raw.is_empty() {
            return Err(Error::BadValue { var: var.into(), reason: "no option offered" });
        }
        Ok(raw.into_iter().map(|v| Logging::from_field(var, v)).collect())
    }

    fn logging_choice(&self) -> Result<Logging> {
        let mut v = self.logging_offer()?;
        if v.len() != 1 {
            return Err(Error::ValueCount { var: "logging".into() });
        }
        Ok(v.remove(0))
    }
}

/// The fields of a request that are read into typed values; every other field is kept as it
/// came (XEP-0155 §4.2: answered, or refused when required and not implemented).
const REQUEST_VARS: [&str; 20] = [
    "FORM_TYPE",
    "accept",
    "logging",
    "otr",
    "disclosure",
    "security",
    "modp",
    "crypt_algs",
    "hash_algs",
    "sign_algs",
    "compress",
    "stanzas",
    "init_pubkey",
    "resp_pubkey",
    "ver",
    "rekey_freq",
    "my_nonce",
    "sas_algs",
    "dhhashes",
    "dhkeys",
];

/// The fields of a response (and of an SSN answer) that are read into typed values.
const RESPONSE_VARS: [&str; 24] = [
    "FORM_TYPE",
    "accept",
    "logging",
    "otr",
    "disclosure",
    "security",
    "modp",
    "crypt_algs",
    "hash_algs",
    "sign_algs",
    "compress",
    "stanzas",
    "init_pubkey",
    "resp_pubkey",
    "ver",
    "rekey_freq",
    "my_nonce",
    "sas_algs",
    "dhkeys",
    "nonce",
    "counter",
    "terminate",
    "identity",
    "mac",
];

/// The fields of `form` outside `known` (fixed fields, which have no var, left out), in order.
fn others(form: &DataForm, known: &[&str]) -> Vec<Field> {
    form.fields.iter().filter(|f| f.var.as_deref().is_some_and(|v| !known.contains(&v))).cloned().collect()
}

/// Whether `answers` gives a value to field `var`.
fn answers_var(answers: &[Field], var: &str) -> bool {
    answers.iter().any(|f| f.var() == var && !f.values.is_empty())
}

fn decode(v: &str, var: &str) -> Result<Vec<u8>> {
    mpi::b64_decode(v).map_err(|_| Error::Base64 { var: var.into() })
}

// ---------------------------------------------------------------------------------------------
// Writing helpers

struct Writer {
    profile: Profile,
    form: DataForm,
}

impl Writer {
    fn new(profile: Profile, t: FormType) -> Self {
        let mut w = Self { profile, form: DataForm::new(t) };
        w.push(Field::new("FORM_TYPE").typed(FieldType::Hidden).value(FORM_TYPE), true);
        w
    }

    /// Adds a field; answers (`typed` false) carry only `var` in `Xep` and `text-single` in Gajim.
    fn push(&mut self, mut f: Field, typed: bool) {
        if !typed {
            f.type_ = None;
        }
        if self.profile == Profile::Gajim && f.type_.is_none() {
            f.type_ = Some(FieldType::TextSingle);
        }
        if self.profile == Profile::Gajim && f.var.as_deref() == Some("modp") {
            for o in &mut f.options {
                o.label = Some("None".into());
            }
        }
        self.form.fields.push(f);
    }

    fn list<T: ToString>(&mut self, var: &str, t: FieldType, items: &[T], required: bool) {
        let mut f = Field::new(var).typed(t).options(items.iter().map(ToString::to_string));
        f.required = required;
        self.push(f, true);
    }

    fn value(&mut self, var: &str, t: Option<FieldType>, v: impl Into<String>) {
        let mut f = Field::new(var).value(v);
        f.type_ = t;
        self.push(f, t.is_some());
    }

    fn values(&mut self, var: &str, t: Option<FieldType>, vs: impl IntoIterator<Item = String>) {
        let mut f = Field::new(var);
        f.values.extend(vs);
        f.type_ = t;
        self.push(f, t.is_some());
    }

    fn b64(&mut self, var: &str, t: Option<FieldType>, v: &[u8]) {
        self.value(var, t, mpi::b64_encode(v));
    }

    fn finish(self) -> DataForm {
        self.form
    }
}

fn strs<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// The forms

/// Any ESession form, recognised by its shape (for dispatchers and the fuzzer).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnyForm {
    /// A request.
    Request(Request),
    /// XEP-0187 offline options.
    OfflineOptions(OfflineOptions),
    /// Bob's answer (or an offline start).
    Response(Response),
    /// Alice's accept.
    Accept(Accept),
    /// Bob's identity (4th message).
    BobIdentity(BobIdentity),
    /// A stanza-session answer without ESession.
    Ssn(SsnAnswer),
    /// Termination or its acknowledgement.
    Terminate(Terminate),
}

impl AnyForm {
    /// Classifies and parses a form.
    ///
    /// # Errors
    /// The error of the parser the shape selects.
    pub fn parse(form: &DataForm) -> Result<Self> {
        let has = |v: &str| form.field(v).is_some();
        if has("terminate") && !has("identity") && !has("dhkeys") {
            return Terminate::parse(form).map(AnyForm::Terminate);
        }
        if form.type_ == FormType::Form {
            if has("expires") {
                return OfflineOptions::parse(form).map(AnyForm::OfflineOptions);
            }
            return Request::parse(form).map(AnyForm::Request);
        }
        if has("srshash") {
            return BobIdentity::parse(form).map(AnyForm::BobIdentity);
        }
        if has("counter") {
            return Response::parse(form).map(AnyForm::Response);
        }
        if has("identity") {
            return Accept::parse(form).map(AnyForm::Accept);
        }
        SsnAnswer::parse(form).map(AnyForm::Ssn)
    }
}

/// Builds an option list field from typed values (for callers composing their own forms).
#[must_use]
pub fn options_field<T: ToString>(var: &str, t: FieldType, values: &[T]) -> Field {
    Field {
        options: values.iter().map(|v| FormOption::new(v.to_string())).collect(),
        ..Field::new(var).typed(t)
    }
}
