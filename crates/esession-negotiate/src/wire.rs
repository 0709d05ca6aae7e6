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
    let mut m = message(to, thread, received.and_then(without_prefixes).into_iter().collect());
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

/// A copy of `e` without the prefix declarations its parser recorded: the same names,
/// namespaces, attributes (with their namespaces) and nodes, so equal to `e`; minidom's writer
/// chooses prefixes anew when it writes the copy. For elements received from a peer and sent on
/// (an error reply quoting a request): minidom's writer panics on some declarations its parser
/// accepts (a prefix declared again below an element that declared it, docs/security.md), and a
/// peer's declarations have no business in what we send.
///
/// Only elements within [`Limits::QUOTE`] are copied (the copy is made without recursion);
/// `None` for anything larger.
fn without_prefixes(e: &Element) -> Option<Element> {
    xml::measure(e, Limits::QUOTE).ok()?;
    // Depth-first, without recursion: each frame is the rest of a source element's nodes and
    // its copy so far.
    let shallow = |src: &Element| {
        let mut out = Element::bare(src.name(), src.ns());
        for ((ns, name), value) in src.attrs().iter() {
            out.attrs_mut().insert(ns.clone(), name.clone(), value.clone());
        }
        out
    };
    let mut stack: Vec<(minidom::element::Nodes<'_>, Element)> = vec![(e.nodes(), shallow(e))];
    while let Some((nodes, copy)) = stack.last_mut() {
        match nodes.next() {
            Some(minidom::Node::Element(c)) => stack.push((c.nodes(), shallow(c))),
            Some(minidom::Node::Text(t)) => copy.append_text_node(t.clone()),
            None => {
                let (_, done) = stack.pop()?;
                match stack.last_mut() {
                    Some((_, parent)) => {
                        parent.append_child(done);
                    }
                    None => return Some(done),
                }
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prefix_tests {
    use super::without_prefixes;
    use esession_forms::xml::parse;

    /// The input the content fuzz target found (fuzz/regressions/content/crash-fe85207a...):
    /// written as parsed, minidom's writer panics; the copy writes, keeps the namespaced
    /// attributes and parses back equal.
    #[test]
    fn copy_without_prefixes_writes_and_stays_equal() {
        let text =
            "<x xmlns='jabber:client' wml='j' xmlns:p='urn:p'>x!%!!<oe xmlns:p='urn:p' p:a='1'/>!!!o</x>";
        let e = parse(text).unwrap();
        let copy = without_prefixes(&e).unwrap();
        assert_eq!(copy, e);
        let written = String::from(&copy);
        assert!(written.contains("urn:p"), "{written}");
        assert_eq!(parse(&written).unwrap(), e);
        assert!(std::panic::catch_unwind(|| String::from(&e)).is_err(), "minidom fixed its writer");
    }

    /// Deep enough to overflow any stack if copied recursively: not quoted; within
    /// [`Limits::QUOTE`], copied equal; one level deeper, not quoted.
    #[test]
    fn only_bounded_elements_are_copied_without_recursion() {
        let chain = |n: usize| {
            let mut e = minidom::Element::bare("a", "urn:x");
            for _ in 1..n {
                let mut p = minidom::Element::bare("a", "urn:x");
                p.append_child(e);
                e = p;
            }
            e
        };
        let deep = chain(500_000);
        assert!(without_prefixes(&deep).is_none(), "too large to quote");
        esession_forms::xml::dispose(deep);
        let ok = chain(8);
        assert_eq!(without_prefixes(&ok).unwrap(), ok);
        assert!(without_prefixes(&chain(9)).is_none(), "deeper than Limits::QUOTE");
    }
}
