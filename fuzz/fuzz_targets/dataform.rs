//! The XEP-0004 parser and the normalization on arbitrary XML: no panic; a parsed form survives
//! serialization; normalization is total on parsed input.
#![no_main]

use esession_crypto::Profile;
use esession_forms::dataform::DataForm;
use esession_forms::{normalize, xml};
use libfuzzer_sys::fuzz_target;
use minidom::Element;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(e) = xml::parse(text) else { return };
    let _ = normalize::element(Profile::Xep, &e);
    let _ = normalize::form_content(Profile::Gajim, &e, &["mac"]);
    if let Ok(form) = DataForm::parse(&e) {
        let back = Element::from(&form);
        assert_eq!(DataForm::parse(&back).as_ref(), Ok(&form));
        let again = xml::parse(&String::from(&back)).expect("our own output parses");
        assert_eq!(DataForm::parse(&again).as_ref(), Ok(&form));
    }
});
