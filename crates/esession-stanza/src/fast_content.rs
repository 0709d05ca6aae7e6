//! A fast path for parsing decrypted content, beside minidom's parser.
//!
//! minidom's parser (rxml) tests and copies every octet of a text node several times, which makes
//! it most of the cost of receiving a long message (docs/performance.md). Decrypted content
//! almost always has a simple shape: elements with unprefixed names, unprefixed attributes and
//! `xmlns` declarations, text with the five predefined entities. [`parse`] handles exactly that
//! subset, scanning text a block at a time, and builds the same elements minidom's parser
//! builds. Everything else (prefixes, comments, CDATA sections, character references, processing
//! instructions, carriage returns, attribute values with whitespace to normalize, names outside
//! ASCII, control characters, U+FFFE/U+FFFF, `]]>`, duplicate attributes, more than 16
//! attributes on an element, names or attribute values longer than 4096 octets, the reserved
//! namespaces as `xmlns`, nesting deeper than 64) and every error makes it return `None`,
//! and the caller parses the content with minidom, which stays the authority on what is
//! well-formed. So the fast path never accepts what minidom rejects, and what it accepts it
//! builds identically; differential tests and a fuzz target (`content`) check both. Content
//! that leaves the subset costs at most this scan on top of minidom's parse.

use minidom::Element;
use minidom::rxml::{Namespace, NcName};

/// Deeper content is left to minidom's parser (which refuses it: `Limits::CONTENT`).
const MAX_DEPTH: usize = esession_forms::xml::Limits::CONTENT.depth;

/// Content with more elements is left to minidom's parser (which refuses it).
const MAX_ELEMENTS: usize = esession_forms::xml::Limits::CONTENT.elements;

/// Elements with more attributes are left to minidom's parser (the duplicate check here is
/// quadratic).
const MAX_ATTRS: usize = 16;

/// Longer names and attribute values (in input octets) are left to minidom's parser, which
/// refuses names and values beyond its token limit (8192 octets in rxml 0.14).
const MAX_TOKEN: usize = 4096;

/// Namespace names that cannot be the default namespace (XML Namespaces §3, "Reserved Prefixes
/// and Namespace Names"); rxml refuses the first, and the fast path leaves both to it.
const RESERVED_NS: [&str; 2] = ["http://www.w3.org/XML/1998/namespace", "http://www.w3.org/2000/xmlns/"];

/// Octets per block of the text scan.
const BLOCK: usize = 32;

/// An element being built, with the name its end tag must repeat.
struct Open<'a> {
    el: Element,
    name: &'a str,
}

/// Parses `text`, the decrypted content of a stanza in namespace `stanza_ns`, into the elements
/// at its top level; whitespace between them is dropped. `None` when the content is outside the
/// subset handled here or not well-formed: the caller then uses minidom's parser.
pub(crate) fn parse(stanza_ns: &str, text: &str) -> Option<Vec<Element>> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut stack: Vec<Open<'_>> = Vec::new();
    // Text of the innermost open element not yet appended to it.
    let mut pending = String::new();
    let mut i = 0;
    // Elements started: beyond Limits::CONTENT minidom's parser decides (and refuses).
    let mut elements = 0usize;
    loop {
        // Text up to the next octet that needs a look.
        let j = next_special(s, i);
        if stack.is_empty() {
            if !s[i..j].iter().all(|&b| b == b' ') {
                return None;
            }
        } else {
            esession_forms::xml::push_in_pieces(&mut pending, &text[i..j]);
        }
        i = j;
        let Some(&b) = s.get(i) else { break };
        match b {
            b'\t' | b'\n' => {
                // At the top level, whitespace between elements (dropped).
                if !stack.is_empty() {
                    pending.push(char::from(b));
                }
                i += 1;
            }
            b'&' => {
                let (c, len) = entity(&s[i..])?;
                if stack.is_empty() {
                    return None;
                }
                pending.push(c);
                i += len;
            }
            b']' => {
                // `]]>` may not appear in text.
                if s[i..].starts_with(b"]]>") || stack.is_empty() {
                    return None;
                }
                pending.push(']');
                i += 1;
            }
            0xef => {
                // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters; any other
                // character starting with EF is text (the content is valid UTF-8).
                let c = text[i..].chars().next()?;
                if c == '\u{fffe}' || c == '\u{ffff}' || stack.is_empty() {
                    return None;
                }
                pending.push(c);
                i += c.len_utf8();
            }
            b'<' => {
                if let Some(top) = stack.last_mut()
                    && !pending.is_empty()
                {
                    top.el.append_text(core::mem::take(&mut pending));
                }
                if s.get(i + 1) == Some(&b'/') {
                    let (name, len) = end_tag(&text[i + 2..])?;
                    let open = stack.pop()?;
                    if open.name != name {
                        return None;
                    }
                    place(&mut stack, &mut out, open.el);
                    i += 2 + len;
                } else {
                    elements += 1;
                    if stack.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                        return None;
                    }
                    let inherited = stack.last().map_or(stanza_ns.to_owned(), |o| o.el.ns());
                    let (el, name, len, empty) = start_tag(&text[i + 1..], inherited)?;
                    i += 1 + len;
                    if empty {
                        place(&mut stack, &mut out, el);
                    } else {
                        stack.push(Open { el, name });
                    }
                }
            }
            // Carriage returns (line-end normalization), other control characters.
            _ => return None,
        }
    }
    stack.is_empty().then_some(out)
}

/// Puts a finished element into its parent, or at the top level.
fn place(stack: &mut [Open<'_>], out: &mut Vec<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => {
            parent.el.append_child(el);
        }
        None => out.push(el),
    }
}

/// The index of the first octet at or after `from` that text cannot simply take: `<`, `&`, `]`
/// (for `]]>`), 0xEF (for U+FFFE/U+FFFF) and every control octet (tab and newline included, so
/// that the top level can tell them apart); `s.len()` if there is none.
fn next_special(s: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(block) = s.get(i..i + BLOCK).and_then(|b| <&[u8; BLOCK]>::try_from(b).ok()) {
        if any_special(block) {
            break;
        }
        i += BLOCK;
    }
    s[i..].iter().position(|&b| is_special(b)).map_or(s.len(), |p| i + p)
}

fn is_special(b: u8) -> bool {
    b < 0x20 || b == b'<' || b == b'&' || b == b']' || b == 0xef
}

/// Whether a block holds a special octet: a branch-free reduction the compiler vectorizes.
#[inline]
fn any_special(block: &[u8; BLOCK]) -> bool {
    let mut acc = 0u8;
    for &b in block {
        acc |= u8::from(b < 0x20) | u8::from(b == b'<') | u8::from(b == b'&') | u8::from(b == b']');
        acc |= u8::from(b == 0xef);
    }
    acc != 0
}

/// One of the five predefined entities at the start of `s`: the character and the length.
fn entity(s: &[u8]) -> Option<(char, usize)> {
    for (name, c) in
        [(&b"&amp;"[..], '&'), (b"&lt;", '<'), (b"&gt;", '>'), (b"&apos;", '\''), (b"&quot;", '"')]
    {
        if s.starts_with(name) {
            return Some((c, name.len()));
        }
    }
    None
}

/// The run of ASCII name characters (letters, digits, `_`, `-`, `.`) at the start of `s`.
fn name_run(s: &str) -> &str {
    let len = s
        .bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')))
        .unwrap_or(s.len());
    &s[..len]
}

/// An ASCII name at the start of `s`: a [`name_run`] not starting with a digit, `-` or `.`,
/// and not with `xml` in any case (names reserved by XML and its namespaces fall back).
fn name(s: &str) -> Option<&str> {
    let n = name_run(s);
    let first = *n.as_bytes().first()?;
    if !(first.is_ascii_alphabetic() || first == b'_')
        || n.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("xml"))
        || n.len() > MAX_TOKEN
    {
        return None;
    }
    Some(n)
}

/// Spaces, tabs and newlines at the start of `s` (a carriage return falls back).
fn blanks(s: &[u8]) -> usize {
    s.iter().position(|&c| !matches!(c, b' ' | b'\t' | b'\n')).unwrap_or(s.len())
}

/// `name S? >` after `</`: the name and the length consumed.
fn end_tag(s: &str) -> Option<(&str, usize)> {
    let n = name(s)?;
    let mut i = n.len();
    i += blanks(&s.as_bytes()[i..]);
    (s.as_bytes().get(i) == Some(&b'>')).then_some((n, i + 1))
}

/// A start tag after `<`: the element (in `inherited`'s namespace unless it declares its own),
/// its name, the length consumed and whether it was empty (`/>`).
fn start_tag(s: &str, inherited: String) -> Option<(Element, &str, usize, bool)> {
    let b = s.as_bytes();
    let n = name(s)?;
    // The name of `parse_general`'s wrapper, whose end tag it refuses in content.
    if n == "esession-content" {
        return None;
    }
    let mut i = n.len();
    let mut own_ns: Option<String> = None;
    let mut attrs: Vec<(&str, String)> = Vec::new();
    let empty = loop {
        let sp = blanks(&b[i..]);
        i += sp;
        match b.get(i)? {
            b'>' => break false,
            b'/' => {
                if b.get(i + 1) != Some(&b'>') {
                    return None;
                }
                i += 1;
                break true;
            }
            _ if sp == 0 => return None,
            _ => {}
        }
        let (attr, value, len) = attribute(&s[i..])?;
        i += len;
        if attr == "xmlns" {
            if own_ns.is_some() || value.is_empty() || RESERVED_NS.contains(&value.as_str()) {
                return None;
            }
            own_ns = Some(value);
        } else {
            if attrs.len() >= MAX_ATTRS || attrs.iter().any(|(a, _)| *a == attr) {
                return None;
            }
            attrs.push((attr, value));
        }
    };
    let mut el = match own_ns {
        Some(ns) => Element::builder(n, ns.clone()).prefix(None, ns).ok()?.build(),
        None => Element::bare(n, inherited),
    };
    for (attr, value) in attrs {
        el.attrs_mut().insert(Namespace::NONE, NcName::try_from(attr).ok()?, value);
    }
    Some((el, n, i + 1, empty))
}

/// `name S? = S? "value"` (or single quotes): the name, the value with entities resolved, and
/// the length consumed. Values with whitespace other than spaces (normalized by XML) fall back.
fn attribute(s: &str) -> Option<(&str, String, usize)> {
    let b = s.as_bytes();
    // A prefixed name (`xmlns:p`, `xml:lang`) stops at the colon and then lacks its `=`.
    let n = if name_run(s) == "xmlns" { "xmlns" } else { name(s)? };
    let mut i = n.len();
    i += blanks(&b[i..]);
    if b.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    i += blanks(&b[i..]);
    let quote = *b.get(i)?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    i += 1;
    let start = i;
    let mut value = String::new();
    loop {
        let j =
            i + b[i..].iter().position(|&c| c == quote || c == b'<' || c == b'&' || c < 0x20 || c == 0xef)?;
        if j - start > MAX_TOKEN {
            return None;
        }
        value.push_str(&s[i..j]);
        i = j;
        match b[i] {
            c if c == quote => return Some((n, value, i + 1)),
            b'&' => {
                let (c, len) = entity(&b[i..])?;
                value.push(c);
                i += len;
            }
            0xef => {
                let c = s[i..].chars().next()?;
                if c == '\u{fffe}' || c == '\u{ffff}' {
                    return None;
                }
                value.push(c);
                i += c.len_utf8();
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::parse;
    use crate::content::parse_general;
    use minidom::Element;
    use proptest::prelude::*;

    const NS: &str = "jabber:client";

    fn xml(e: &Element) -> String {
        let mut v = Vec::new();
        e.write_to(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    /// Parses `text` both ways; when the fast path accepts, minidom's parser must accept and
    /// build equal elements that serialize identically. Returns whether the fast path accepted.
    fn check(text: &str) -> bool {
        let Some(fast) = parse(NS, text) else { return false };
        let general = parse_general(NS, text.as_bytes())
            .unwrap_or_else(|e| panic!("fast path accepted what minidom rejects ({e:?}): {text:?}"));
        assert_eq!(fast, general, "{text:?}");
        let (a, b): (Vec<_>, Vec<_>) = (fast.iter().map(xml).collect(), general.iter().map(xml).collect());
        assert_eq!(a, b, "{text:?}");
        true
    }

    #[test]
    fn usual_content_takes_the_fast_path_and_matches() {
        let long = "x".repeat(5000);
        let cases = [
            String::new(),
            "  \n\t ".to_owned(),
            "<body>hello</body>".to_owned(),
            format!("<body>{long}</body>"),
            format!("<body>{long}é€😀\u{fe0f}\u{ef00}\u{fffd}</body>"),
            // XML characters all: C1 controls, noncharacters other than U+FFFE/U+FFFF, the last.
            "<body>\u{7f}\u{85}\u{9f}\u{fdd0}\u{effff}\u{10ffff}\u{e000}\u{d7ff}</body>".to_owned(),
            "<body>a &amp; b &lt;c&gt; &apos;d&quot; ] ]] &gt; ]>x</body>".to_owned(),
            "<body>line\n\tnext</body>\n<active xmlns='http://jabber.org/protocol/chatstates'/>".to_owned(),
            "<body/><body></body><b><i>x</i>y<i/>z</b>".to_owned(),
            "<x xmlns=\"jabber:x:oob\"><url>u</url><desc a='1' b = \"2&amp;&#x3e;\"/></x>".to_owned(),
            "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p style='a:b'>t</p></body></html>".to_owned(),
            "<a b='\"' c=\"'\" d='>' e='é€\u{fe0f}'/>".to_owned(),
            "<a  \n b='1'\t/ >".to_owned(),
            "<a.b-c_d e.f='g' _h='i'></a.b-c_d >".to_owned(),
            "<a>   </a>".to_owned(),
            // Text beyond rxml's token limit (it splits it, minidom joins it), split anywhere
            // in a multi-octet character.
            format!("<body>x{}</body>", "é".repeat(5000)),
            format!("<body>{}</body>", "😀".repeat(3000)),
            format!("<body>{}&amp;{}</body>", "€".repeat(3000), "é".repeat(3000)),
        ];
        for c in &cases {
            let took = check(c);
            // A few of them leave the subset on purpose (character reference, `/ >`).
            let expected = !c.contains("&#") && !c.contains("/ >");
            assert_eq!(took, expected, "{c:?}");
        }
    }

    #[test]
    fn everything_else_falls_back_to_minidom() {
        for c in [
            "<a>x</b>",
            "<a>",
            "</a>",
            "<a>x]]>y</a>",
            "<a>\r\n</a>",
            "<a>\u{1}</a>",
            "<a>\u{fffe}</a>",
            "<a>\u{ffff}</a>",
            "<a b='\u{ffff}'/>",
            "<a>&#65;</a>",
            "<a>&nbsp;</a>",
            "<a>&amp</a>",
            "<a><![CDATA[x]]></a>",
            "<a><!-- c --></a>",
            "<a><?pi x?></a>",
            "<?xml version='1.0'?><a/>",
            "<!DOCTYPE a><a/>",
            "<p:a xmlns:p='urn:x'/>",
            "<a xml:lang='en'/>",
            "<a xmlns:p='urn:x'/>",
            "<a xmlns=''/>",
            "<a xmlns='urn:x' xmlns='urn:y'/>",
            "<a b='1' b='2'/>",
            "<a b='x\ty'/>",
            "<a b='x\ny'/>",
            "<a b='<'/>",
            "<a b=1/>",
            "<a b/>",
            "<a b='1'c='2'/>",
            "<a/ >",
            "<1a/>",
            "<-a/>",
            "<xmlfoo/>",
            "<XMLa/>",
            "<a xmlfoo='1'/>",
            "<é/>",
            "<a é='1'/>",
            "text",
            "<a/>text",
            "&amp;<a/>",
            "\u{a0}<a/>",
            "<a/>\r\n",
            "<a></esession-content><b>",
            "<esession-content>x</esession-content>",
            "<esession-content/>",
        ] {
            assert!(!check(c), "{c:?}");
        }
        // Long names and values, and reserved namespaces, are left to minidom.
        let n = super::MAX_TOKEN;
        for (c, fast) in [
            (format!("<{}/>", "a".repeat(n)), true),
            (format!("<{}/>", "a".repeat(n + 1)), false),
            (format!("<{0}></{0}>", "a".repeat(9000)), false),
            (format!("<a b='{}'/>", "v".repeat(n)), true),
            (format!("<a b='{}'/>", "v".repeat(n + 1)), false),
            (format!("<a b='{}&amp;'/>", "v".repeat(n - 5)), true),
            (format!("<a b='{}&amp;'/>", "v".repeat(n - 4)), false),
            (format!("<a b='{}'/>", "v".repeat(9000)), false),
            ("<a xmlns='http://www.w3.org/XML/1998/namespace'/>".to_owned(), false),
            ("<a xmlns='http://www.w3.org/2000/xmlns/'/>".to_owned(), false),
            // fuzz/regressions/content/crash-fa1229d0... verbatim.
            (regression("crash-fa1229d030a1b8817e683f263f128ccdf8d69ff3"), false),
        ] {
            assert_eq!(check(&c), fast, "{}", &c[..40.min(c.len())]);
        }
        // What minidom refuses there (fuzz/regressions/content/crash-fa1229d0...: the XML
        // namespace as the default one, which the fast path accepted).
        for c in [
            format!("<a b='{}'/>", "v".repeat(9000)),
            format!("<{}/>", "a".repeat(9000)),
            "<ebody xmlns=\"http://www.w3.org/XML/1998/namespace\"/>".to_owned(),
        ] {
            assert!(parse_general(NS, c.as_bytes()).is_err(), "{}", &c[..40]);
        }
        // Many attributes are left to minidom.
        let attrs = |n: usize| {
            format!("<a {}/>", (0..n).map(|k| format!("a{k}='{k}'")).collect::<Vec<_>>().join(" "))
        };
        assert!(check(&attrs(super::MAX_ATTRS)));
        assert!(!check(&attrs(super::MAX_ATTRS + 1)));
        // Deep nesting is left to minidom.
        let deep = format!("{}{}", "<a>".repeat(super::MAX_DEPTH + 1), "</a>".repeat(super::MAX_DEPTH + 1));
        assert!(!check(&deep));
        let ok = format!("{}{}", "<a>".repeat(super::MAX_DEPTH), "</a>".repeat(super::MAX_DEPTH));
        assert!(check(&ok));
    }

    /// The fuzz regressions of the repository's `fuzz/regressions/content/`, verbatim (kept here
    /// so that the crate's tests stand alone outside the repository).
    fn regression(name: &str) -> String {
        match name {
            "crash-fa1229d030a1b8817e683f263f128ccdf8d69ff3" => {
                "<ebody xmlns=\"http://www.w3.org/XML/1998/namespace\"/>".to_owned()
            }
            "crash-fe85207aebe7a21261ee5eeb569d4b5e68e7e34b" => {
                "<x wml='j' xmlns:p='urn:p'>x!%!!<oe xmlns:p='urn:p'/>!!!o</x>".to_owned()
            }
            other => panic!("unknown regression {other}"),
        }
    }

    /// fuzz/regressions/content/crash-fe85207a...: a prefix declared again on a child with the
    /// same namespace. The fast path leaves prefixes to minidom, which accepts it (its writer
    /// panics on the result, an upstream bug checked in esession-forms' `xml::prefix_tests`).
    #[test]
    fn redeclared_prefix_goes_to_minidom() {
        let text = regression("crash-fe85207aebe7a21261ee5eeb569d4b5e68e7e34b");
        assert!(parse(NS, &text).is_none());
        assert_eq!(parse_general(NS, text.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn special_octets_at_every_block_position() {
        for len in [0usize, 1, 31, 32, 33, 63, 64, 65, 100] {
            for special in ["&amp;", "\n", "\t", "]", "\u{fe0f}", "€", "<b/>"] {
                for at in [0, len / 2, len] {
                    let mut body = "y".repeat(len);
                    body.insert_str(at, special);
                    let text = format!("<body>{body}</body>");
                    assert!(check(&text), "{text:?}");
                }
            }
            for bad in ["\u{ffff}", "\r", "\u{1f}", "]]>"] {
                let text = format!("<body>{}{bad}</body>", "y".repeat(len));
                assert!(!check(&text), "{text:?}");
                assert!(parse_general(NS, text.as_bytes()).is_err() || bad == "\r", "{text:?}");
            }
        }
    }

    /// Pieces from which random content is put together: well-formed and broken markup.
    const PIECES: &[&str] = &[
        "<a>",
        "</a>",
        "<b>",
        "</b>",
        "<a/>",
        "<b x='1'>",
        "<a xmlns='urn:n'>",
        "<c y=\"&amp;\" z='2'/>",
        "text",
        " ",
        "\n",
        "\t",
        "\r",
        "&amp;",
        "&lt;",
        "&gt;",
        "&apos;",
        "&quot;",
        "&#60;",
        "&foo;",
        "&",
        "<",
        ">",
        "]",
        "]]>",
        "é",
        "\u{ffff}",
        "\u{fe0f}",
        "\u{1}",
        "<!---->",
        "<![CDATA[<]]>",
        "<?p?>",
        "<p:a xmlns:p='urn:p'>",
        "</p:a>",
        "<a b='1' b='1'/>",
        "'",
        "\"",
        "/",
        "=",
        "</esession-content>",
        "<esession-content>",
    ];

    /// The same from a fixed generator, counting both outcomes: the random inputs must exercise
    /// the fast path, not only the fallback.
    #[test]
    fn random_pieces_exercise_both_paths() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut fast, mut fallback) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 12) {
                let r = x.rotate_left(5 * k as u32);
                text.push_str(PIECES[(r % PIECES.len() as u64) as usize]);
            }
            if check(&text) { fast += 1 } else { fallback += 1 }
        }
        assert!(fast > 1000 && fallback > 1000, "fast {fast}, fallback {fallback}");
    }

    /// A small generator of well-formed content in the subset, driven by `next`.
    fn tree(next: &mut impl FnMut(usize) -> usize, depth: usize, out: &mut String) {
        const NAMES: &[&str] = &["a", "body", "x.y", "_z-1"];
        const TEXT: &[&str] =
            &["t", "&amp;", "é", "\n", "]", " ", "\u{fe0f}", "&lt;", "&quot;", "€", "\t", "&gt;"];
        let name = NAMES[next(NAMES.len())];
        out.push('<');
        out.push_str(name);
        if next(3) == 0 {
            out.push_str(" xmlns='urn:n'");
        }
        for attr in ["k", "v"] {
            if next(2) == 0 {
                let value = TEXT[next(TEXT.len())].replace(['\n', '\t'], "s");
                out.push_str(&format!(" {attr}='{value}'"));
            }
        }
        if depth == 0 || next(4) == 0 {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for _ in 0..next(4) {
            if next(2) == 0 {
                tree(next, depth - 1, out);
            } else {
                for _ in 0..next(6) {
                    out.push_str(TEXT[next(TEXT.len())]);
                }
            }
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }

    /// Random well-formed content takes the fast path and matches; every one-octet corruption
    /// of it is either handled identically or left to minidom.
    #[test]
    fn random_trees_and_their_corruptions() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        const BAD: &[u8] = b"<>&'\"/ \r]=!?:x";
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..1 + next(3) {
                tree(&mut next, 4, &mut text);
                text.push_str(["", " ", "\n"][next(3)]);
            }
            assert!(check(&text), "{text:?}");
            let mut bytes = text.clone().into_bytes();
            let at = next(bytes.len());
            if next(2) == 0 {
                bytes.remove(at);
            } else {
                bytes[at] = BAD[next(BAD.len())];
            }
            if let Ok(t) = String::from_utf8(bytes) {
                check(&t);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn fast_path_agrees_with_minidom(idx in proptest::collection::vec(0..PIECES.len(), 0..24)) {
            let text: String = idx.iter().map(|&i| PIECES[i]).collect();
            check(&text);
        }

        #[test]
        fn fast_path_agrees_on_arbitrary_text(text in "[<>/a-c =\"'&;#x0-9\\]\\[!?:\\-\\.\u{e9}\u{ffff}\t\n\r]{0,40}") {
            check(&text);
        }
    }
}
