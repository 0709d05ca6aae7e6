//! Every form example of XEP-0116 (Examples 3-12), XEP-0187 (Examples 1-8) and XEP-0155 parses
//! into its typed form and serializes back to an equivalent element.

use crate::{example, stanza};
use esession_crypto::Profile;
use esession_forms::Error;
use esession_forms::dataform::{DataForm, FormType};
use esession_forms::esession::{
    Accept, AnyForm, BobIdentity, DhOffer, OfflineOptions, Request, Response, SsnAnswer, Terminate, Wrapper,
};
use esession_forms::names::*;
use minidom::Element;

fn form_of(stanza: &Element) -> (Wrapper, DataForm) {
    let w = Wrapper::find(stanza).expect("feature or init");
    let (wrapper, x) = Wrapper::unwrap(w).unwrap();
    (wrapper, DataForm::parse(x).unwrap())
}

/// Serialize the typed form, parse it again: the typed value must survive.
fn round_trip<T: PartialEq + std::fmt::Debug>(
    v: &T,
    to: impl Fn(&T) -> DataForm,
    parse: impl Fn(&DataForm) -> Result<T, Error>,
) {
    for _ in 0..2 {
        let form = to(v);
        let text = String::from(&Element::from(&form));
        let back = DataForm::parse(&esession_forms::xml::parse(&text).unwrap()).unwrap();
        assert_eq!(back, form, "element round trip");
        assert_eq!(&parse(&back).unwrap(), v, "typed round trip");
    }
}

#[test]
fn xep0116_example03_four_message_request() {
    let s = stanza(&example("xep-0116-ex03"));
    let (w, form) = form_of(&s);
    assert_eq!(w, Wrapper::Feature);
    let r = Request::parse(&form).unwrap();
    assert!(r.is_four_message());
    assert!(r.accept);
    // The example still shows the pre-rename boolean values under `logging` (A2).
    assert_eq!(r.offers.logging, vec![Logging::MustNot, Logging::May]);
    assert_eq!(r.offers.modp, vec![ModpGroup::G5, ModpGroup::G14, ModpGroup::G2, ModpGroup::G1]);
    assert_eq!(r.offers.crypt_algs, vec![CryptAlg::Aes256Ctr, CryptAlg::Twofish256Ctr, CryptAlg::Aes128Ctr]);
    assert_eq!(r.offers.hash_algs, vec![HashAlg::Whirlpool, HashAlg::Sha256]);
    assert_eq!(r.offers.sign_algs, vec![SignAlg::RsaSha256, SignAlg::DsaSha256]);
    assert_eq!(r.offers.stanzas, vec![StanzaType::Message, StanzaType::Iq, StanzaType::Presence]);
    assert_eq!(r.offers.ver, vec![Version::Unknown("1.3".into()), Version::Unknown("1.2".into())]);
    assert_eq!(r.init_pubkey, vec![PubkeyMethod::Key, PubkeyMethod::Hash, PubkeyMethod::None]);
    assert_eq!(r.offers.rekey_freq, 1);
    assert_eq!(r.sas_algs, vec![SasAlg::Sas28x5]);
    assert_eq!(r.dh.values().len(), 4);
    round_trip(&r, |r| r.to_form(Profile::Xep), Request::parse);
    round_trip(&r, |r| r.to_form(Profile::Gajim), Request::parse);
}

#[test]
fn xep0116_example04_three_message_request() {
    // Example 4 elides the common fields ("..."): rebuild it from Example 3 as its text says,
    // without sas_algs and with dhkeys instead of dhhashes.
    let ex3 = example("xep-0116-ex03");
    let start = ex3.find("<field type='list-single' var='sas_algs'>").unwrap();
    let end = ex3[start..].find("</field>").unwrap() + start + "</field>".len();
    let ex4 = format!("{}{}", &ex3[..start], &ex3[end..]).replace("var='dhhashes'", "var='dhkeys'");
    let (_, form) = form_of(&stanza(&ex4));
    let r = Request::parse(&form).unwrap();
    assert!(!r.is_four_message());
    assert!(matches!(&r.dh, DhOffer::Keys(v) if v.len() == 4));
    assert!(r.sas_algs.is_empty());
    round_trip(&r, |r| r.to_form(Profile::Xep), Request::parse);
    // The example as printed (with "...") is not a complete request.
    let printed = stanza(&example("xep-0116-ex04").replace("...", ""));
    let (_, f) = form_of(&printed);
    assert!(matches!(Request::parse(&f), Err(Error::MissingField(_))));
}

#[test]
fn xep0116_examples05_06_error_payloads() {
    for (n, condition, vars) in
        [(5, "feature-not-implemented", vec!["dhkeys"]), (6, "not-acceptable", vec!["modp", "ver"])]
    {
        let text = example(&format!("xep-0116-ex{n:02}")).replace("...", "");
        let s = stanza(&text);
        assert_eq!(s.attr("type"), Some("error"));
        let err = s.children().find(|c| c.name() == "error").unwrap();
        assert!(err.children().any(|c| c.name() == condition));
        let named: Vec<&str> = err
            .children()
            .find(|c| c.is("feature", esession_forms::esession::FEATURE_NEG_NS))
            .unwrap()
            .children()
            .filter_map(|f| f.attr("var"))
            .collect();
        assert_eq!(named, vars);
    }
}

#[test]
fn xep0116_example07_ssn_answer() {
    let (_, form) = form_of(&stanza(&example("xep-0116-ex07")));
    let a = SsnAnswer::parse(&form).unwrap();
    assert!(a.accept);
    assert_eq!(a.security, Some(Security::C2s));
    assert_eq!(a.logging, Some(Logging::May), "boolean logging true = may (A2)");
    round_trip(&a, |a| a.to_form(Profile::Xep), SsnAnswer::parse);
    assert!(matches!(AnyForm::parse(&form).unwrap(), AnyForm::Ssn(_)));
}

#[test]
fn xep0116_example08_response_and_example09_three_message() {
    let (_, form) = form_of(&stanza(&example("xep-0116-ex08")));
    let r = Response::parse(&form).unwrap();
    assert_eq!(r.modp, ModpGroup::G5);
    assert_eq!(r.crypt_alg, CryptAlg::Aes256Ctr);
    assert_eq!(r.init_pubkey, Some(PubkeyMethod::Hash));
    assert_eq!(r.rekey_freq, 50);
    assert_eq!(r.sas_alg, Some(SasAlg::Sas28x5));
    assert_eq!(r.identity, None);
    let n = r.counter.to_be_bytes()[0];
    assert_eq!(r.counter, u128::from_be_bytes([n; 16]), "C_A decoded from its Base64 value");
    round_trip(&r, |r| r.to_form(Profile::Xep), Response::parse);
    round_trip(&r, |r| r.to_form(Profile::Gajim), Response::parse);
    // Example 9 elides the fields of Example 8 ("..."): rebuild it with identity and mac.
    let ex8 = example("xep-0116-ex08");
    let tail =
        "<field var='identity'><value>AQID</value></field><field var='mac'><value>BAUG</value></field></x>";
    let ex9 = ex8.replacen("</x>", tail, 1);
    let (_, form) = form_of(&stanza(&ex9));
    let r9 = Response::parse(&form).unwrap();
    assert_eq!(r9.identity, Some(vec![1, 2, 3]));
    assert_eq!(r9.mac, Some(vec![4, 5, 6]));
    round_trip(&r9, |r| r.to_form(Profile::Xep), Response::parse);
    let (_, printed) = form_of(&stanza(&example("xep-0116-ex09").replace("...", "")));
    assert!(Response::parse(&printed).is_err(), "the elided example is incomplete");
    // identity without mac is refused.
    let half = ex8.replacen("</x>", "<field var='identity'><value>AQID</value></field></x>", 1);
    let (_, f) = form_of(&stanza(&half));
    assert_eq!(Response::parse(&f), Err(Error::MissingField("mac")));
}

#[test]
fn xep0116_examples10_11_accept() {
    let (_, form) = form_of(&stanza(&example("xep-0116-ex10")));
    let a = Accept::parse(&form).unwrap();
    assert_eq!(a.e, None);
    assert!(a.rshashes.is_empty());
    assert!(!a.terminate);
    round_trip(&a, |a| a.to_form(Profile::Xep, true), Accept::parse);
    let (_, form) = form_of(&stanza(&example("xep-0116-ex11")));
    assert_eq!(form.field("dhkeys").unwrap().type_, Some(esession_forms::dataform::FieldType::Hidden));
    let a = Accept::parse(&form).unwrap();
    assert!(a.e.is_some());
    assert_eq!(a.rshashes.len(), 4);
    round_trip(&a, |a| a.to_form(Profile::Xep, true), Accept::parse);
    round_trip(&a, |a| a.to_form(Profile::Xep, false), Accept::parse);
    assert!(matches!(AnyForm::parse(&form).unwrap(), AnyForm::Accept(_)));
}

#[test]
fn xep0116_example12_bob_identity_in_init() {
    let (w, form) = form_of(&stanza(&example("xep-0116-ex12")));
    assert_eq!(w, Wrapper::Init);
    let b = BobIdentity::parse(&form).unwrap();
    assert_eq!(b.wrapper(), Wrapper::Init);
    round_trip(&b, |b| b.to_form(Profile::Xep), BobIdentity::parse);
    assert!(matches!(AnyForm::parse(&form).unwrap(), AnyForm::BobIdentity(_)));
    // Either wrapper is accepted on receipt (A8).
    let swapped = example("xep-0116-ex12")
        .replace(
            "<init xmlns='http://www.xmpp.org/extensions/xep-0116.html#ns-init'>",
            "<feature xmlns='http://jabber.org/protocol/feature-neg'>",
        )
        .replace("</init>", "</feature>");
    let (w, f) = form_of(&stanza(&swapped));
    assert_eq!(w, Wrapper::Feature);
    assert_eq!(BobIdentity::parse(&f).unwrap(), b);
}

#[test]
fn xep0155_examples_ssn_forms() {
    // Example 1 has a typo in the spec (a start tag not closed): fixed here.
    let ex1 = example("xep-0155-ex01").replace("var='presence'\n", "var='presence'>\n");
    let (_, form) = form_of(&stanza(&ex1));
    assert_eq!(form.type_, FormType::Form);
    assert_eq!(form.title.as_deref(), Some("Open chat with Romeo?"));
    assert!(Request::parse(&form).is_err(), "an SSN request without ESession options");
    let (_, form) = form_of(&stanza(&example("xep-0155-ex02")));
    let a = SsnAnswer::parse(&form).unwrap();
    assert_eq!((a.accept, a.security, a.logging), (true, Some(Security::C2s), Some(Logging::MustNot)));
    let (_, form) = form_of(&stanza(&example("xep-0155-ex03")));
    let a = SsnAnswer::parse(&form).unwrap();
    assert!(!a.accept);
    round_trip(&a, |a| a.to_form(Profile::Xep), SsnAnswer::parse);
    let (_, form) = form_of(&stanza(&example("xep-0155-ex07")));
    assert!(SsnAnswer::parse(&form).unwrap().accept);
    let (_, form) = form_of(&stanza(&example("xep-0155-ex14")));
    assert_eq!(Terminate::parse(&form).unwrap(), Terminate::Request);
    assert_eq!(Terminate::parse(&Terminate::Request.to_form(Profile::Xep)).unwrap(), Terminate::Request);
    let (_, form) = form_of(&stanza(&example("xep-0155-ex15")));
    assert_eq!(Terminate::parse(&form).unwrap(), Terminate::Ack);
    assert_eq!(Terminate::parse(&Terminate::Ack.to_form(Profile::Gajim)).unwrap(), Terminate::Ack);
    assert!(matches!(AnyForm::parse(&form).unwrap(), AnyForm::Terminate(Terminate::Ack)));
}

fn pubsub_form(xml: &str) -> Result<DataForm, Error> {
    let s = crate::stanza(xml);
    let x =
        s.children().flat_map(|p| p.children()).flat_map(|c| c.children()).find(|c| c.name() == "x").unwrap();
    DataForm::parse(x)
}

#[test]
fn xep0187_examples01_02_node_configuration() {
    // As printed, the configure forms put <option/>s in untyped fields: XEP-0004 forbids it
    // (A16), and the strict parser says so.
    for n in [1, 2] {
        let e = pubsub_form(&example(&format!("xep-0187-ex{n:02}")));
        assert!(matches!(e, Err(Error::UnexpectedOptions { .. })), "{e:?}");
    }
    // The A16 reading (type submit, values) parses.
    let fixed = example("xep-0187-ex01")
        .replace("type='form'", "type='submit'")
        .replace("<option><value>0</value></option>", "<value>0</value>")
        .replace("<option><value>never</value></option>", "<value>never</value>")
        .replace("<option><value>presence</value></option>", "<value>presence</value>");
    let f = pubsub_form(&fixed).unwrap();
    assert_eq!(f.field("pubsub#access_model").unwrap().values, vec!["presence"]);
}

#[test]
fn xep0187_example03_offline_options() {
    let s = stanza(&example("xep-0187-ex03"));
    let x = s
        .children()
        .flat_map(|p| p.children())
        .flat_map(|c| c.children())
        .flat_map(|i| i.children())
        .find(|c| c.name() == "x")
        .unwrap();
    let form = DataForm::parse(x).unwrap();
    let o = OfflineOptions::parse(&form).unwrap();
    assert_eq!(o.offers.logging, vec![Logging::May, Logging::MustNot], "otr false/true (A2)");
    assert_eq!(o.offers.sign_algs, vec![SignAlg::RsaSha256, SignAlg::DsaSha256], "rsa/dsa aliases (A5)");
    assert_eq!(o.expires, "2006-06-09T02:56:15Z");
    assert_eq!(o.dhkeys.len(), 3);
    assert_eq!(o.match_resource.as_deref(), Some("pda"));
    assert_eq!(o.signs.len(), 2);
    round_trip(&o, |o| o.to_form(Profile::Xep), OfflineOptions::parse);
    assert!(matches!(AnyForm::parse(&form).unwrap(), AnyForm::OfflineOptions(_)));
    let bad = example("xep-0187-ex03").replace("2006-06-09T02:56:15Z", "yesterday");
    let s = stanza(&bad);
    let x = s
        .children()
        .flat_map(|p| p.children())
        .flat_map(|c| c.children())
        .flat_map(|i| i.children())
        .find(|c| c.name() == "x")
        .unwrap();
    assert!(OfflineOptions::parse(&DataForm::parse(x).unwrap()).is_err());
}

#[test]
fn xep0187_examples04_to_08_pubsub_and_start() {
    for n in [4, 5, 6, 8] {
        let s = stanza(&example(&format!("xep-0187-ex{n:02}")).replace("...", ""));
        assert_eq!(s.name(), "iq", "example {n}");
        let ps = s.children().next().unwrap();
        assert_eq!(ps.ns(), "http://jabber.org/protocol/pubsub");
    }
    // Example 7: the offline start, a Response in <init/> with identity and mac; no
    // init_pubkey/resp_pubkey (A1); `otr` true = mustnot; `rsa` alias.
    let (w, form) = form_of(&stanza(&example("xep-0187-ex07")));
    assert_eq!(w, Wrapper::Init);
    let r = Response::parse(&form).unwrap();
    assert_eq!(r.logging, Logging::MustNot);
    assert_eq!(r.sign_alg, Some(SignAlg::RsaSha256));
    assert_eq!((r.init_pubkey.clone(), r.resp_pubkey.clone()), (None, None));
    assert!(r.identity.is_some() && r.mac.is_some());
    assert_eq!(r.wrapper(), Wrapper::Init);
    round_trip(&r, |r| r.to_form(Profile::Xep), Response::parse);
}
