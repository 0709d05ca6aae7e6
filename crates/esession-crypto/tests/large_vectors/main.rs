//! Tests of esession-crypto on the large vector files of `tests/vectors/`: Project Wycheproof's
//! RSA and DSA signature suites and the 4-message negotiation validated against the original
//! Gajim code (`tests/vectors/README.md` says where each comes from).
//!
//! They run in the repository. The published package leaves these files and this test out
//! (`exclude` in Cargo.toml) to stay small; everything else in `tests/it` ships and runs there.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gajim;
mod wycheproof;

use serde_json::Value;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() };
    hex::decode(s).expect("hex")
}

pub(crate) fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("vector file");
    serde_json::from_str(&text).expect("JSON")
}

pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("missing {key}"))
}
