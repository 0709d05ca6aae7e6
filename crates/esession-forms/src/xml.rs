//! Small helpers over minidom shared by the modules of this crate.

use crate::error::{Error, Result};
use minidom::{Element, Node};

/// The attribute names this crate writes, as `NcName`s.
pub(crate) mod ncname {
    use rxml::NcName;
    use std::sync::LazyLock;

    fn name(s: &'static str) -> NcName {
        // Only called with the literal names below, all valid NCNames (checked by a test).
        #[allow(clippy::expect_used)]
        NcName::try_from(s).expect("literal NCName")
    }

    pub(crate) static TYPE: LazyLock<NcName> = LazyLock::new(|| name("type"));
    pub(crate) static VAR: LazyLock<NcName> = LazyLock::new(|| name("var"));
    pub(crate) static LABEL: LazyLock<NcName> = LazyLock::new(|| name("label"));

    #[cfg(test)]
    #[test]
    fn all_names_are_valid() {
        for n in [&TYPE, &VAR, &LABEL] {
            assert!(!n.as_str().is_empty());
        }
    }
}

/// An attribute without namespace.
pub(crate) fn attr<'a>(e: &'a Element, name: &'a str) -> Option<&'a str> {
    e.attr(name)
}

/// The text of an element that must have no element children.
pub(crate) fn leaf_text(e: &Element) -> Result<String> {
    if e.children().next().is_some() {
        return Err(Error::UnexpectedContent("element inside a text element"));
    }
    Ok(e.text())
}

/// Rejects non-whitespace text directly inside `e`.
pub(crate) fn no_text(e: &Element, what: &'static str) -> Result<()> {
    for n in e.nodes() {
        if let Node::Text(t) = n
            && !t.trim().is_empty()
        {
            return Err(Error::UnexpectedContent(what));
        }
    }
    Ok(())
}

/// An attribute name for minidom's builders.
///
/// # Errors
/// [`Error::Xml`] if `s` is not an NCName.
pub fn attr_name(s: &str) -> Result<rxml::NcName> {
    rxml::NcName::try_from(s).map_err(|e| Error::Xml(e.to_string()))
}

/// Bounds on XML that comes from the network, checked before any recursive or costly work
/// (STYLE.md 14): how deep elements nest, how many there are, and how many octets their names,
/// attribute values and text hold together (about the size of the serialization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nesting depth; the root element is at depth 1.
    pub depth: usize,
    /// Elements in all.
    pub elements: usize,
    /// Octets of names, attribute names and values, and text, in all.
    pub octets: usize,
}

impl Limits {
    /// A whole stanza: room for every stanza a client meets (XHTML-IM, PEP items, forms),
    /// within the 1 MiB that is an upper bound of what servers relay (Prosody's default is
    /// 256 KiB).
    pub const STANZA: Limits = Limits { depth: 32, elements: 4096, octets: 1 << 20 };
    /// A negotiation message of XEP-0116 or XEP-0187 (the deepest, a PEP items result with
    /// the options, has depth 8), an error stanza about one, or an identity plaintext.
    pub const NEGOTIATION: Limits = Limits { depth: 12, elements: 1024, octets: 256 << 10 };
    /// Decrypted content (XEP-0200 m): what an application puts in a stanza.
    pub const CONTENT: Limits = Limits { depth: 64, elements: 16384, octets: 4 << 20 };
    /// What an error reply may quote of the refused stanza; anything larger is left out.
    pub const QUOTE: Limits = Limits { depth: 8, elements: 256, octets: 16 << 10 };
}

/// What [`measure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// The deepest nesting (the root is 1).
    pub depth: usize,
    /// Elements in all.
    pub elements: usize,
    /// Octets of names, attributes and text.
    pub octets: usize,
}

/// Measures `e` without recursion, stopping as soon as a limit is passed.
///
/// # Errors
/// [`Error::TooLarge`] naming the first limit passed (`XML depth`, `XML elements`, `XML size`).
pub fn measure(e: &Element, limits: Limits) -> Result<Shape> {
    let mut shape = Shape::default();
    let mut stack: Vec<(&Element, usize)> = vec![(e, 1)];
    while let Some((el, depth)) = stack.pop() {
        shape.elements += 1;
        shape.depth = shape.depth.max(depth);
        shape.octets += el.name().len();
        for ((_, name), value) in el.attrs().iter() {
            shape.octets += name.as_str().len() + value.len();
        }
        for n in el.nodes() {
            match n {
                Node::Element(c) => stack.push((c, depth + 1)),
                Node::Text(t) => shape.octets += t.len(),
            }
        }
        check(&shape, limits)?;
    }
    Ok(shape)
}

fn check(shape: &Shape, limits: Limits) -> Result<()> {
    if shape.depth > limits.depth {
        Err(Error::TooLarge("XML depth"))
    } else if shape.elements > limits.elements {
        Err(Error::TooLarge("XML elements"))
    } else if shape.octets > limits.octets {
        Err(Error::TooLarge("XML size"))
    } else {
        Ok(())
    }
}

/// Parses XML text into an element within [`Limits::STANZA`], mapping the error.
///
/// # Errors
/// [`Error::Xml`] if the text is not one well-formed element; [`Error::TooLarge`] past a limit.
pub fn parse(text: &str) -> Result<Element> {
    parse_with(text, Limits::STANZA)
}

/// How much text rxml's parser is given at a time (see [`parse_with`]).
const PARSE_PIECE: usize = 16 << 10;

/// Parses XML text into an element with minidom's tree builder, the same result as minidom's
/// own parser, but counting depth, elements and octets as the events arrive and stopping at the
/// first limit passed: no tree beyond the limits is ever built (minidom's tree builder is
/// quadratic in depth, and its `Drop` and writer recurse). What follows the root element is
/// ignored, as minidom does.
///
/// # Errors
/// [`Error::Xml`] if the text is not one well-formed element; [`Error::TooLarge`] past a limit.
pub fn parse_with(text: &str, limits: Limits) -> Result<Element> {
    use rxml::{Parse, RawEvent};
    if text.len() > limits.octets.saturating_mul(2).saturating_add(4096) {
        // Markup is at most about as long as what it carries; this refuses absurd input at once.
        return Err(Error::TooLarge("XML size"));
    }
    let mut parser = rxml::RawParser::default();
    let mut builder = minidom::tree_builder::TreeBuilder::new();
    let bytes = text.as_bytes();
    // rxml's parser is handed the text in pieces: given a long text at once, its work per
    // event grows with what is left, which makes a megabyte of text take quadratic time.
    // `buf` is the unread end of `bytes[..fed]`.
    let mut fed = 0usize;
    let mut buf: &[u8] = &[];
    let mut at_eof = bytes.is_empty();
    let mut depth = 0usize;
    let mut shape = Shape::default();
    loop {
        let ev = match parser.parse(&mut buf, at_eof) {
            Ok(ev) => ev,
            Err(rxml::error::EndOrError::NeedMoreData) if !at_eof => {
                // The next piece, with what the parser left unread in front of it.
                let unread = fed - buf.len();
                fed = fed.saturating_add(PARSE_PIECE).min(bytes.len());
                buf = &bytes[unread..fed];
                at_eof = fed == bytes.len();
                continue;
            }
            Err(rxml::error::EndOrError::NeedMoreData) => {
                return Err(Error::Xml("incomplete document".into()));
            }
            Err(rxml::error::EndOrError::Error(e)) => return Err(Error::Xml(e.to_string())),
        };
        let Some(ev) = ev else { return Err(Error::Xml("end of document before the root closed".into())) };
        match &ev {
            RawEvent::ElementHeadOpen(_, (_, name)) => {
                depth += 1;
                shape.elements += 1;
                shape.depth = shape.depth.max(depth);
                shape.octets += name.len();
            }
            RawEvent::Attribute(_, (_, name), value) => shape.octets += name.len() + value.len(),
            RawEvent::Text(_, t) => shape.octets += t.len(),
            RawEvent::ElementFoot(_) => depth = depth.saturating_sub(1),
            RawEvent::XmlDeclaration(..) | RawEvent::ElementHeadClose(_) => {}
        }
        check(&shape, limits)?;
        builder.process_event(ev).map_err(|e| Error::Xml(e.to_string()))?;
        if let Some(root) = builder.root.take() {
            return Ok(root);
        }
    }
}

/// Drops `e` without recursion. minidom's `Drop` recurses once per level and overflows the
/// stack on deep elements (between 40,000 and 80,000 levels on an 8 MiB stack, far fewer on a
/// thread's 2 MiB): drop elements that came from the network, and were not bounded, this way.
pub fn dispose(e: Element) {
    let mut stack = vec![e];
    while let Some(mut el) = stack.pop() {
        for n in el.take_nodes() {
            if let Node::Element(c) = n {
                stack.push(c);
            }
        }
    }
}

/// Appends `s` to `out`, replacing each octet of `special` by `replace(octet)`: the escaping of
/// text and attribute values, for the writers that choose their own set of characters to escape
/// (the normalization of what is MACed or signed here, the serialization of XEP-0200 content in
/// `esession-stanza`).
///
/// Only the ASCII octets of `special` are replaced: an octet above 0x7F is part of a multi-octet
/// character, never a character of its own, and is copied unchanged. The work is one pass over
/// `s` (no recursion, no allocation beyond `out`'s growth). Blocks of 32 octets containing none
/// of `special` are tested with one branch-free pass the compiler vectorizes and copied as part
/// of a run, so the long text of a chat body or a Base64 value costs little more than a `memcpy`.
///
/// ```
/// use esession_forms::xml::escape_into;
///
/// let mut out = String::from("<a>");
/// escape_into("fish & chips < 3 €", &mut out, *b"&<", |b| if b == b'&' { "&amp;" } else { "&lt;" });
/// assert_eq!(out, "<a>fish &amp; chips &lt; 3 €");
/// ```
pub fn escape_into<const N: usize>(
    s: &str,
    out: &mut String,
    special: [u8; N],
    replace: impl Fn(u8) -> &'static str,
) {
    // Only ASCII octets are characters of their own: replacing any other would cut a character
    // (and slicing `s` there would panic).
    let is_special = |b: u8| b.is_ascii() && special.contains(&b);
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(block) = bytes.get(i..i + BLOCK).and_then(|b| <&[u8; BLOCK]>::try_from(b).ok())
            && !any_of(block, &special)
        {
            i += BLOCK;
            continue;
        }
        if is_special(bytes[i]) {
            // ASCII, so i and i + 1 are character boundaries.
            push_in_pieces(out, &s[run..i]);
            out.push_str(replace(bytes[i]));
            run = i + 1;
        }
        i += 1;
    }
    push_in_pieces(out, &s[run..]);
}

/// Appends `s` to `out` in pieces of at most 2 KiB (cut at character boundaries): glibc's
/// `rep movsb`, which it uses for longer copies, is 20 times slower on some CPUs when the two
/// buffers sit badly (docs/performance.md, "Copies"). For copies of long text on hot paths; the
/// result is that of `out.push_str(s)`, for any `s`.
///
/// ```
/// use esession_forms::xml::push_in_pieces;
///
/// let long = "é".repeat(3000);
/// let mut out = String::from("x");
/// push_in_pieces(&mut out, &long);
/// assert_eq!(out, format!("x{long}"));
/// ```
pub fn push_in_pieces(out: &mut String, s: &str) {
    let mut rest = s;
    while rest.len() > PIECE {
        let mut cut = PIECE;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push_str(rest);
}

/// Octets per block of [`escape_into`]'s fast scan.
const BLOCK: usize = 32;

/// The longest run [`push_in_pieces`] copies at once.
const PIECE: usize = 2048;

/// Whether a block holds one of `special`: a fixed-size OR-reduction without branches, which the
/// compiler turns into a few vector compares (a function of its own, or it is not vectorized).
#[inline]
fn any_of<const N: usize>(block: &[u8; BLOCK], special: &[u8; N]) -> bool {
    let mut acc = 0u8;
    for &b in block {
        for &x in special {
            acc |= u8::from(b == x);
        }
    }
    acc != 0
}

#[cfg(test)]
mod escape_tests {
    use super::escape_into;

    fn amp(b: u8) -> &'static str {
        if b == b'&' { "&amp;" } else { "&lt;" }
    }

    #[test]
    fn escapes_at_every_position_across_blocks() {
        for len in [0usize, 1, 31, 32, 33, 64, 100] {
            for pos in 0..len {
                let mut s: String = "é".repeat(len / 2) + &"a".repeat(len - len / 2);
                let at = s.char_indices().nth(pos.min(s.chars().count() - 1)).unwrap().0;
                s.insert(at, '&');
                s.push('<');
                let want = s.replace('&', "&amp;").replace('<', "&lt;");
                let mut out = String::from("pre");
                escape_into(&s, &mut out, *b"&<", amp);
                assert_eq!(out, format!("pre{want}"), "len {len} pos {pos}");
            }
        }
        let mut out = String::new();
        escape_into("", &mut out, *b"&<", amp);
        assert!(out.is_empty());
    }

    /// An octet above 0x7F among the specials (a caller's mistake) is never replaced: it would
    /// cut a character, and slicing there would panic.
    #[test]
    fn non_ascii_specials_are_copied_unchanged() {
        for len in [1usize, 31, 32, 33, 100] {
            let s = "é<".repeat(len);
            let mut out = String::new();
            escape_into(&s, &mut out, [0xc3, 0xa9, b'<'], |_| "&lt;");
            assert_eq!(out, s.replace('<', "&lt;"), "len {len}");
        }
    }

    /// Runs longer than one copied piece, with multi-octet characters where pieces would end
    /// and specials on both sides of the piece boundaries.
    #[test]
    fn long_runs_are_copied_whole() {
        for len in [2047usize, 2048, 2049, 4096, 5000, 9000] {
            for filler in ["a", "é", "€", "𝄞"] {
                let mut s = filler.repeat(len / filler.len());
                s.insert(0, '<');
                s.push('&');
                s.push_str(&"b".repeat(3000));
                s.push('<');
                let want = s.replace('&', "&amp;").replace('<', "&lt;");
                let mut out = String::new();
                escape_into(&s, &mut out, *b"&<", amp);
                assert!(out == want, "len {len} filler {filler}");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod bound_tests {
    use super::*;

    /// A chain of `n` nested `<a/>` built without recursion (minidom's parser would take
    /// quadratic time to build it).
    fn chain(n: usize) -> Element {
        let mut e = Element::bare("a", "urn:x");
        for _ in 1..n {
            let mut p = Element::bare("a", "urn:x");
            p.append_child(e);
            e = p;
        }
        e
    }

    #[test]
    fn deep_elements_are_measured_and_dropped_without_recursion() {
        // Deep enough to overflow any stack if walked or dropped recursively.
        let deep = chain(500_000);
        assert_eq!(measure(&deep, Limits::STANZA), Err(Error::TooLarge("XML depth")));
        dispose(deep);
        let ok = chain(8);
        assert_eq!(measure(&ok, Limits::QUOTE).unwrap(), Shape { depth: 8, elements: 8, octets: 8 });
    }

    #[test]
    fn parsing_stops_at_each_limit() {
        let nested = |n: usize| format!("<a xmlns='u'>{}{}</a>", "<b>".repeat(n - 1), "</b>".repeat(n - 1));
        let lim = Limits { depth: 10, elements: 20, octets: 1000 };
        assert_eq!(parse_with(&nested(10), lim).unwrap().name(), "a");
        assert_eq!(parse_with(&nested(11), lim), Err(Error::TooLarge("XML depth")));
        let wide = |n: usize| format!("<a xmlns='u'>{}</a>", "<b/>".repeat(n - 1));
        assert!(parse_with(&wide(20), lim).is_ok());
        assert_eq!(parse_with(&wide(21), lim), Err(Error::TooLarge("XML elements")));
        let text = |n: usize| format!("<a xmlns='u' k='v'>{}</a>", "t".repeat(n));
        // a + xmlns + u + k + v + text = 1000 octets.
        assert!(parse_with(&text(1000 - 9), lim).is_ok());
        assert_eq!(parse_with(&text(1000 - 8), lim), Err(Error::TooLarge("XML size")));
        // Far beyond the limit: refused before lexing.
        assert_eq!(parse_with(&text(10 << 20), lim), Err(Error::TooLarge("XML size")));
        // The default is Limits::STANZA, and the results are minidom's.
        let deep = nested(Limits::STANZA.depth + 1);
        assert_eq!(parse(&deep), Err(Error::TooLarge("XML depth")));
        let s = "<m xmlns='jabber:client' xmlns:p='urn:p' p:a='1' b='2'><x xmlns='urn:x'>t<y/>u</x></m>";
        assert_eq!(parse(s).unwrap(), s.parse::<Element>().unwrap());
        assert!(matches!(parse("<a xmlns='u'><b></a>"), Err(Error::Xml(_))));
        assert!(matches!(parse("<a xmlns='u'>"), Err(Error::Xml(_))));
    }

    #[test]
    fn pieces_split_anywhere_give_minidoms_tree() {
        // The text is handed to rxml in pieces of PARSE_PIECE octets: whatever a boundary cuts (a
        // multi-octet character, a name, an attribute value, an entity, a comment), the tree is
        // the one minidom's own parser builds.
        for shift in 0..7 {
            let pad = "é".repeat(PARSE_PIECE / 2 - 20 + shift);
            // rxml refuses names and attribute values over 8 KiB itself: the attribute, put
            // where the boundary falls, stays short.
            let short = "é".repeat(1000);
            let text = format!(
                "<a xmlns='u'><b x='1&amp;2'>{pad}&lt;ü€𝄞</b><c k='{short}'/>{pad}<d y='{short}'>{pad}</d></a>"
            );
            let ours = parse_with(&text, Limits::CONTENT).unwrap();
            let theirs: Element = text.parse().unwrap();
            assert_eq!(ours, theirs, "shift {shift}");
        }
        // Errors past a boundary are still errors.
        let broken = format!("<a xmlns='u'>{}<b></a>", "x".repeat(PARSE_PIECE * 2));
        assert!(matches!(parse(&broken), Err(Error::Xml(_))));
        let truncated = format!("<a xmlns='u'>{}", "x".repeat(PARSE_PIECE + 3));
        assert!(matches!(parse(&truncated), Err(Error::Xml(_))));
    }

    #[test]
    fn parsing_time_is_linear_in_size() {
        // 1 MiB of text and 4,000 siblings: the work stays small (minidom's parser alone takes
        // seconds on 10 MB of text).
        let big = format!("<a xmlns='u'>{}</a>", "x&amp;".repeat((1 << 20) / 6 - 4));
        assert_eq!(parse(&big).unwrap().text().len(), ((1 << 20) / 6 - 4) * 2);
        let siblings = format!("<a xmlns='u'>{}</a>", "<b c='d'/>".repeat(4000));
        assert_eq!(parse(&siblings).unwrap().children().count(), 4000);
    }
}
