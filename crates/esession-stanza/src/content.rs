//! Which children of a stanza are encrypted (XEP-0200 §5), how they are serialized into m, and
//! how decrypted content is put back.
//!
//! Everything except `<thread/>`, `<amp/>` and `<error/>` (with its defined condition) is
//! encrypted. m is the UTF-8 serialization of those children in document order: `xmlns` written
//! only where the namespace differs from the stanza's, attributes in their order, double quotes,
//! empty elements self-closed (I16). Receivers never normalize m; they parse it.

use crate::element::NS as C_NS;
use crate::error::{Error, Result, TerminationCause};
use minidom::{Element, Node};

/// The stanza namespaces a one-to-one stanza may use.
pub const CLIENT_NS: &str = "jabber:client";

/// Whether a child stays in clear text.
#[must_use]
// X200-5-02: thread, amp and error are never encrypted.
pub fn stays_clear(child: &Element) -> bool {
    (is_stanza_ns(&child.ns()) && matches!(child.name(), "thread" | "error"))
        || child.is("amp", "http://jabber.org/protocol/amp")
        || child.is("c", C_NS)
}

fn is_stanza_ns(ns: &str) -> bool {
    ns == CLIENT_NS || ns == "jabber:server"
}

/// Splits the stanza's children: the ones that stay clear (in order) and the encryptable ones.
#[must_use]
pub fn split(stanza: &Element) -> (Vec<Element>, Vec<Element>) {
    let mut clear = Vec::new();
    let mut secret = Vec::new();
    for c in stanza.children() {
        if stays_clear(c) { clear.push(c.clone()) } else { secret.push(c.clone()) }
    }
    (clear, secret)
}

/// Serializes elements into m (I16).
#[must_use]
pub fn serialize(parent_ns: &str, children: &[Element]) -> Vec<u8> {
    serialize_iter(parent_ns, children.iter())
}

/// Serializes the encryptable children of `stanza` into m without copying them first, or
/// `None` when it has none.
#[must_use]
pub fn serialize_secret(stanza: &Element) -> Option<Vec<u8>> {
    let mut secret = stanza.children().filter(|c| !stays_clear(c)).peekable();
    secret.peek()?;
    Some(serialize_iter(&stanza.ns(), secret))
}

fn serialize_iter<'a>(parent_ns: &str, children: impl Iterator<Item = &'a Element>) -> Vec<u8> {
    let mut out = String::new();
    for c in children {
        write(c, parent_ns, &mut out);
    }
    out.into_bytes()
}

fn write(e: &Element, parent_ns: &str, out: &mut String) {
    out.push('<');
    out.push_str(e.name());
    let ns = e.ns();
    if ns != parent_ns {
        out.push_str(" xmlns=\"");
        escape(&ns, true, out);
        out.push('"');
    }
    for ((_, name), value) in e.attrs().iter() {
        out.push(' ');
        out.push_str(name.as_str());
        out.push_str("=\"");
        escape(value, true, out);
        out.push('"');
    }
    if e.nodes().next().is_none() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for n in e.nodes() {
        match n {
            Node::Element(c) => write(c, &ns, out),
            Node::Text(t) => escape(t, false, out),
        }
    }
    out.push_str("</");
    out.push_str(e.name());
    out.push('>');
}

fn escape(s: &str, attr: bool, out: &mut String) {
    let rep = |b| match b {
        b'&' => "&amp;",
        b'<' => "&lt;",
        b'>' => "&gt;",
        _ => "&quot;",
    };
    if attr {
        esession_forms::xml::escape_into(s, out, *b"&<>\"", rep);
    } else {
        esession_forms::xml::escape_into(s, out, *b"&<>", rep);
    }
}

/// Parses decrypted m back into elements, in the namespace of the stanza. Whitespace between
/// them (Gajim's padding among it) is dropped; any other text, or anything that is not
/// well-formed, terminates the session (XEP-0200 §8 step 6).
///
/// Content of the usual shape (unprefixed names and attributes, the five predefined entities)
/// is parsed by a fast path of this crate; anything else, and anything it finds wrong, by
/// minidom's parser ([`parse_general`]), which decides what is well-formed. Both build the same
/// elements (differential tests, fuzz target `content`).
///
/// # Errors
/// [`Error::Terminated`] with [`TerminationCause::Xml`].
// X200-8-07: content that does not parse terminates the session.
pub fn parse(stanza_ns: &str, m: &[u8]) -> Result<Vec<Element>> {
    let text = utf8(m)?;
    match crate::fast_content::parse(stanza_ns, text) {
        Some(elements) => Ok(elements),
        None => parse_with_minidom(stanza_ns, text),
    }
}

/// [`parse`] through minidom's parser alone, for every input; [`parse`] returns the same.
///
/// # Errors
/// [`Error::Terminated`] with [`TerminationCause::Xml`].
pub fn parse_general(stanza_ns: &str, m: &[u8]) -> Result<Vec<Element>> {
    parse_with_minidom(stanza_ns, utf8(m)?)
}

/// m as text; anything but UTF-8 terminates the session.
fn utf8(m: &[u8]) -> Result<&str> {
    core::str::from_utf8(m).map_err(|_| Error::Terminated(TerminationCause::Xml))
}

fn parse_with_minidom(stanza_ns: &str, text: &str) -> Result<Vec<Element>> {
    let bad = || Error::Terminated(TerminationCause::Xml);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    // The parser stops at the end of the wrapper and ignores what follows: content that closes
    // the wrapper early would smuggle elements past it. Honest senders never write this tag.
    if text.contains("</esession-content") {
        return Err(bad());
    }
    // One buffer: rxml lexes a document given in one piece faster than chained readers.
    let wrapped = format!("<esession-content xmlns=\"{stanza_ns}\">{text}</esession-content>");
    let mut root: Element = wrapped.parse().map_err(|_| bad())?;
    if root.name() != "esession-content" {
        return Err(bad());
    }
    let mut out = Vec::new();
    for n in root.take_nodes() {
        match n {
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(_) => return Err(bad()),
            Node::Element(e) => out.push(e),
        }
    }
    Ok(out)
}

/// Rebuilds a stanza: its name, namespace and attributes, with `clear` children and `<c/>`
/// placed after `<thread/>` (or first), the other clear children after it.
#[must_use]
pub fn assemble(stanza: &Element, clear: Vec<Element>, inserted: Vec<Element>) -> Element {
    let mut out = Element::bare(stanza.name(), stanza.ns());
    for ((ns, name), value) in stanza.attrs().iter() {
        out.attrs_mut().insert(ns.clone(), name.clone(), value.clone());
    }
    let mut inserted = Some(inserted);
    for c in clear {
        let is_thread = c.name() == "thread";
        if !is_thread && let Some(ins) = inserted.take() {
            for i in ins {
                out.append_child(i);
            }
        }
        out.append_child(c);
    }
    if let Some(ins) = inserted {
        for i in ins {
            out.append_child(i);
        }
    }
    out
}

/// Finds the stanza's `<c/>` elements, enforcing XEP-0200 §5: at most one direct child, plus at
/// most one inside `<error/>` when the stanza is of type `error`; none elsewhere.
///
/// # Errors
/// [`Error::Malformed`] when the rule is broken.
// X200-5-03 X200-5-04: one <c/>, a direct child; an error stanza may carry one in <error/>.
pub fn find_c(stanza: &Element) -> Result<(Option<&Element>, Option<&Element>)> {
    let direct: Vec<&Element> = stanza.children().filter(|c| c.is("c", C_NS)).collect();
    if direct.len() > 1 {
        return Err(Error::Malformed("more than one <c/> in the stanza"));
    }
    let mut in_error = None;
    for child in stanza.children().filter(|c| !c.is("c", C_NS)) {
        let nested: Vec<&Element> = child.children().filter(|c| c.is("c", C_NS)).collect();
        let is_error = child.name() == "error" && stanza.attr("type") == Some("error");
        match (nested.len(), is_error) {
            (0, _) => {}
            (1, true) => in_error = nested.first().copied(),
            _ => return Err(Error::Malformed("<c/> is not a direct child of the stanza")),
        }
        if deep_c(child, 0) {
            return Err(Error::Malformed("<c/> nested too deep"));
        }
    }
    Ok((direct.first().copied(), in_error))
}

/// Whether a `<c/>` hides below the first level (or the nesting is too deep to look: 32 levels).
fn deep_c(e: &Element, depth: usize) -> bool {
    depth > 32
        || e.children().any(|c| {
            (depth > 0 && c.is("c", C_NS)) || (c.children().next().is_some() && deep_c(c, depth + 1))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use esession_forms::xml::parse as xml;

    #[test]
    fn xep0200_example1_split() {
        let s = xml("<message xmlns='jabber:client' from='alice@example.org/pda' to='bob@example.com/laptop' type='chat'>\
            <thread>ffd7076498744578d10edabfe7f4a866</thread><body>Hello, Bob!</body>\
            <amp xmlns='http://jabber.org/protocol/amp'><rule action='error' condition='match-resource' value='exact'/></amp>\
            <active xmlns='http://jabber.org/protocol/chatstates'/></message>").unwrap();
        let (clear, secret) = split(&s);
        assert_eq!(clear.iter().map(Element::name).collect::<Vec<_>>(), ["thread", "amp"]);
        let m = serialize(CLIENT_NS, &secret);
        // XEP-0200 Example 2, serialized per I16.
        assert_eq!(m, b"<body>Hello, Bob!</body><active xmlns=\"http://jabber.org/protocol/chatstates\"/>");
        let back = parse(CLIENT_NS, &m).unwrap();
        assert_eq!(back, secret);
        let rebuilt = assemble(&s, clear, back);
        assert_eq!(
            rebuilt.children().map(Element::name).collect::<Vec<_>>(),
            ["thread", "body", "active", "amp"]
        );
        assert_eq!(rebuilt.attr("type"), Some("chat"));
    }

    #[test]
    fn serialization_escapes_and_round_trips() {
        let s = xml("<message xmlns='jabber:client'><body a='x&quot;&lt;y&apos;'>&lt;b&gt; &amp; \"é€😀\" &amp;amp;</body><x xmlns='urn:x'/></message>").unwrap();
        let (_, secret) = split(&s);
        let m = serialize(CLIENT_NS, &secret);
        assert_eq!(
            String::from_utf8(m.clone()).unwrap(),
            "<body a=\"x&quot;&lt;y'\">&lt;b&gt; &amp; \"é€😀\" &amp;amp;</body><x xmlns=\"urn:x\"/>"
        );
        assert_eq!(parse(CLIENT_NS, &m).unwrap(), secret);
        let mut out = String::new();
        escape("", false, &mut out);
        escape("&", false, &mut out);
        escape("plain", true, &mut out);
        escape("\"", true, &mut out);
        escape("\"", false, &mut out);
        assert_eq!(out, "&amp;plain&quot;\"");
    }

    #[test]
    fn malformed_content_terminates() {
        for bad in [&b"<body>x"[..], b"text", b"<a></b>", b"</esession-content><x/>", b"\xff"] {
            assert_eq!(parse(CLIENT_NS, bad), Err(Error::Terminated(TerminationCause::Xml)), "{bad:?}");
        }
        assert_eq!(parse(CLIENT_NS, b"  \n ").unwrap(), vec![]);
        assert_eq!(parse(CLIENT_NS, b"<body>x</body>    ").unwrap().len(), 1, "Gajim's space padding");
    }

    #[test]
    fn c_placement_rules() {
        let c = format!("<c xmlns='{C_NS}'><mac>AA==</mac></c>");
        let ok = xml(&format!("<message xmlns='jabber:client'>{c}</message>")).unwrap();
        assert!(find_c(&ok).unwrap().0.is_some());
        let two = xml(&format!("<message xmlns='jabber:client'>{c}{c}</message>")).unwrap();
        assert!(find_c(&two).is_err());
        let nested =
            xml(&format!("<message xmlns='jabber:client'><x xmlns='urn:x'>{c}</x></message>")).unwrap();
        assert!(find_c(&nested).is_err());
        let err =
            xml(&format!("<iq xmlns='jabber:client' type='error'>{c}<error type='modify'>{c}</error></iq>"))
                .unwrap();
        let (a, b) = find_c(&err).unwrap();
        assert!(a.is_some() && b.is_some());
        let not_err =
            xml(&format!("<iq xmlns='jabber:client' type='result'><error>{c}</error></iq>")).unwrap();
        assert!(find_c(&not_err).is_err());
    }
}
