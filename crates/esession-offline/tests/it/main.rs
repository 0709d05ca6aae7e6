//! Integration tests of esession-offline: the whole offline flow in memory, its negative cases,
//! and the durable replay store under kill -9.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod away;
mod crash;
mod flow;
mod props;
mod publish;
mod replay;

use esession_crypto::PrivateKey;

pub(crate) fn keys() -> (PrivateKey, PrivateKey) {
    let v: serde_json::Value = serde_json::from_str(include_str!("../vectors/identity-keys.json")).unwrap();
    let h = |a: &str, f: &str| {
        let s = v[a][f].as_str().unwrap();
        hex::decode(if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() }).unwrap()
    };
    (
        PrivateKey::rsa_from_components(&h("rsa", "n"), &h("rsa", "e"), &h("rsa", "d")).unwrap(),
        PrivateKey::dsa_from_components(
            &h("dsa", "p"),
            &h("dsa", "q"),
            &h("dsa", "g"),
            &h("dsa", "y"),
            &h("dsa", "x"),
        )
        .unwrap(),
    )
}

/// Bob accepting every algorithm this build implements: the tests use small groups (weak, so not
/// accepted by default) to stay fast.
pub(crate) fn weak_ok(mut c: esession_negotiate::Config) -> esession_negotiate::Config {
    c.support.crypto = esession_crypto::CryptoProvider::all();
    c
}

/// The bare JID of a JID of the tests.
pub(crate) fn bare(s: &str) -> esession_negotiate::BareJid {
    esession_negotiate::Jid::new(s).unwrap().to_bare()
}
