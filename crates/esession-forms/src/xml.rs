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

/// Parses XML text into an element, mapping the error.
///
/// # Errors
/// [`Error::Xml`] if the text is not one well-formed element.
pub fn parse(text: &str) -> Result<Element> {
    text.parse::<Element>().map_err(|e| Error::Xml(e.to_string()))
}

/// A copy of `e` without the prefix declarations its parser recorded: the same names,
/// namespaces, attributes (with their namespaces) and nodes, so equal to `e`; minidom's writer
/// chooses prefixes anew when it writes the copy. For elements received from a peer and sent on
/// (an error reply quoting a request): minidom's writer panics on some declarations its parser
/// accepts (a prefix declared again below an element that declared it, docs/security.md), and a
/// peer's declarations have no business in what we send.
#[must_use]
pub fn without_prefixes(e: &Element) -> Element {
    let mut out = Element::bare(e.name(), e.ns());
    for ((ns, name), value) in e.attrs().iter() {
        out.attrs_mut().insert(ns.clone(), name.clone(), value.clone());
    }
    for n in e.nodes() {
        match n {
            Node::Element(c) => {
                out.append_child(without_prefixes(c));
            }
            Node::Text(t) => out.append_text_node(t.clone()),
        }
    }
    out
}

/// Appends `s` to `out`, replacing each octet of `special` (ASCII only) by `replace(octet)`.
/// Blocks of 32 octets containing none of them are tested with one branch-free pass the
/// compiler vectorizes and copied as part of a run, so the long text of a chat body or a Base64
/// value costs little more than a `memcpy`.
pub fn escape_into<const N: usize>(
    s: &str,
    out: &mut String,
    special: [u8; N],
    replace: impl Fn(u8) -> &'static str,
) {
    let is_special = |b: u8| special.contains(&b);
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
            // Special octets are ASCII, so i and i + 1 are character boundaries.
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
/// buffers sit badly (docs/performance.md, "Copies"). For copies of long text on hot paths.
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
#[allow(clippy::unwrap_used)]
mod prefix_tests {
    use super::{parse, without_prefixes};

    /// The input the content fuzz target found (fuzz/regressions/content/crash-fe85207a...):
    /// written as parsed, minidom's writer panics; the copy writes, keeps the namespaced
    /// attributes and parses back equal.
    #[test]
    fn copy_without_prefixes_writes_and_stays_equal() {
        let text =
            "<x xmlns='jabber:client' wml='j' xmlns:p='urn:p'>x!%!!<oe xmlns:p='urn:p' p:a='1'/>!!!o</x>";
        let e = parse(text).unwrap();
        let copy = without_prefixes(&e);
        assert_eq!(copy, e);
        let written = String::from(&copy);
        assert!(written.contains("urn:p"), "{written}");
        assert_eq!(parse(&written).unwrap(), e);
        assert!(std::panic::catch_unwind(|| String::from(&e)).is_err(), "minidom fixed its writer");
    }
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
