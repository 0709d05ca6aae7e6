//! Integration tests of esession-crypto: known answers from independent published sources
//! (`tests/vectors/README.md`) and property tests. The tests on the large vector files
//! (Wycheproof, the Gajim-validated recording) are in `tests/large_vectors`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod kat;
mod kdf;
mod modp;
mod props;
mod rows116_more;
mod seal;
mod sign;

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

pub(crate) fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}
