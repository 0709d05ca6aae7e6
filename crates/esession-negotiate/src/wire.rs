//! Building and reading the stanzas around the forms: messages with `<thread/>`, error replies
//! (XEP-0116 Examples 5 and 6, I23).

use crate::error::Condition;
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
pub fn message(to: &str, thread: &str, children: Vec<Element>) -> Element {
    let mut m = Element::bare("message", CLIENT_NS);
    set(&mut m, "to", to);
    m.append_child(Element::builder("thread", CLIENT_NS).append(thread).build());
    for c in children {
        m.append_child(c);
    }
    m
}

/// An error reply: `<message type='error'>` with the thread, a copy of the received wrapper,
/// `<error type='cancel'>`, the condition and the fields it concerns.
#[must_use]
pub fn error_reply(
    to: &str,
    thread: &str,
    received: Option<&Element>,
    condition: Condition,
    fields: &[String],
) -> Element {
    // The quoted wrapper carries none of the peer's prefix declarations.
    let mut m =
        message(to, thread, received.into_iter().map(esession_forms::xml::without_prefixes).collect());
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
        .map(|f| f.children().filter_map(|c| c.attr("var").map(str::to_owned)).collect())
        .unwrap_or_default();
    Some((condition, fields))
}
