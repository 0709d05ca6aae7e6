//! The one path of every form a party sends, and the one way a received form is read.
//!
//! Sending: build the form, let the [`Shaper`] make the sender's free choices, re-read what will
//! actually be sent (a MAC covers the form as sent), check that it still carries what the party
//! relies on, normalize it. Receiving: find the wrapper and its form, parse the typed form.

use crate::error::Check;
use crate::shape::{FormKind, Shaper};
use esession_crypto::Profile;
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Accept, BobIdentity, Request, Response, Wrapper};
use esession_forms::normalize::form_content;
use minidom::Element;

/// A form of the negotiation, as this crate sends and reads it.
pub(crate) trait Form: Sized {
    /// Which form (for the shaper).
    const KIND: FormKind;
    /// Its element as `profile` writes it (`hidden_types`: Example 11's types on an accept).
    fn element(&self, profile: Profile, hidden_types: bool) -> Element;
    /// Parses a received form.
    fn read(form: &DataForm) -> esession_forms::Result<Self>;
}

impl Form for Request {
    const KIND: FormKind = FormKind::Request;
    fn element(&self, profile: Profile, _: bool) -> Element {
        self.to_form(profile).to_element_with(profile == Profile::Gajim)
    }
    fn read(form: &DataForm) -> esession_forms::Result<Self> {
        Request::parse(form)
    }
}

impl Form for Response {
    const KIND: FormKind = FormKind::Response;
    fn element(&self, profile: Profile, _: bool) -> Element {
        // A result form: no field is required, so no layout of `<required/>` arises.
        self.to_form(profile).to_element()
    }
    fn read(form: &DataForm) -> esession_forms::Result<Self> {
        Response::parse(form)
    }
}

impl Form for Accept {
    const KIND: FormKind = FormKind::Accept;
    fn element(&self, profile: Profile, hidden_types: bool) -> Element {
        // A result form: no field is required, so no layout of `<required/>` arises.
        self.to_form(profile, hidden_types).to_element()
    }
    fn read(form: &DataForm) -> esession_forms::Result<Self> {
        Accept::parse(form)
    }
}

impl Form for BobIdentity {
    const KIND: FormKind = FormKind::BobIdentity;
    fn element(&self, profile: Profile, _: bool) -> Element {
        // A result form: no field is required, so no layout of `<required/>` arises.
        self.to_form(profile).to_element()
    }
    fn read(form: &DataForm) -> esession_forms::Result<Self> {
        BobIdentity::parse(form)
    }
}

/// A form about to be sent: the `<x/>`, what it says (re-read), and its normalized content
/// without `identity` and `mac` (what the MACs cover).
pub(crate) struct Outgoing<T> {
    pub(crate) x: Element,
    pub(crate) form: T,
    pub(crate) content: Vec<u8>,
    /// The fields the form marks `<required/>` (a request's: the answer must give each a
    /// value, XEP-0155 §4.2).
    pub(crate) required: Vec<String>,
}

/// The outgoing path: build, shape, re-read, check, normalize.
///
/// # Errors
/// [`crate::Error::Config`] when the shaped form does not parse or `keeps` refuses it (it no
/// longer carries our DH value, nonce or choices).
pub(crate) fn outgoing<T: Form>(
    profile: Profile,
    hidden_types: bool,
    shaper: &mut Option<Box<dyn Shaper>>,
    proposed: &T,
    keeps: impl FnOnce(&T) -> bool,
) -> crate::Result<Outgoing<T>> {
    let x = proposed.element(profile, hidden_types);
    let x = match shaper.as_mut() {
        Some(s) => s.shape(T::KIND, x),
        None => x,
    };
    // What we send is what counts: re-read it (a shaper may have changed the layout).
    let data = DataForm::parse(&x).map_err(|_| crate::Error::Config("the form sent does not parse"))?;
    let form = T::read(&data).map_err(|_| crate::Error::Config("the form sent does not parse"))?;
    let required = data.fields.iter().filter(|f| f.required).filter_map(|f| f.var.clone()).collect();
    if !keeps(&form) {
        return Err(crate::Error::Config("the form sent does not carry what we stand by"));
    }
    // X116-4.5.4-05: form_B (and form_A2, form_B2) never includes `identity` or `mac`.
    let content = form_content(profile, &x, &["identity", "mac"])
        .map_err(|_| crate::Error::Config("cannot normalize the form sent"))?;
    Ok(Outgoing { x, form, content, required })
}

/// A received negotiation form: its wrapper (quoted in an error reply), its `<x/>` and the
/// parsed data form.
pub(crate) struct Incoming<'a> {
    pub(crate) wrapper: &'a Element,
    pub(crate) x: &'a Element,
    pub(crate) data: DataForm,
}

/// Why a received stanza could not be read as a form.
pub(crate) enum Unread<'a> {
    /// No ESession wrapper at all (not for a negotiation).
    NoWrapper,
    /// A wrapper without one data form (nothing to quote usefully).
    NoForm,
    /// A data form that does not parse (quote the wrapper).
    BadForm(&'a Element),
}

/// Finds the wrapper and its data form.
pub(crate) fn incoming(stanza: &Element) -> Result<Incoming<'_>, Unread<'_>> {
    let wrapper = Wrapper::find(stanza).ok_or(Unread::NoWrapper)?;
    let (_, x) = Wrapper::unwrap(wrapper).map_err(|_| Unread::NoForm)?;
    let data = DataForm::parse(x).map_err(|_| Unread::BadForm(wrapper))?;
    Ok(Incoming { wrapper, x, data })
}

impl Incoming<'_> {
    /// The normalized content of the received form, without `identity` and `mac`.
    pub(crate) fn content(&self, profile: Profile) -> Result<Vec<u8>, Check> {
        // X116-4.5.4-05: the received form without `identity` and `mac`.
        form_content(profile, self.x, &["identity", "mac"]).map_err(|_| Check::Form)
    }

    /// The normalized content of the whole received form (Alice's request: form_A).
    pub(crate) fn whole_content(&self, profile: Profile) -> Result<Vec<u8>, Check> {
        form_content(profile, self.x, &[]).map_err(|_| Check::Form)
    }
}
