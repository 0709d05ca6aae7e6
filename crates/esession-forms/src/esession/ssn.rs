//! Stanza sessions without encryption and termination (XEP-0116 §4.4, XEP-0155 §4.4, §7).

#[allow(clippy::wildcard_imports)]
use super::*;

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
