//! XML normalization (XEP-0116 §6.2 with spec/README.md A11 and I9): the octets that MACs and
//! signatures cover.
//!
//! One total function per profile, always working on a *parsed* element, so the result never
//! depends on how the peer serialized its stanza (attribute order, quotes, whitespace between
//! elements, namespace prefixes):
//!
//! * character data between elements is removed: an element with element children keeps only
//!   those children; the text of a leaf element is kept verbatim;
//! * no `xmlns` attributes, no prefixes: names are local names;
//! * attributes sorted by local name, written with double quotes;
//! * empty elements as start-end pairs (`<required></required>`); `Profile::Gajim` writes
//!   `<required />` as Gajim's C14N routine does;
//! * C14N escaping: in text `&`, `<`, `>`, CR; in attributes `&`, `<`, `"`, TAB, LF, CR.

use crate::error::{Error, Result};
use esession_crypto::Profile;
use minidom::Element;

/// How deep normalized XML may nest (forms have depth 3, `<KeyValue/>` 3).
pub const MAX_DEPTH: usize = 16;

/// The normalized serialization of `e`.
///
/// # Errors
/// [`Error::TooLarge`] beyond [`MAX_DEPTH`] levels.
pub fn element(profile: Profile, e: &Element) -> Result<String> {
    let mut out = String::new();
    write(profile, e, None, 0, &mut out)?;
    Ok(out)
}

/// [`element`], appended to `out` without an intermediate string. On error `out` holds a partial
/// serialization, to be discarded.
///
/// # Errors
/// As [`element`].
pub fn element_into(profile: Profile, e: &Element, out: &mut String) -> Result<()> {
    write(profile, e, None, 0, out)
}

/// Like [`element`], but the root element carries its namespace as an `xmlns` attribute, as
/// Gajim's C14N of `<RSAKeyValue/>` does.
///
/// # Errors
/// As [`element`].
pub fn element_with_root_ns(profile: Profile, e: &Element) -> Result<String> {
    let mut out = String::new();
    let ns = e.ns();
    write(profile, e, Some(&ns), 0, &mut out)?;
    Ok(out)
}

/// The normalized *content* of a data form: the concatenation of its `<field/>` children in
/// document order, leaving out the fields whose `var` is in `exclude` (`identity`, `mac`,
/// `signs` where the specs say so). Other children of `<x/>` do not enter the content (I9).
///
/// # Errors
/// [`Error::UnexpectedElement`] if `x` is not a data form; as [`element`].
pub fn form_content(profile: Profile, x: &Element, exclude: &[&str]) -> Result<Vec<u8>> {
    if !x.is("x", crate::dataform::NS) {
        return Err(Error::UnexpectedElement { expected: "x" });
    }
    let mut out = String::new();
    for f in x.children().filter(|c| c.is("field", crate::dataform::NS)) {
        if f.attr("var").is_some_and(|v| exclude.contains(&v)) {
            continue;
        }
        write(profile, f, None, 0, &mut out)?;
    }
    Ok(out.into_bytes())
}

fn write(profile: Profile, e: &Element, root_ns: Option<&str>, depth: usize, out: &mut String) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TooLarge("XML depth"));
    }
    out.push('<');
    out.push_str(e.name());
    let mut attrs: Vec<(&str, &str)> =
        e.attrs().iter().map(|((_, name), value)| (name.as_str(), value.as_str())).collect();
    if let Some(ns) = root_ns {
        attrs.push(("xmlns", ns));
    }
    attrs.sort_unstable();
    for (name, value) in attrs {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_attr(value, out);
        out.push('"');
    }
    let has_children = e.children().next().is_some();
    let has_text = !has_children && e.texts().any(|t| !t.is_empty());
    if !has_children && !has_text {
        match profile {
            Profile::Xep => {
                out.push_str("></");
                out.push_str(e.name());
                out.push('>');
            }
            Profile::Gajim => out.push_str(" />"),
        }
        return Ok(());
    }
    out.push('>');
    if has_children {
        // X116-6.2-01: the character data between elements is removed (only the element
        // children are written), and what is written is the canonical form above: sorted
        // attributes in double quotes, no namespace declarations, C14N escaping.
        for c in e.children() {
            write(profile, c, None, depth + 1, out)?;
        }
    } else {
        // Escaping is per character: the text nodes are escaped one after the other, without
        // first being collected into one string.
        for t in e.texts() {
            escape_text(t, out);
        }
    }
    out.push_str("</");
    out.push_str(e.name());
    out.push('>');
    Ok(())
}

fn escape_text(s: &str, out: &mut String) {
    crate::xml::escape_into(s, out, *b"&<>\r", |b| match b {
        b'&' => "&amp;",
        b'<' => "&lt;",
        b'>' => "&gt;",
        _ => "&#xD;",
    });
}

fn escape_attr(s: &str, out: &mut String) {
    crate::xml::escape_into(s, out, *b"&<\"\t\n\r", |b| match b {
        b'&' => "&amp;",
        b'<' => "&lt;",
        b'"' => "&quot;",
        b'\t' => "&#x9;",
        b'\n' => "&#xA;",
        _ => "&#xD;",
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn references_md_worked_example() {
        // spec/references.md §4: the XEP-0116 §6.2 worked example.
        let x = parse(
            "<x xmlns='jabber:x:data' type='form'><field type='hidden' var='FORM_TYPE'>\n  <value>urn:xmpp:ssn</value>\n</field><field var='accept'><required/></field></x>",
        )
        .unwrap();
        let got = form_content(Profile::Xep, &x, &[]).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            r#"<field type="hidden" var="FORM_TYPE"><value>urn:xmpp:ssn</value></field><field var="accept"><required></required></field>"#
        );
        let gajim = form_content(Profile::Gajim, &x, &[]).unwrap();
        assert!(String::from_utf8(gajim).unwrap().ends_with(r#"<field var="accept"><required /></field>"#));
    }

    #[test]
    fn independent_of_serialization() {
        let a = parse(r#"<x xmlns="jabber:x:data" type="submit"><field var="v" type="text-single" label="L"><value>a&amp;b&lt;c&gt;</value></field></x>"#).unwrap();
        let b = parse("<d:x xmlns:d='jabber:x:data' type='submit'>\n <d:field label='L' type='text-single'\n var='v'>  <d:value>a&#38;b&#60;c></d:value> </d:field>\n</d:x>").unwrap();
        let na = form_content(Profile::Xep, &a, &[]).unwrap();
        assert_eq!(na, form_content(Profile::Xep, &b, &[]).unwrap());
        assert_eq!(
            String::from_utf8(na).unwrap(),
            r#"<field label="L" type="text-single" var="v"><value>a&amp;b&lt;c&gt;</value></field>"#
        );
    }

    #[test]
    fn excludes_fields_and_escapes_attributes() {
        let x = parse("<x xmlns='jabber:x:data' type='result'><field var='a&quot;&#9;'><value> keep  spaces </value></field><field var='mac'><value>x</value></field></x>").unwrap();
        let got = String::from_utf8(form_content(Profile::Xep, &x, &["mac"]).unwrap()).unwrap();
        assert_eq!(got, "<field var=\"a&quot;&#x9;\"><value> keep  spaces </value></field>");
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("<a xmlns='u'>{}{}</a>", "<b>".repeat(20), "</b>".repeat(20));
        assert!(matches!(element(Profile::Xep, &parse(&deep).unwrap()), Err(Error::TooLarge(_))));
    }
}
