//! XEP-0004 data forms: `<x xmlns='jabber:x:data'/>` as a typed value.
//!
//! Parsing is strict: unknown field types, fields without `var` (other than `fixed`), duplicate
//! `var`s, more values than the type allows and options outside list fields are errors. Sizes are
//! bounded ([`MAX_FIELDS`], [`MAX_VALUES`], [`MAX_VALUE_LEN`]) so a hostile form is rejected
//! before it is processed.
//!
//! Two deliberate leniencies, both needed by deployed peers and by the XEP examples themselves:
//! a field *without* a `type` attribute may carry several values (XEP-0187 Example 3 sends
//! `dhkeys` and `signs` untyped), and in `submit` and `result` forms a `text-single` field may
//! carry several values (Gajim labels every field of its answers `text-single`, `rshashes` with
//! its decoys included; XEP-0004 says types are informational outside `form`s).

use crate::error::{Error, Result};
use crate::xml::{self, attr, ncname};
use core::fmt;
use core::str::FromStr;
use minidom::Element;

/// The `jabber:x:data` namespace.
pub const NS: &str = "jabber:x:data";
/// At most this many fields per form.
pub const MAX_FIELDS: usize = 256;
/// At most this many values plus options per field.
pub const MAX_VALUES: usize = 256;
/// At most this many octets per value (a Base64 identity with an RSA-8192 key is under 4 KiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The `type` of a data form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormType {
    /// Asks for a submission.
    Form,
    /// A submission.
    Submit,
    /// A cancellation.
    Cancel,
    /// Returned data.
    Result,
}

impl FormType {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FormType::Form => "form",
            FormType::Submit => "submit",
            FormType::Cancel => "cancel",
            FormType::Result => "result",
        }
    }
}

impl FromStr for FormType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "form" => FormType::Form,
            "submit" => FormType::Submit,
            "cancel" => FormType::Cancel,
            "result" => FormType::Result,
            other => return Err(Error::BadAttribute { name: "type", value: other.to_owned() }),
        })
    }
}

/// The `type` of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `boolean`.
    Boolean,
    /// `fixed`.
    Fixed,
    /// `hidden`.
    Hidden,
    /// `jid-multi`.
    JidMulti,
    /// `jid-single`.
    JidSingle,
    /// `list-multi`.
    ListMulti,
    /// `list-single`.
    ListSingle,
    /// `text-multi`.
    TextMulti,
    /// `text-private`.
    TextPrivate,
    /// `text-single` (the default).
    TextSingle,
}

impl FieldType {
    /// Every type.
    pub const ALL: [FieldType; 10] = [
        FieldType::Boolean,
        FieldType::Fixed,
        FieldType::Hidden,
        FieldType::JidMulti,
        FieldType::JidSingle,
        FieldType::ListMulti,
        FieldType::ListSingle,
        FieldType::TextMulti,
        FieldType::TextPrivate,
        FieldType::TextSingle,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Boolean => "boolean",
            FieldType::Fixed => "fixed",
            FieldType::Hidden => "hidden",
            FieldType::JidMulti => "jid-multi",
            FieldType::JidSingle => "jid-single",
            FieldType::ListMulti => "list-multi",
            FieldType::ListSingle => "list-single",
            FieldType::TextMulti => "text-multi",
            FieldType::TextPrivate => "text-private",
            FieldType::TextSingle => "text-single",
        }
    }

    /// Whether the type may carry several values (XEP-0004 §3.3).
    #[must_use]
    pub fn is_multi(self) -> bool {
        matches!(self, FieldType::JidMulti | FieldType::ListMulti | FieldType::TextMulti | FieldType::Hidden)
    }

    /// Whether the type may carry options.
    #[must_use]
    pub fn is_list(self) -> bool {
        matches!(self, FieldType::ListMulti | FieldType::ListSingle)
    }
}

impl FromStr for FieldType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        FieldType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Error::UnknownFieldType(s.to_owned()))
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `<option/>` of a list field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormOption {
    /// `label`.
    pub label: Option<String>,
    /// The single `<value/>`.
    pub value: String,
}

impl FormOption {
    /// An option without label.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self { label: None, value: value.into() }
    }
}

/// A `<field/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Field {
    /// `var` (absent only for `fixed`).
    pub var: Option<String>,
    /// `type`; absent means `text-single`.
    pub type_: Option<FieldType>,
    /// `label`.
    pub label: Option<String>,
    /// `<desc/>`.
    pub desc: Option<String>,
    /// `<required/>`.
    pub required: bool,
    /// `<value/>`s in order.
    pub values: Vec<String>,
    /// `<option/>`s in order.
    pub options: Vec<FormOption>,
}

impl Field {
    /// A field with a var and nothing else.
    #[must_use]
    pub fn new(var: impl Into<String>) -> Self {
        Self { var: Some(var.into()), ..Self::default() }
    }

    /// Sets the type.
    #[must_use]
    pub fn typed(mut self, t: FieldType) -> Self {
        self.type_ = Some(t);
        self
    }

    /// Adds a value.
    #[must_use]
    pub fn value(mut self, v: impl Into<String>) -> Self {
        self.values.push(v.into());
        self
    }

    /// Adds options.
    #[must_use]
    pub fn options<I: IntoIterator<Item = S>, S: Into<String>>(mut self, opts: I) -> Self {
        self.options.extend(opts.into_iter().map(FormOption::new));
        self
    }

    /// Marks it required.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The effective type (`text-single` when absent).
    #[must_use]
    pub fn effective_type(&self) -> FieldType {
        self.type_.unwrap_or(FieldType::TextSingle)
    }

    /// The var, or "" for `fixed` fields.
    #[must_use]
    pub fn var(&self) -> &str {
        self.var.as_deref().unwrap_or("")
    }

    /// What the field offers, in the offerer's order of preference: the default `<value/>`s
    /// that are among its options first (a default is the preferred value: XEP-0155 Example 1
    /// offers `logging` may and mustnot with the default mustnot), then the other options in
    /// order; a field without options offers its values.
    #[must_use]
    pub fn offered(&self) -> Vec<&str> {
        if self.options.is_empty() {
            return self.values.iter().map(String::as_str).collect();
        }
        let is_option = |v: &str| self.options.iter().any(|o| o.value == v);
        let mut out: Vec<&str> = Vec::with_capacity(self.options.len());
        for v in self.values.iter().map(String::as_str).filter(|v| is_option(v)) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        for o in &self.options {
            if !out.contains(&o.value.as_str()) {
                out.push(&o.value);
            }
        }
        out
    }
}

/// A data form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataForm {
    /// `type`.
    pub type_: FormType,
    /// `<title/>`.
    pub title: Option<String>,
    /// `<instructions/>`s.
    pub instructions: Vec<String>,
    /// The fields in order.
    pub fields: Vec<Field>,
}

impl DataForm {
    /// An empty form of the given type.
    #[must_use]
    pub fn new(type_: FormType) -> Self {
        Self { type_, title: None, instructions: Vec::new(), fields: Vec::new() }
    }

    /// The field with this var.
    #[must_use]
    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var.as_deref() == Some(var))
    }

    /// Parses and validates a `<x/>` element.
    ///
    /// # Errors
    /// See [`Error`]; the limits of this module apply.
    pub fn parse(e: &Element) -> Result<Self> {
        if !e.is("x", NS) {
            return Err(Error::UnexpectedElement { expected: "x" });
        }
        let type_: FormType = attr(e, "type").ok_or(Error::MissingAttribute("type"))?.parse()?;
        xml::no_text(e, "text in <x/>")?;
        let mut form = DataForm::new(type_);
        for child in e.children() {
            if !child.has_ns(NS) {
                continue; // extensions in other namespaces are ignored (XEP-0004 §3.1)
            }
            match child.name() {
                "title" => form.title = Some(xml::leaf_text(child)?),
                "instructions" => form.instructions.push(xml::leaf_text(child)?),
                "field" => {
                    if form.fields.len() >= MAX_FIELDS {
                        return Err(Error::TooLarge("fields"));
                    }
                    let field = parse_field(child, type_)?;
                    if let Some(v) = &field.var
                        && form.fields.iter().any(|f| f.var.as_deref() == Some(v))
                    {
                        return Err(Error::DuplicateVar(v.clone()));
                    }
                    form.fields.push(field);
                }
                "reported" | "item" => return Err(Error::UnexpectedContent("multi-item result")),
                _ => return Err(Error::UnexpectedContent("unknown jabber:x:data element")),
            }
        }
        Ok(form)
    }

    /// Serializes with the field layout of the XEP-0116 examples: `<desc/>`, `<value/>`s,
    /// `<option/>`s, then `<required/>` (I1).
    #[must_use]
    pub fn to_element(&self) -> Element {
        self.to_element_with(false)
    }

    /// Serializes; with `required_first`, `<required/>` precedes the values and options (the
    /// layout Gajim sends).
    #[must_use]
    pub fn to_element_with(&self, required_first: bool) -> Element {
        let mut x = Element::builder("x", NS).attr(ncname::TYPE.clone(), self.type_.as_str()).build();
        if let Some(t) = &self.title {
            x.append_child(Element::builder("title", NS).append(t.as_str()).build());
        }
        for i in &self.instructions {
            x.append_child(Element::builder("instructions", NS).append(i.as_str()).build());
        }
        for f in &self.fields {
            let mut b = Element::builder("field", NS);
            if let Some(l) = &f.label {
                b = b.attr(ncname::LABEL.clone(), l.as_str());
            }
            if let Some(t) = f.type_ {
                b = b.attr(ncname::TYPE.clone(), t.as_str());
            }
            if let Some(v) = &f.var {
                b = b.attr(ncname::VAR.clone(), v.as_str());
            }
            let mut fe = b.build();
            if let Some(d) = &f.desc {
                fe.append_child(Element::builder("desc", NS).append(d.as_str()).build());
            }
            if f.required && required_first {
                fe.append_child(Element::bare("required", NS));
            }
            for v in &f.values {
                fe.append_child(Element::builder("value", NS).append(v.as_str()).build());
            }
            for o in &f.options {
                let mut ob = Element::builder("option", NS);
                if let Some(l) = &o.label {
                    ob = ob.attr(ncname::LABEL.clone(), l.as_str());
                }
                let mut oe = ob.build();
                oe.append_child(Element::builder("value", NS).append(o.value.as_str()).build());
                fe.append_child(oe);
            }
            if f.required && !required_first {
                fe.append_child(Element::bare("required", NS));
            }
            x.append_child(fe);
        }
        x
    }
}

impl TryFrom<Element> for DataForm {
    type Error = Error;
    fn try_from(e: Element) -> Result<Self> {
        DataForm::parse(&e)
    }
}

impl From<DataForm> for Element {
    fn from(f: DataForm) -> Element {
        f.to_element()
    }
}

impl From<&DataForm> for Element {
    fn from(f: &DataForm) -> Element {
        f.to_element()
    }
}

fn parse_field(e: &Element, form_type: FormType) -> Result<Field> {
    let type_ = attr(e, "type").map(str::parse::<FieldType>).transpose()?;
    let var = attr(e, "var").map(str::to_owned);
    if var.is_none() && type_ != Some(FieldType::Fixed) {
        return Err(Error::MissingVar);
    }
    let name = var.clone().unwrap_or_default();
    let mut f = Field { var, type_, label: attr(e, "label").map(str::to_owned), ..Field::default() };
    xml::no_text(e, "text in <field/>")?;
    for c in e.children() {
        if !c.has_ns(NS) {
            continue;
        }
        if f.values.len() + f.options.len() >= MAX_VALUES {
            return Err(Error::TooLarge("values"));
        }
        match c.name() {
            "value" => f.values.push(bounded(xml::leaf_text(c)?)?),
            "desc" => f.desc = Some(bounded(xml::leaf_text(c)?)?),
            "required" => {
                if c.nodes().next().is_some() {
                    return Err(Error::UnexpectedContent("content in <required/>"));
                }
                f.required = true;
            }
            "option" => {
                xml::no_text(c, "text in <option/>")?;
                let values: Vec<&Element> = c.children().filter(|v| v.is("value", NS)).collect();
                if values.len() != 1 || c.children().count() != 1 {
                    return Err(Error::ValueCount { var: name.clone() });
                }
                let value = bounded(xml::leaf_text(values[0])?)?;
                f.options.push(FormOption { label: attr(c, "label").map(str::to_owned), value });
            }
            _ => return Err(Error::UnexpectedContent("unknown element in <field/>")),
        }
    }
    let t = f.effective_type();
    let lenient = f.type_.is_none()
        || (t == FieldType::TextSingle && matches!(form_type, FormType::Submit | FormType::Result));
    if f.values.len() > 1 && !t.is_multi() && !lenient {
        return Err(Error::ValueCount { var: name });
    }
    if !f.options.is_empty() && !t.is_list() {
        return Err(Error::UnexpectedOptions { var: name });
    }
    if t == FieldType::Boolean
        && let Some(v) = f.values.first()
        && parse_bool(v).is_none()
    {
        return Err(Error::BadValue { var: name, reason: "not a boolean" });
    }
    Ok(f)
}

fn bounded(s: String) -> Result<String> {
    if s.len() > MAX_VALUE_LEN { Err(Error::TooLarge("value")) } else { Ok(s) }
}

/// XEP-0004 booleans: `1`/`true` and `0`/`false`.
// X155-N11-01: both lexical forms of xs:boolean are read.
#[must_use]
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}
