//! `gajim-g4_none_modp5.json` (validated against Gajim 0.15.4): parsing its recorded negotiation
//! stanzas and normalizing with `Profile::Gajim` reproduces formA, formA2, formB and formB2.
//!
//! It reads the vector from the repository (esession-crypto's `tests/vectors/`), so it runs in
//! the repository only: the published package leaves it out (`exclude` in Cargo.toml).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use esession_crypto::Profile;
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Accept, BobIdentity, Request, Response, Wrapper};
use esession_forms::names::*;
use esession_forms::normalize::form_content;
use serde_json::Value;

fn vector() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../esession-crypto/tests/vectors/gajim-g4_none_modp5.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn gajim_forms_reproduced_from_the_wire() {
    let v = vector();
    let stanzas = v["negotiation_stanzas"].as_array().unwrap();
    assert_eq!(stanzas.len(), 4);
    let expect = |k: &str| hex::decode(v["values"][k].as_str().unwrap()).unwrap();
    let mut xs = Vec::new();
    for s in stanzas {
        let e = esession_forms::xml::parse(s["xml"].as_str().unwrap()).unwrap();
        let (w, x) = Wrapper::unwrap(Wrapper::find(&e).unwrap()).unwrap();
        xs.push((w, x.clone()));
    }
    let exclude: &[&str] = &["identity", "mac"];
    assert_eq!(form_content(Profile::Gajim, &xs[0].1, &[]).unwrap(), expect("formA"));
    assert_eq!(form_content(Profile::Gajim, &xs[1].1, &[]).unwrap(), expect("formB"));
    assert_eq!(form_content(Profile::Gajim, &xs[2].1, exclude).unwrap(), expect("formA2"));
    assert_eq!(form_content(Profile::Gajim, &xs[3].1, exclude).unwrap(), expect("formB2"));
    assert_eq!(xs[3].0, Wrapper::Init);
    // The Xep normalization differs only in the empty elements.
    let xep = form_content(Profile::Xep, &xs[0].1, &[]).unwrap();
    assert_ne!(xep, expect("formA"));
    assert_eq!(
        String::from_utf8(xep).unwrap().replace("<required></required>", "<required />").into_bytes(),
        expect("formA")
    );

    // The typed forms.
    let req = Request::parse(&DataForm::parse(&xs[0].1).unwrap()).unwrap();
    assert!(req.is_four_message());
    assert_eq!(req.offers.modp, vec![ModpGroup::G5, ModpGroup::G14]);
    assert_eq!(req.offers.crypt_algs, vec![CryptAlg::Aes128Ctr], "Gajim offers it as a hidden value");
    assert_eq!(req.offers.rekey_freq, u32::MAX);
    assert_eq!(req.my_nonce, expect("NA"));
    assert_eq!(req.dh.values()[0], expect("He"));
    let resp = Response::parse(&DataForm::parse(&xs[1].1).unwrap()).unwrap();
    assert_eq!(resp.d, expect("d"));
    assert_eq!(resp.nonce, expect("NA"));
    assert_eq!(resp.my_nonce, expect("NB"));
    assert_eq!(resp.counter, u128::from_str_radix(v["values"]["CA"].as_str().unwrap(), 16).unwrap());
    assert_eq!(resp.modp, ModpGroup::G5);
    let acc = Accept::parse(&DataForm::parse(&xs[2].1).unwrap()).unwrap();
    assert_eq!(acc.e.as_deref(), Some(expect("e").as_slice()));
    assert_eq!(acc.identity, expect("IDA"));
    assert_eq!(acc.mac, expect("MA"));
    let bob = BobIdentity::parse(&DataForm::parse(&xs[3].1).unwrap()).unwrap();
    assert_eq!(bob.srshash, expect("srshash"));
    assert_eq!(bob.identity, expect("IDB"));
    assert_eq!(bob.mac, expect("MB"));
}
