//! Building and reading the stanzas around the forms: messages with `<thread/>`, error replies
//! (XEP-0116 Examples 5 and 6, I23).

use crate::error::{Condition, Error};
use esession_forms::xml::{self, Limits};
use jid::Jid;
use minidom::Element;

/// The stanza namespace.
pub const CLIENT_NS: &str = "jabber:client";
const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

fn set(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(rxml_ns_none(), n, value.to_owned());
    }
}

fn rxml_ns_none() -> minidom::rxml::Namespace<'static> {
    minidom::rxml::Namespace::NONE
}

/// `<message to=... ><thread/>children</message>`.
#[must_use]
pub fn message(to: &Jid, thread: &str, children: Vec<Element>) -> Element {
    let mut m = Element::bare("message", CLIENT_NS);
    set(&mut m, "to", to.as_str());
    m.append_child(Element::builder("thread", CLIENT_NS).append(thread).build());
    for c in children {
        m.append_child(c);
    }
    m
}

/// An error reply: `<message type='error'>` with the thread, a copy of the received wrapper,
/// `<error type='cancel'>`, the condition and the fields it concerns. The copy is left out when
/// the wrapper is larger than [`Limits::QUOTE`]: a refusal never echoes an unbounded amount.
#[must_use]
pub fn error_reply(
    to: &Jid,
    thread: &str,
    received: Option<&Element>,
    condition: Condition,
    fields: &[String],
) -> Element {
    // The quoted wrapper carries none of the peer's prefix declarations, and only a bounded
    // wrapper is quoted.
    let mut m = message(
        to,
        thread,
        received.and_then(esession_forms::__internal::without_prefixes).into_iter().collect(),
    );
    set(&mut m, "type", "error");
    let mut err = Element::bare("error", CLIENT_NS);
    set(&mut err, "type", "cancel");
    err.append_child(Element::bare(condition.as_str(), STANZAS_NS));
    if !fields.is_empty() {
        let mut f = Element::bare("feature", esession_forms::esession::FEATURE_NEG_NS);
        for var in fields {
            let mut field = Element::bare("field", esession_forms::esession::FEATURE_NEG_NS);
            set(&mut field, "var", var);
            f.append_child(field);
        }
        err.append_child(f);
    }
    m.append_child(err);
    m
}

/// The `<thread/>` of a stanza.
#[must_use]
pub fn thread(stanza: &Element) -> Option<String> {
    stanza.children().find(|c| c.name() == "thread").map(Element::text)
}

/// The condition and field names of an error stanza, if it is one.
#[must_use]
pub fn error_of(stanza: &Element) -> Option<(Option<String>, Vec<String>)> {
    if stanza.attr("type") != Some("error") {
        return None;
    }
    let err = stanza.children().find(|c| c.name() == "error");
    let condition =
        err.and_then(|e| e.children().find(|c| c.ns() == STANZAS_NS).map(|c| c.name().to_owned()));
    let fields = err
        .and_then(|e| e.children().find(|c| c.name() == "feature"))
        // A peer's error names a few fields; no more than 32 are kept.
        .map(|f| f.children().filter_map(|c| c.attr("var").map(str::to_owned)).take(32).collect())
        .unwrap_or_default();
    Some((condition, fields))
}

/// What a party does first with a stanza it is handed (STYLE.md 14, RFC 6120 §8.3.1).
pub(crate) enum Screened {
    /// An error stanza: it ends the negotiation and is never answered.
    Error(Error),
    /// Larger than any negotiation message ([`Limits::NEGOTIATION`]): refused without reading
    /// it further and without quoting it.
    TooLarge,
    /// To be read.
    Read,
}

/// Screens a stanza before a negotiation reads it: error stanzas and oversized stanzas are
/// told apart before anything else (no walk below is recursive, no copy is made).
pub(crate) fn screen(stanza: &Element) -> Screened {
    if let Some((condition, fields)) = error_of(stanza) {
        return Screened::Error(Error::Rejected { condition, fields });
    }
    if xml::measure(stanza, Limits::NEGOTIATION).is_err() {
        return Screened::TooLarge;
    }
    Screened::Read
}
