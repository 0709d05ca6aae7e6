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
