//! Each typed ESession form parser on arbitrary input (the first byte picks the parser, the rest
//! is the stanza or form XML). A form that parses must serialize and parse back to itself.
#![no_main]

use esession_crypto::Profile;
use esession_forms::dataform::DataForm;
use esession_forms::esession::{
    Accept, AnyForm, BobIdentity, OfflineOptions, Request, Response, SsnAnswer, Terminate, Wrapper,
};
use esession_forms::xml;
use libfuzzer_sys::fuzz_target;

fn check<T: PartialEq + std::fmt::Debug>(
    form: &DataForm,
    parse: impl Fn(&DataForm) -> Result<T, esession_forms::Error>,
    to: impl Fn(&T, Profile) -> DataForm,
) {
    if let Ok(v) = parse(form) {
        for p in [Profile::Xep, Profile::Gajim] {
            let back = to(&v, p);
            assert_eq!(parse(&back).as_ref(), Ok(&v), "{p:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Ok(e) = xml::parse(text) else { return };
    // Accept a whole stanza, a wrapper or a bare <x/>.
    let x = match Wrapper::find(&e).map(Wrapper::unwrap) {
        Some(Ok((_, x))) => x.clone(),
        _ => match Wrapper::unwrap(&e) {
            Ok((_, x)) => x.clone(),
            Err(_) => e,
        },
    };
    let Ok(form) = DataForm::parse(&x) else { return };
    match which % 8 {
        0 => check(&form, Request::parse, Request::to_form),
        1 => check(&form, Response::parse, Response::to_form),
        2 => check(&form, Accept::parse, |a, p| a.to_form(p, which & 0x80 != 0)),
        3 => check(&form, BobIdentity::parse, BobIdentity::to_form),
        4 => check(&form, OfflineOptions::parse, OfflineOptions::to_form),
        5 => check(&form, SsnAnswer::parse, SsnAnswer::to_form),
        6 => check(&form, Terminate::parse, |t, p| t.to_form(p)),
        _ => {
            let _ = AnyForm::parse(&form);
        }
    }
});
