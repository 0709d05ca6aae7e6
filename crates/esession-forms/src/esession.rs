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

/// How Alice commits to her DH values in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhOffer {
    /// 4-message: `dhhashes`, He = SHA256(e) per offered group.
    Hashes(Vec<Vec<u8>>),
    /// 3-message: `dhkeys`, e per offered group.
    Keys(Vec<Vec<u8>>),
}

impl DhOffer {
    /// The values, one per offered group.
    #[must_use]
    pub fn values(&self) -> &[Vec<u8>] {
        match self {
            DhOffer::Hashes(v) | DhOffer::Keys(v) => v,
        }
    }
}

/// The options common to Alice's request and her XEP-0187 offline options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offers {
    /// `logging`, in preference order.
    pub logging: Vec<Logging>,
    /// `disclosure`.
    pub disclosure: Vec<Disclosure>,
    /// `security`.
    pub security: Vec<Security>,
    /// `modp`.
    pub modp: Vec<ModpGroup>,
    /// `crypt_algs`.
    pub crypt_algs: Vec<CryptAlg>,
    /// `hash_algs`.
    pub hash_algs: Vec<HashAlg>,
    /// `sign_algs`; empty when the field is absent (identities fixed to `none`, I3).
    pub sign_algs: Vec<SignAlg>,
    /// `compress`.
    pub compress: Vec<Compress>,
    /// `stanzas`.
    pub stanzas: Vec<StanzaType>,
    /// `ver`.
    pub ver: Vec<Version>,
    /// `rekey_freq`: the minimum stanzas between key exchanges (1 to 2^32 - 1).
    pub rekey_freq: u32,
}

impl Offers {
    /// The fields of a response whose chosen value is not among these offers (XEP-0116 §4.6.1
    /// step 1, XEP-0187 §3.4), in field order. Only membership is checked here: whether a
    /// value is also implemented, and the identity fields, are the caller's to check.
    #[must_use]
    pub fn unacceptable(&self, r: &Response) -> Vec<&'static str> {
        let mut bad = Vec::new();
        let mut need = |ok: bool, var: &'static str| {
            if !ok {
                bad.push(var);
            }
        };
        need(self.logging.contains(&r.logging), "logging");
        need(self.disclosure.contains(&r.disclosure), "disclosure");
        need(r.security == Security::E2e && self.security.contains(&r.security), "security");
        need(self.modp.contains(&r.modp) && r.modp.is_supported(), "modp");
        need(self.crypt_algs.contains(&r.crypt_alg), "crypt_algs");
        need(self.hash_algs.contains(&r.hash_alg), "hash_algs");
        need(r.sign_alg.as_ref().is_none_or(|a| self.sign_algs.contains(a)), "sign_algs");
        need(self.compress.contains(&r.compress), "compress");
        need(!r.stanzas.is_empty() && r.stanzas.iter().all(|t| self.stanzas.contains(t)), "stanzas");
        need(r.ver == Version::V1_0 && self.ver.contains(&r.ver), "ver");
        need(r.rekey_freq >= self.rekey_freq, "rekey_freq");
        bad
    }

    fn read(r: &Reader<'_>) -> Result<Self> {
        Ok(Self {
            logging: r.logging_offer()?,
            disclosure: r.offer("disclosure")?,
            security: r.offer("security")?,
            modp: {
                let f = r.req("modp")?;
                let raw: Vec<&str> = if f.options.is_empty() {
                    f.values.iter().map(String::as_str).collect()
                } else {
                    f.options.iter().map(|o| o.value.as_str()).collect()
                };
                if raw.is_empty() {
                    return Err(Error::BadValue { var: "modp".into(), reason: "no option offered" });
                }
                // A malformed number is still one offered group (so dhhashes stay aligned).
                raw.iter().map(|s| s.parse().unwrap_or(ModpGroup::Unknown(0))).collect()
            },
            crypt_algs: r.offer("crypt_algs")?,
            hash_algs: r.offer("hash_algs")?,
            sign_algs: match r.get("sign_algs") {
                Some(f) => r.offer_of(f, "sign_algs")?,
                None => Vec::new(),
            },
            compress: r.offer("compress")?,
            stanzas: r.offer("stanzas")?,
            ver: r.offer("ver")?,
            rekey_freq: r.rekey_freq()?,
        })
    }

    fn write_head(&self, w: &mut Writer) {
        w.list("logging", FieldType::ListSingle, &self.logging, true);
        w.list("disclosure", FieldType::ListSingle, &self.disclosure, true);
        w.list("security", FieldType::ListSingle, &self.security, true);
        w.list("modp", FieldType::ListSingle, &self.modp, false);
        w.list("crypt_algs", FieldType::ListSingle, &self.crypt_algs, false);
        w.list("hash_algs", FieldType::ListSingle, &self.hash_algs, false);
        if !self.sign_algs.is_empty() {
            w.list("sign_algs", FieldType::ListSingle, &self.sign_algs, false);
        }
        w.list("compress", FieldType::ListSingle, &self.compress, false);
        w.list("stanzas", FieldType::ListMulti, &self.stanzas, false);
    }

    fn write_tail(&self, w: &mut Writer) {
        w.list("ver", FieldType::ListSingle, &self.ver, false);
        w.value("rekey_freq", Some(FieldType::TextSingle), self.rekey_freq.to_string());
    }
}

/// Alice's ESession request (XEP-0116 §4.3, Examples 3 and 4), a `form`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `accept` (true: Alice wants a session).
    pub accept: bool,
    /// The options.
    pub offers: Offers,
    /// `init_pubkey`.
    pub init_pubkey: Vec<PubkeyMethod>,
    /// `resp_pubkey`.
    pub resp_pubkey: Vec<PubkeyMethod>,
    /// `my_nonce`: N_A.
    pub my_nonce: Vec<u8>,
    /// `sas_algs` (4-message only; empty for 3-message, I2).
    pub sas_algs: Vec<SasAlg>,
    /// `dhhashes` (4-message) or `dhkeys` (3-message), one per `modp` option (A4).
    pub dh: DhOffer,
    /// Every other field, as received and in order: XEP-0155 fields (`language`, `xhtml-im`,
    /// `chatstates`...) and unknown ones, with their `<required/>` flag and default values, for
    /// the responder to answer or refuse (XEP-0155 §4.2, §4.3). Empty in our own requests.
    pub other: Vec<Field>,
}

impl Request {
    /// The element this form travels in (A8).
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Feature
    }

    /// Whether this is a 4-message request (it commits with `dhhashes`).
    #[must_use]
    pub fn is_four_message(&self) -> bool {
        matches!(self.dh, DhOffer::Hashes(_))
    }

    /// Parses a request.
    ///
    /// # Errors
    /// Missing or malformed fields; a number of DH values different from the number of groups.
    pub fn parse(form: &DataForm) -> Result<Self> {
        if form.type_ != FormType::Form {
            return Err(Error::WrongDataFormType);
        }
        let r = Reader::new(form)?;
        let offers = Offers::read(&r)?;
        let dh = match (r.get("dhhashes"), r.get("dhkeys")) {
            (Some(_), None) => DhOffer::Hashes(r.b64_list("dhhashes")?),
            (None, Some(_)) => DhOffer::Keys(r.b64_list("dhkeys")?),
            (None, None) => return Err(Error::MissingField("dhhashes")),
            (Some(_), Some(_)) => {
                return Err(Error::BadValue { var: "dhkeys".into(), reason: "both dhhashes and dhkeys" });
            }
        };
        if dh.values().len() != offers.modp.len() {
            let var = if matches!(dh, DhOffer::Hashes(_)) { "dhhashes" } else { "dhkeys" };
            return Err(Error::BadValue { var: var.into(), reason: "one value per modp option" });
        }
        // Each commitment is a SHA-256 output (§4.3, He = SHA256(e)): an empty or short value
        // commits to nothing, and a responder would answer and keep state for it.
        if let DhOffer::Hashes(h) = &dh
            && h.iter().any(|he| he.len() != HE_LEN)
        {
            return Err(Error::BadValue { var: "dhhashes".into(), reason: "a commitment is not 32 octets" });
        }
        // 3-message requests have no sas_algs (I2), except in the deployed dialect, whose
        // requests always carry it: read when present.
        let sas_algs = match (&dh, r.get("sas_algs")) {
            (_, Some(f)) => r.offer_of(f, "sas_algs")?,
            (DhOffer::Hashes(_), None) => return Err(Error::MissingField("sas_algs")),
            (DhOffer::Keys(_), None) => Vec::new(),
        };
        Ok(Self {
            // X155-4.1-04 X155-13-02: a request without `accept` is not a request.
            accept: r.boolean("accept")?,
            offers,
            init_pubkey: r.offer("init_pubkey")?,
            resp_pubkey: r.offer("resp_pubkey")?,
            my_nonce: r.nonce("my_nonce")?,
            sas_algs,
            dh,
            other: others(form, &REQUEST_VARS),
        })
    }

    /// Serializes in the layout of XEP-0116 Example 3 (I1).
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        // X155-4.1-04: the hidden FORM_TYPE urn:xmpp:ssn (`Writer::new`) and the required
        // boolean `accept`.
        let mut w = Writer::new(profile, FormType::Form);
        let accept = Field::new("accept")
            .typed(FieldType::Boolean)
            .value(if self.accept { "1" } else { "0" })
            .required();
        w.push(accept, true);
        self.offers.write_head(&mut w);
        w.list("init_pubkey", FieldType::ListSingle, &self.init_pubkey, false);
        w.list("resp_pubkey", FieldType::ListSingle, &self.resp_pubkey, false);
        self.offers.write_tail(&mut w);
        w.b64("my_nonce", Some(FieldType::Hidden), &self.my_nonce);
        match &self.dh {
            DhOffer::Hashes(v) => {
                w.list("sas_algs", FieldType::ListSingle, &self.sas_algs, false);
                w.values("dhhashes", Some(FieldType::Hidden), v.iter().map(|h| mpi::b64_encode(h)));
            }
            DhOffer::Keys(v) => {
                if !self.sas_algs.is_empty() {
                    w.list("sas_algs", FieldType::ListSingle, &self.sas_algs, false);
                }
                w.values("dhkeys", Some(FieldType::Hidden), v.iter().map(|e| mpi::b64_encode(e)))
            }
        }
        // Other fields exactly as they were given.
        w.form.fields.extend(self.other.iter().cloned());
        w.finish()
    }
}

/// Bob's answer (XEP-0116 §4.5.2, Examples 8 and 9; the XEP-0187 offline start, Example 7), a
/// `submit`: one chosen value per option field, his nonce and d, Alice's nonce and C_A; in a
/// 3-message negotiation (and offline) also his identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `accept` (absent from an XEP-0187 offline start, whose options had none, A1).
    pub accept: Option<bool>,
    /// `logging`.
    pub logging: Logging,
    /// `disclosure`.
    pub disclosure: Disclosure,
    /// `security`.
    pub security: Security,
    /// `modp`.
    pub modp: ModpGroup,
    /// `crypt_algs`.
    pub crypt_alg: CryptAlg,
    /// `hash_algs`.
    pub hash_alg: HashAlg,
    /// `sign_algs` (absent when both identities are `none`).
    pub sign_alg: Option<SignAlg>,
    /// `compress`.
    pub compress: Compress,
    /// `stanzas`: every accepted type.
    pub stanzas: Vec<StanzaType>,
    /// `init_pubkey` (absent in an offline start, A1).
    pub init_pubkey: Option<PubkeyMethod>,
    /// `resp_pubkey` (absent in an offline start, A1).
    pub resp_pubkey: Option<PubkeyMethod>,
    /// `ver`.
    pub ver: Version,
    /// `rekey_freq`.
    pub rekey_freq: u32,
    /// `my_nonce`: N_B.
    pub my_nonce: Vec<u8>,
    /// `sas_algs` (4-message).
    pub sas_alg: Option<SasAlg>,
    /// `dhkeys`: d.
    pub d: Vec<u8>,
    /// `nonce`: N_A echoed.
    pub nonce: Vec<u8>,
    /// `counter`: C_A.
    pub counter: u128,
    /// `terminate` (offline object encryption, I4: part of form_B).
    pub terminate: bool,
    /// `identity`: ID_B (3-message and offline).
    pub identity: Option<Vec<u8>>,
    /// `mac`: M_B (3-message and offline).
    pub mac: Option<Vec<u8>>,
    /// Answers to the request's other fields (XEP-0155 §4.2: `language`, `xhtml-im`...), each a
    /// `var` with its value; written after `security`, so form_B (and its MAC) covers them. On
    /// receipt: every field outside the ESession set, as received.
    pub other: Vec<Field>,
}

impl Response {
    /// The element this form travels in (A8): `<init/>` for an XEP-0187 offline start (an answer
    /// with an identity and no `accept`), `<feature/>` otherwise.
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        if self.accept.is_none() && self.identity.is_some() { Wrapper::Init } else { Wrapper::Feature }
    }

    /// Whether this response gives a value to the request's field `var` (XEP-0155 §4.2: every
    /// field the request marked required must be answered). `dhhashes` is answered by `dhkeys`
    /// (d, §4.5.2) and `otr` by `logging` (A2).
    #[must_use]
    pub fn answers(&self, var: &str) -> bool {
        match var {
            "FORM_TYPE" | "logging" | "otr" | "disclosure" | "security" | "modp" | "crypt_algs"
            | "hash_algs" | "compress" | "stanzas" | "ver" | "rekey_freq" | "my_nonce" | "dhhashes"
            | "dhkeys" => true,
            "accept" => self.accept.is_some(),
            "sign_algs" => self.sign_alg.is_some(),
            "init_pubkey" => self.init_pubkey.is_some(),
            "resp_pubkey" => self.resp_pubkey.is_some(),
            "sas_algs" => self.sas_alg.is_some(),
            other => answers_var(&self.other, other),
        }
    }

    /// Parses an answer.
    ///
    /// # Errors
    /// Missing or malformed fields.
    pub fn parse(form: &DataForm) -> Result<Self> {
        if !matches!(form.type_, FormType::Submit | FormType::Result) {
            return Err(Error::WrongDataFormType);
        }
        let r = Reader::new(form)?;
        let counter = mpi::decode_u128(&r.b64("counter")?)
            .map_err(|_| Error::BadValue { var: "counter".into(), reason: "more than 128 bits" })?;
        let stanzas_field = r.req("stanzas")?;
        let stanzas = stanzas_field.values.iter().filter_map(|v| v.parse().ok()).collect::<Vec<StanzaType>>();
        if stanzas.is_empty() {
            return Err(Error::ValueCount { var: "stanzas".into() });
        }
        let identity = r.opt_b64("identity")?;
        let mac = r.opt_b64("mac")?;
        if identity.is_some() != mac.is_some() {
            return Err(Error::MissingField(if identity.is_some() { "mac" } else { "identity" }));
        }
        Ok(Self {
            accept: match r.get("accept") {
                Some(_) => Some(r.boolean("accept")?),
                None => None,
            },
            logging: r.logging_choice()?,
            disclosure: r.choice("disclosure")?,
            security: r.choice("security")?,
            modp: r
                .one("modp")?
                .parse()
                .map_err(|_| Error::BadValue { var: "modp".into(), reason: "not a group number" })?,
            crypt_alg: r.choice("crypt_algs")?,
            hash_alg: r.choice("hash_algs")?,
            sign_alg: r.opt_choice("sign_algs")?,
            compress: r.choice("compress")?,
            stanzas,
            init_pubkey: r.opt_choice("init_pubkey")?,
            resp_pubkey: r.opt_choice("resp_pubkey")?,
            ver: r.choice("ver")?,
            rekey_freq: r.rekey_freq()?,
            my_nonce: r.nonce("my_nonce")?,
            sas_alg: r.opt_choice("sas_algs")?,
            d: r.b64("dhkeys")?,
            nonce: r.nonce("nonce")?,
            counter,
            terminate: r.opt_boolean("terminate")?,
            identity,
            mac,
            other: others(form, &RESPONSE_VARS),
        })
    }

    /// Serializes in the layout of Examples 8/9 (I4): fields carry only `var`.
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        let mut w = Writer::new(profile, FormType::Submit);
        w.form.fields[0].type_ = None;
        if profile == Profile::Gajim {
            w.form.fields[0].type_ = Some(FieldType::TextSingle);
        }
        if let Some(a) = self.accept {
            w.value("accept", None, if a { "1" } else { "0" });
        }
        w.value("logging", None, self.logging.as_str());
        w.value("disclosure", None, self.disclosure.as_str());
        w.value("security", None, self.security.as_str());
        // X155-4.2-04: the answers to the request's other fields, inside form_B.
        w.form.fields.extend(self.other.iter().cloned());
        w.value("modp", None, self.modp.to_string());
        w.value("crypt_algs", None, self.crypt_alg.as_str());
        w.value("hash_algs", None, self.hash_alg.as_str());
        if let Some(s) = &self.sign_alg {
            w.value("sign_algs", None, s.as_str());
        }
        w.value("compress", None, self.compress.as_str());
        w.values("stanzas", None, strs(&self.stanzas));
        if let Some(p) = &self.init_pubkey {
            w.value("init_pubkey", None, p.as_str());
        }
        if let Some(p) = &self.resp_pubkey {
            w.value("resp_pubkey", None, p.as_str());
        }
        w.value("ver", None, self.ver.as_str());
        w.value("rekey_freq", None, self.rekey_freq.to_string());
        // X116-4.5.2-04: N_B and d in `my_nonce` and `dhkeys` (never `dhhashes`).
        w.b64("my_nonce", None, &self.my_nonce);
        if let Some(s) = &self.sas_alg {
            w.value("sas_algs", None, s.as_str());
        }
        w.b64("dhkeys", None, &self.d);
        // X116-4.5.2-06: `nonce` (N_A) and `counter` (C_A) appended, as Examples 8 and 9.
        w.b64("nonce", None, &self.nonce);
        w.b64("counter", None, &mpi::encode_u128(self.counter));
        if self.terminate {
            w.value("terminate", None, "1");
        }
        if let (Some(id), Some(mac)) = (&self.identity, &self.mac) {
            w.b64("identity", None, id);
            w.b64("mac", None, mac);
        }
        w.finish()
    }
}

/// Alice's accept (XEP-0116 §4.6.4, Examples 10 and 11), a `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// `accept`.
    pub accept: bool,
    /// `nonce`: N_B echoed.
    pub nonce: Vec<u8>,
    /// `dhkeys`: e (4-message only).
    pub e: Option<Vec<u8>>,
    /// `rshashes` (4-message): real ones and decoys.
    pub rshashes: Vec<Vec<u8>>,
    /// `terminate`: object encryption, the session ends with this stanza.
    pub terminate: bool,
    /// `identity`: ID_A.
    pub identity: Vec<u8>,
    /// `mac`: M_A.
    pub mac: Vec<u8>,
}

impl Accept {
    /// The element this form travels in (A8).
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Feature
    }

    /// Parses an accept.
    ///
    /// # Errors
    /// Missing or malformed fields.
    pub fn parse(form: &DataForm) -> Result<Self> {
        if !matches!(form.type_, FormType::Result | FormType::Submit) {
            return Err(Error::WrongDataFormType);
        }
        let r = Reader::new(form)?;
        let e = r.opt_b64("dhkeys")?;
        let rshashes = match r.get("rshashes") {
            Some(f) => f.values.iter().map(|v| decode(v, "rshashes")).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok(Self {
            accept: r.boolean("accept")?,
            nonce: r.nonce("nonce")?,
            e,
            rshashes,
            terminate: r.opt_boolean("terminate")?,
            identity: r.b64("identity")?,
            mac: r.b64("mac")?,
        })
    }

    /// Serializes in the layout of Examples 10/11; `hidden_types` puts `type='hidden'` on
    /// `dhkeys` and `rshashes` exactly as Example 11 prints them (I5).
    #[must_use]
    pub fn to_form(&self, profile: Profile, hidden_types: bool) -> DataForm {
        let mut w = Writer::new(profile, FormType::Result);
        w.form.fields[0].type_ = if profile == Profile::Gajim { Some(FieldType::TextSingle) } else { None };
        let hidden = hidden_types.then_some(FieldType::Hidden);
        w.value("accept", None, if self.accept { "1" } else { "0" });
        w.b64("nonce", None, &self.nonce);
        if let Some(e) = &self.e {
            w.b64("dhkeys", hidden, e);
        }
        // rshashes is written whenever it has values, with or without dhkeys (a fuzzer found a
        // form with rshashes and no dhkeys that did not survive a round trip).
        if !self.rshashes.is_empty() {
            w.values("rshashes", hidden, self.rshashes.iter().map(|h| mpi::b64_encode(h)));
        }
        if self.terminate {
            w.value("terminate", None, "1");
        }
        w.b64("identity", None, &self.identity);
        w.b64("mac", None, &self.mac);
        w.finish()
    }
}

/// Bob's identity, the fourth message of a 4-message negotiation (Example 12), a `result` in
/// `<init/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BobIdentity {
    /// `nonce`: N_A echoed.
    pub nonce: Vec<u8>,
    /// `srshash`.
    pub srshash: Vec<u8>,
    /// `identity`: ID_B.
    pub identity: Vec<u8>,
    /// `mac`: M_B.
    pub mac: Vec<u8>,
}

impl BobIdentity {
    /// The element this form travels in (A8).
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Init
    }

    /// Parses the form.
    ///
    /// # Errors
    /// Missing or malformed fields.
    pub fn parse(form: &DataForm) -> Result<Self> {
        let r = Reader::new(form)?;
        Ok(Self {
            nonce: r.nonce("nonce")?,
            srshash: r.b64("srshash")?,
            identity: r.b64("identity")?,
            mac: r.b64("mac")?,
        })
    }

    /// Serializes as Example 12.
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        let mut w = Writer::new(profile, FormType::Result);
        w.form.fields[0].type_ = if profile == Profile::Gajim { Some(FieldType::TextSingle) } else { None };
        w.b64("nonce", None, &self.nonce);
        w.b64("srshash", None, &self.srshash);
        w.b64("identity", None, &self.identity);
        w.b64("mac", None, &self.mac);
        w.finish()
    }
}

/// Bob's stanza-session answer without encryption (XEP-0116 §4.4 Example 7, XEP-0155): he
/// accepts a session with `security` `c2s` or `none`, or declines (`accept` false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsnAnswer {
    /// `accept`.
    pub accept: bool,
    /// `logging`.
    pub logging: Option<Logging>,
    /// `disclosure`.
    pub disclosure: Option<Disclosure>,
    /// `security` (`c2s` or `none` when accepting).
    pub security: Option<Security>,
    /// Answers to the request's other fields (XEP-0155 §4.2), after `security`. On receipt:
    /// every field outside the ESession set, as received.
    pub other: Vec<Field>,
}

impl SsnAnswer {
    /// The element this form travels in (A8).
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Feature
    }

    /// Parses an answer that has no ESession fields (no `dhkeys`).
    ///
    /// # Errors
    /// Missing `accept`, or an ESession response (which [`Response`] parses).
    pub fn parse(form: &DataForm) -> Result<Self> {
        let r = Reader::new(form)?;
        if r.get("dhkeys").is_some() {
            return Err(Error::UnexpectedContent("an ESession response, not an SSN answer"));
        }
        Ok(Self {
            accept: r.boolean("accept")?,
            logging: if r.get("logging").is_some() || r.get("otr").is_some() {
                Some(r.logging_choice()?)
            } else {
                None
            },
            disclosure: r.opt_choice("disclosure")?,
            security: r.opt_choice("security")?,
            other: others(form, &RESPONSE_VARS),
        })
    }

    /// Whether this answer gives a value to the request's field `var` (XEP-0155 §4.2).
    #[must_use]
    pub fn answers(&self, var: &str) -> bool {
        match var {
            "FORM_TYPE" | "accept" => true,
            "logging" | "otr" => self.logging.is_some(),
            "disclosure" => self.disclosure.is_some(),
            "security" => self.security.is_some(),
            other => answers_var(&self.other, other),
        }
    }

    /// Serializes as Example 7.
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        let mut w = Writer::new(profile, FormType::Submit);
        w.form.fields[0].type_ = if profile == Profile::Gajim { Some(FieldType::TextSingle) } else { None };
        w.value("accept", None, if self.accept { "1" } else { "0" });
        if let Some(l) = &self.logging {
            w.value("logging", None, l.as_str());
        }
        if let Some(d) = &self.disclosure {
            w.value("disclosure", None, d.as_str());
        }
        if let Some(s) = &self.security {
            w.value("security", None, s.as_str());
        }
        w.form.fields.extend(self.other.iter().cloned());
        w.finish()
    }
}

/// Alice's completion (`accept` true) or cancel (`accept` false) of a stanza session Bob
/// accepted without an ESession (XEP-0155 §4.4, Examples 7 and 8): a `result` with FORM_TYPE and
/// `accept` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsnCompletion {
    /// `accept`: true completes, false cancels.
    pub accept: bool,
}

impl SsnCompletion {
    /// The element this form travels in.
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Feature
    }

    /// Parses a completion or cancel.
    ///
    /// # Errors
    /// Not a `result`, no FORM_TYPE, no `accept`.
    pub fn parse(form: &DataForm) -> Result<Self> {
        if form.type_ != FormType::Result {
            return Err(Error::WrongDataFormType);
        }
        let r = Reader::new(form)?;
        Ok(Self { accept: r.boolean("accept")? })
    }

    /// Serializes as Examples 7 and 8 (fields with only `var`).
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        let mut w = Writer::new(profile, FormType::Result);
        w.form.fields[0].type_ = if profile == Profile::Gajim { Some(FieldType::TextSingle) } else { None };
        w.value("accept", None, if self.accept { "1" } else { "0" });
        w.finish()
    }
}

/// Termination (XEP-0155 §7, A14): `submit` with `terminate` = 1, acknowledged by a `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminate {
    /// The request to end the session.
    Request,
    /// The acknowledgement.
    Ack,
}

impl Terminate {
    /// The element this form travels in (inside the encrypted content of an ESession).
    #[must_use]
    pub fn wrapper(self) -> Wrapper {
        Wrapper::Feature
    }

    /// Parses a terminate form.
    ///
    /// # Errors
    /// A form without `terminate` true, or of another type.
    pub fn parse(form: &DataForm) -> Result<Self> {
        let r = Reader::new(form)?;
        if !r.boolean("terminate")? {
            return Err(Error::BadValue { var: "terminate".into(), reason: "not true" });
        }
        match form.type_ {
            FormType::Submit => Ok(Terminate::Request),
            FormType::Result => Ok(Terminate::Ack),
            _ => Err(Error::WrongDataFormType),
        }
    }

    /// Serializes (fields with only `var`, XEP-0155 Example 14).
    #[must_use]
    pub fn to_form(self, profile: Profile) -> DataForm {
        let t = if self == Terminate::Request { FormType::Submit } else { FormType::Result };
        let mut w = Writer::new(profile, t);
        w.form.fields[0].type_ = if profile == Profile::Gajim { Some(FieldType::TextSingle) } else { None };
        w.value("terminate", None, "1");
        w.finish()
    }
}

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
        if !is_xep0082_utc(&expires) {
            return Err(Error::BadValue { var: "expires".into(), reason: "not YYYY-MM-DDThh:mm:ssZ" });
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

/// Whether `s` is a XEP-0082 UTC DateTime without fractions: `YYYY-MM-DDThh:mm:ssZ`.
#[must_use]
pub fn is_xep0082_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: core::ops::Range<usize>| r.into_iter().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() == 20
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
        && b[19] == b'Z'
}

/// Any ESession form, recognised by its shape (for dispatchers and the fuzzer).
#[derive(Debug, Clone, PartialEq, Eq)]
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
