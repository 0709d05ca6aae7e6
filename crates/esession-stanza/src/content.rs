//! Which children of a stanza are encrypted (XEP-0200 §5), how they are serialized into m, and
//! how decrypted content is put back.
//!
//! Everything except `<thread/>`, `<amp/>` and `<error/>` (with its defined condition) is
//! encrypted. m is the UTF-8 serialization of those children in document order: `xmlns` written
//! only where the namespace differs from the stanza's, attributes in their order, double quotes,
//! empty elements self-closed (I16). Receivers never normalize m; they parse it.

use crate::element::NS as C_NS;
use crate::error::{Error, Result, TerminationCause};
use esession_forms::xml::{self, Limits};
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
///
/// # Errors
/// [`Error::Malformed`] for content that cannot be written exactly (see [`serialize_secret`]).
pub fn serialize(parent_ns: &str, children: &[Element]) -> Result<Vec<u8>> {
    serialize_iter(parent_ns, children.iter())
}

/// Serializes the encryptable children of `stanza` into m without copying them first, or
/// `None` when it has none.
///
/// Attributes keep their namespaces: `xml:lang` is written with the `xml` prefix, and an
/// attribute in any other namespace with a prefix (`ns0`, `ns1`...) declared once on the
/// top-level element that holds it, so the receiver parses back exactly what was sent and no
/// element carries two attributes of one name.
///
/// # Errors
/// [`Error::Malformed`] for content deeper or larger than [`Limits::CONTENT`] (the receiver
/// would refuse it), or an attribute in the namespace of namespace declarations.
pub fn serialize_secret(stanza: &Element) -> Result<Option<Vec<u8>>> {
    let mut secret = stanza.children().filter(|c| !stays_clear(c)).peekable();
    if secret.peek().is_none() {
        return Ok(None);
    }
    serialize_iter(&stanza.ns(), secret).map(Some)
}

fn serialize_iter<'a>(parent_ns: &str, children: impl Iterator<Item = &'a Element>) -> Result<Vec<u8>> {
    let mut out = String::new();
    let mut elements = 0;
    for c in children {
        let shape = xml::measure(c, Limits::CONTENT)
            .map_err(|_| Error::Malformed("content deeper or larger than the receiver accepts"))?;
        elements += shape.elements;
        if elements > Limits::CONTENT.elements {
            return Err(Error::Malformed("content deeper or larger than the receiver accepts"));
        }
        let prefixes = attribute_namespaces(c)?;
        write(c, parent_ns, &prefixes, true, &mut out);
    }
    Ok(out.into_bytes())
}

/// The namespaces of the attributes in `root`'s subtree that need a prefix (all but none and
/// `xml`), in first-seen order; each gets the prefix `ns<i>`.
fn attribute_namespaces(root: &Element) -> Result<Vec<String>> {
    let mut found: Vec<String> = Vec::new();
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        for ((ns, _), _) in e.attrs().iter() {
            let ns = ns.as_str();
            if ns.is_empty() || ns == XML_NS {
                continue;
            }
            if ns == XMLNS_NS {
                return Err(Error::Malformed("an attribute in the xmlns namespace"));
            }
            if !found.iter().any(|f| f == ns) {
                found.push(ns.to_owned());
            }
        }
        stack.extend(e.children());
    }
    Ok(found)
}

/// The namespace of `xml:` attributes, bound by definition.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of namespace declarations, never an attribute's.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Writes `e` (depth bounded by the caller's [`xml::measure`]); the top-level element declares
/// the attribute prefixes of its subtree.
fn write(e: &Element, parent_ns: &str, prefixes: &[String], top: bool, out: &mut String) {
    out.push('<');
    out.push_str(e.name());
    let ns = e.ns();
    if ns != parent_ns {
        out.push_str(" xmlns=\"");
        escape(&ns, true, out);
        out.push('"');
    }
    if top {
        for (i, p) in prefixes.iter().enumerate() {
            out.push_str(&format!(" xmlns:ns{i}=\""));
            escape(p, true, out);
            out.push('"');
        }
    }
    for ((attr_ns, name), value) in e.attrs().iter() {
        out.push(' ');
        let attr_ns = attr_ns.as_str();
        if attr_ns == XML_NS {
            out.push_str("xml:");
        } else if let Some(i) = prefixes.iter().position(|p| p == attr_ns) {
            out.push_str(&format!("ns{i}:"));
        }
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
            Node::Element(c) => write(c, &ns, prefixes, false, out),
            Node::Text(t) => escape(t, false, out),
        }
    }
    out.push_str("</");
    out.push_str(e.name());
    out.push('>');
}

/// Escapes what a parser would not read back as it is: markup, and the white space that XML
/// normalizes (a carriage return becomes a line feed in text, and a tab, line feed or carriage
/// return in an attribute value, `xmlns` included, becomes a space; XML 1.0 §2.11, §3.3.3), as
/// character references.
fn escape(s: &str, attr: bool, out: &mut String) {
    let rep = |b| match b {
        b'&' => "&amp;",
        b'<' => "&lt;",
        b'>' => "&gt;",
        b'"' => "&quot;",
        b'\t' => "&#9;",
        b'\n' => "&#10;",
        _ => "&#13;",
    };
    if attr {
        xml::escape_into(s, out, *b"&<>\"\t\n\r", rep);
    } else {
        xml::escape_into(s, out, *b"&<>\r", rep);
    }
}

/// Parses decrypted m back into elements, in the namespace of the stanza. Whitespace between
/// them (Gajim's padding among it) is dropped; any other text, anything that is not
/// well-formed, or content beyond [`Limits::CONTENT`] (deeper than 64 levels, more than 16,384
/// elements, more than 4 MiB), terminates the session (XEP-0200 §8 step 6).
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
    if m.len() > Limits::CONTENT.octets {
        return Err(Error::Terminated(TerminationCause::Xml));
    }
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
    if m.len() > Limits::CONTENT.octets {
        return Err(Error::Terminated(TerminationCause::Xml));
    }
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
    // Within Limits::CONTENT, one level and one element more for the wrapper.
    let limits = Limits {
        depth: Limits::CONTENT.depth + 1,
        elements: Limits::CONTENT.elements + 1,
        octets: Limits::CONTENT.octets + 64 + stanza_ns.len(),
    };
    let mut root = xml::parse_with(&wrapped, limits).map_err(|_| bad())?;
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
/// most one directly inside `<error/>` when the stanza is of type `error`, and none deeper in
/// `<error/>`. A `<c/>` inside any other child is never looked for: such a child is not among
/// those §5 leaves in clear, so [`crate::Session::decrypt`] drops it unread (it is not covered
/// by the MAC). No walk here recurses: `<error/>` is searched with a bounded, iterative walk.
///
/// # Errors
/// [`Error::Malformed`] when the rule is broken.
// X200-5-03 X200-5-04: one <c/>, a direct child; an error stanza may carry one in <error/>.
pub fn find_c(stanza: &Element) -> Result<(Option<&Element>, Option<&Element>)> {
    let direct: Vec<&Element> = stanza.children().filter(|c| c.is("c", C_NS)).take(2).collect();
    if direct.len() > 1 {
        return Err(Error::Malformed("more than one <c/> in the stanza"));
    }
    let mut in_error = None;
    let is_error_stanza = stanza.attr("type") == Some("error");
    for child in stanza.children().filter(|c| stays_clear(c) && c.name() == "error") {
        let nested: Vec<&Element> = child.children().filter(|c| c.is("c", C_NS)).take(2).collect();
        match (nested.len(), is_error_stanza) {
            (0, _) => {}
            (1, true) if in_error.is_none() => in_error = nested.first().copied(),
            _ => return Err(Error::Malformed("<c/> is not a direct child of the stanza")),
        }
        if c_below_first_level(child) {
            return Err(Error::Malformed("<c/> nested too deep"));
        }
    }
    Ok((direct.first().copied(), in_error))
}

/// Whether a `<c/>` hides below the first level of `e`, or `e` nests too deep to look (more than
/// [`Limits::QUOTE`]'s depth, as no honest `<error/>` does). Iterative.
fn c_below_first_level(e: &Element) -> bool {
    let mut stack: Vec<(&Element, usize)> = e.children().map(|c| (c, 1)).collect();
    while let Some((el, depth)) = stack.pop() {
        if depth > Limits::QUOTE.depth {
            return true;
        }
        for c in el.children() {
            if c.is("c", C_NS) {
                return true;
            }
            stack.push((c, depth + 1));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    /// fuzz/regressions/content/crash-3f1f50ce...: white space in an attribute value (here the
    /// namespace, from `&#10;`) and a carriage return in text survive serialize then parse.
    #[test]
    fn normalized_white_space_round_trips() {
        let data = b"<body a='x&#9;&#10;&#13;y'>\nab&#13;c</body><active xmlns=\"http:toco&#10;tstates\"/>";
        let parsed = parse_general("jabber:client", data).unwrap();
        let m = serialize("jabber:client", &parsed).unwrap();
        assert_eq!(parse_general("jabber:client", &m).unwrap(), parsed);
        assert!(String::from_utf8(m).unwrap().contains("xmlns=\"http:toco&#10;tstates\""));
    }

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
        let m = serialize(CLIENT_NS, &secret).unwrap();
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
        let m = serialize(CLIENT_NS, &secret).unwrap();
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

    /// Issue 16.5: attributes keep their namespaces through m: `xml:lang` stays `xml:lang`, and
    /// `p:role` and `role` on one element stay two attributes.
    #[test]
    fn namespaced_attributes_round_trip() {
        let s = xml("<message xmlns='jabber:client' xmlns:p='urn:p' xmlns:q='urn:q'>\
            <body xml:lang='de' p:role='a' role='b'>Hallo<x xmlns='urn:x' p:k='1' q:k='2'><y q:z='3'/></x></body>\
            <other xmlns='urn:o' p:role='c'/></message>").unwrap();
        let (_, secret) = split(&s);
        let m = String::from_utf8(serialize(CLIENT_NS, &secret).unwrap()).unwrap();
        assert_eq!(
            m,
            "<body xmlns:ns0=\"urn:p\" xmlns:ns1=\"urn:q\" role=\"b\" xml:lang=\"de\" ns0:role=\"a\">Hallo\
             <x xmlns=\"urn:x\" ns0:k=\"1\" ns1:k=\"2\"><y ns1:z=\"3\"/></x></body>\
             <other xmlns=\"urn:o\" xmlns:ns0=\"urn:p\" ns0:role=\"c\"/>"
        );
        let back = parse(CLIENT_NS, m.as_bytes()).unwrap();
        assert_eq!(back, secret);
        let body = &back[0];
        assert_eq!(body.attr_ns("http://www.w3.org/XML/1998/namespace", "lang"), Some("de"));
        assert_eq!(body.attr_ns("urn:p", "role"), Some("a"));
        assert_eq!(body.attr("role"), Some("b"));
        // The decrypted elements write (minidom's writer) and read back the same.
        let mut rebuilt = Element::bare("message", CLIENT_NS);
        for c in back {
            rebuilt.append_child(c);
        }
        let written = String::from(&rebuilt);
        assert_eq!(xml(&written).unwrap().children().cloned().collect::<Vec<_>>(), secret);
    }

    #[test]
    fn content_beyond_the_limits_is_refused_both_ways() {
        let deep = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert_eq!(parse(CLIENT_NS, deep(64).as_bytes()).unwrap().len(), 1);
        for p in [parse, parse_general] {
            assert_eq!(p(CLIENT_NS, deep(65).as_bytes()), Err(Error::Terminated(TerminationCause::Xml)));
            assert_eq!(p(CLIENT_NS, deep(100_000).as_bytes()), Err(Error::Terminated(TerminationCause::Xml)));
        }
        let many = "<a/>".repeat(Limits::CONTENT.elements + 1);
        for p in [parse, parse_general] {
            assert_eq!(p(CLIENT_NS, many.as_bytes()), Err(Error::Terminated(TerminationCause::Xml)));
        }
        assert_eq!(
            parse(CLIENT_NS, "<a/>".repeat(Limits::CONTENT.elements).as_bytes()).unwrap().len(),
            16384
        );
        // What we would refuse we do not send.
        let stanza = |n| format!("<message xmlns='jabber:client'>{}</message>", deep(n)).parse::<Element>();
        let s = stanza(65).unwrap();
        assert!(matches!(serialize_secret(&s), Err(Error::Malformed(_))));
        let s = stanza(64).unwrap();
        assert!(serialize_secret(&s).unwrap().is_some());
    }

    /// Mutation testing (docs/conformance.md): the limits at their exact boundary, the count
    /// of elements summed over the stanza's children, and both stanza namespaces.
    #[test]
    fn the_limits_hold_at_their_boundary() {
        // Octets: exactly the limit is read, one more is refused unread (both parsers).
        let limit = Limits::CONTENT.octets;
        let text = |n: usize| format!("<body>{}</body>", "a".repeat(n - 13)).into_bytes();
        for p in [parse, parse_general] {
            assert_eq!(p(CLIENT_NS, &text(limit)).unwrap().len(), 1);
            assert_eq!(p(CLIENT_NS, &text(limit + 1)), Err(Error::Terminated(TerminationCause::Xml)));
        }
        // Depth and elements exactly at the limits: read by both parsers (the general one wraps
        // the content in one more element, and allows for it).
        let deep = format!("{}{}", "<a>".repeat(Limits::CONTENT.depth), "</a>".repeat(Limits::CONTENT.depth));
        let many = "<a/>".repeat(Limits::CONTENT.elements);
        for p in [parse, parse_general] {
            assert_eq!(p(CLIENT_NS, deep.as_bytes()).unwrap().len(), 1);
            assert_eq!(p(CLIENT_NS, many.as_bytes()).unwrap().len(), Limits::CONTENT.elements);
        }
        // Elements: summed over the children we send, the limit passes, one more does not.
        let children = |n: usize| {
            let mut m = Element::builder("message", CLIENT_NS).build();
            for _ in 0..n {
                m.append_child(Element::bare("x", "urn:example"));
            }
            m
        };
        assert!(serialize_secret(&children(Limits::CONTENT.elements)).unwrap().is_some());
        assert!(matches!(
            serialize_secret(&children(Limits::CONTENT.elements + 1)),
            Err(Error::Malformed(_))
        ));
        // `<thread/>` and `<error/>` stay clear in either stanza namespace, and only there.
        for ns in [CLIENT_NS, "jabber:server"] {
            assert!(
                stays_clear(&Element::bare("thread", ns)) && stays_clear(&Element::bare("error", ns)),
                "{ns}"
            );
            assert!(!stays_clear(&Element::bare("body", ns)), "{ns}");
        }
        assert!(!stays_clear(&Element::bare("thread", "urn:example")));
        assert!(!stays_clear(&Element::bare("error", "urn:example")));
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
        // A <c/> inside another child is never looked for (that child is dropped unread by
        // decrypt): the stanza has no <c/> of its own.
        let nested =
            xml(&format!("<message xmlns='jabber:client'><x xmlns='urn:x'>{c}</x></message>")).unwrap();
        assert_eq!(find_c(&nested).unwrap(), (None, None));
        let nested_in_error = xml(&format!(
            "<message xmlns='jabber:client' type='error'>{c}<error><x xmlns='urn:x'>{c}</x></error></message>"
        ))
        .unwrap();
        assert!(find_c(&nested_in_error).is_err());
        let two_in_error =
            xml(&format!("<message xmlns='jabber:client' type='error'><error>{c}{c}</error></message>"))
                .unwrap();
        assert!(find_c(&two_in_error).is_err());
        let err =
            xml(&format!("<iq xmlns='jabber:client' type='error'>{c}<error type='modify'>{c}</error></iq>"))
                .unwrap();
        let (a, b) = find_c(&err).unwrap();
        assert!(a.is_some() && b.is_some());
        let not_err =
            xml(&format!("<iq xmlns='jabber:client' type='result'><error>{c}</error></iq>")).unwrap();
        assert!(find_c(&not_err).is_err());
    }

    /// Mutation testing (docs/conformance.md), X200-5-03/-04: one `<c/>` in `<error/>` in all,
    /// only the stanza's own `<error/>` is searched, and an `<error/>` is searched to
    /// [`Limits::QUOTE`]'s depth (8 levels below it), deeper being refused unsearched.
    #[test]
    fn c_placement_boundaries() {
        let c = format!("<c xmlns='{C_NS}'><mac>AA==</mac></c>");
        let two_errors = xml(&format!(
            "<message xmlns='jabber:client' type='error'><error>{c}</error><error>{c}</error></message>"
        ))
        .unwrap();
        assert!(find_c(&two_errors).is_err());
        // A foreign element named error is not the stanza's <error/>: never searched.
        let foreign = xml(&format!(
            "<message xmlns='jabber:client' type='chat'><error xmlns='urn:x'>{c}</error></message>"
        ))
        .unwrap();
        assert_eq!(find_c(&foreign).unwrap(), (None, None));
        let chain = |n: usize| {
            xml(&format!(
                "<message xmlns='jabber:client' type='error'><error>{c}{}{}</error></message>",
                "<x xmlns='urn:x'>".repeat(n),
                "</x>".repeat(n)
            ))
            .unwrap()
        };
        let deepest = chain(Limits::QUOTE.depth);
        assert!(find_c(&deepest).unwrap().1.is_some());
        assert!(find_c(&chain(Limits::QUOTE.depth + 1)).is_err());
    }
}
