//! Integration tests of esession-forms: the XEP examples, property tests (the Gajim-validated
//! vector is replayed by `tests/gajim_vector.rs`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod examples;
mod props;
mod rows116_more;
mod strict;

use minidom::Element;

/// Loads an example extracted verbatim from the spec, with the placeholders (`** text **`)
/// replaced by valid Base64 and a default namespace on the stanza.
pub(crate) fn example(name: &str) -> String {
    let path = format!("{}/tests/vectors/examples/{name}.xml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.split_once("-->\n").map_or(text.as_str(), |(_, b)| b).to_owned();
    fill_placeholders(&body)
}

/// Replaces each `** ... **` placeholder (and the whitespace around it) with a distinct valid
/// Base64 value: 32 octets for a hash commitment He (a SHA-256 output), 16 otherwise.
pub(crate) fn fill_placeholders(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut n = 0u8;
    while let Some(start) = rest.find("**") {
        let (before, after) = rest.split_at(start);
        let Some(end) = after[2..].find("**") else { break };
        out.push_str(before.trim_end_matches([' ', '\n']));
        n += 1;
        let len = if after[2..end + 2].contains("value of He") { 32 } else { 16 };
        out.push_str(&esession_crypto::mpi::b64_encode(&vec![n; len]));
        rest = after[end + 4..].trim_start_matches([' ', '\n']);
    }
    out.push_str(rest);
    out
}

pub(crate) fn stanza(xml: &str) -> Element {
    let xml = if xml.trim_start().starts_with("<message") || xml.trim_start().starts_with("<iq") {
        let i = xml.find(['\n', ' ']).unwrap();
        format!("{} xmlns='jabber:client'{}", &xml[..i], &xml[i..])
    } else {
        xml.to_owned()
    };
    esession_forms::xml::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}
