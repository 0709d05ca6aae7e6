//! Strict parsing: each violation is a typed error, hostile sizes are refused.

use esession_forms::Error;
use esession_forms::dataform::{DataForm, MAX_FIELDS, MAX_VALUE_LEN};
use esession_forms::esession::{Request, Response};
use esession_forms::xml::parse;

/// Parsed by minidom alone (as tokio-xmpp hands stanzas over), so that the form's own limits
/// are what is tested, not those of `xml::parse`.
fn form(body: &str) -> Result<DataForm, Error> {
    let x: minidom::Element = format!("<x xmlns='jabber:x:data' type='form'>{body}</x>").parse().unwrap();
    DataForm::parse(&x)
}

#[test]
fn xep0004_rules() {
    assert_eq!(form("<field var='a' type='spinner'/>"), Err(Error::UnknownFieldType("spinner".into())));
    assert_eq!(form("<field type='text-single'/>"), Err(Error::MissingVar));
    assert!(form("<field type='fixed'><value>note</value></field>").is_ok(), "fixed fields need no var");
    assert_eq!(form("<field var='a'/><field var='a'/>"), Err(Error::DuplicateVar("a".into())));
    assert_eq!(
        form("<field var='a' type='list-single'><value>1</value><value>2</value></field>"),
        Err(Error::ValueCount { var: "a".into() })
    );
    assert!(form("<field var='a' type='hidden'><value>1</value><value>2</value></field>").is_ok());
    assert_eq!(
        form("<field var='a' type='text-single'><option><value>1</value></option></field>"),
        Err(Error::UnexpectedOptions { var: "a".into() })
    );
    assert_eq!(
        form("<field var='a' type='list-single'><option><value>1</value><value>2</value></option></field>"),
        Err(Error::ValueCount { var: "a".into() })
    );
    assert_eq!(
        form("<field var='a' type='list-single'><option></option></field>"),
        Err(Error::ValueCount { var: "a".into() })
    );
    assert!(matches!(
        form("<field var='a' type='boolean'><value>yes</value></field>"),
        Err(Error::BadValue { .. })
    ));
    assert!(matches!(form("<field var='a'>text</field>"), Err(Error::UnexpectedContent(_))));
    assert!(matches!(
        form("<field var='a'><value><b xmlns='jabber:x:data'/></value></field>"),
        Err(Error::UnexpectedContent(_))
    ));
    assert!(matches!(
        form("<field var='a'><required>x</required></field>"),
        Err(Error::UnexpectedContent(_))
    ));
    assert!(
        form("<field var='a'><extra xmlns='urn:other'/></field>").is_ok(),
        "foreign extensions are ignored"
    );
    assert!(DataForm::parse(&parse("<x xmlns='jabber:x:data'/>").unwrap()).is_err(), "type is required");
    assert!(DataForm::parse(&parse("<x xmlns='jabber:x:data' type='bogus'/>").unwrap()).is_err());
    assert!(matches!(
        DataForm::parse(&parse("<x xmlns='urn:other' type='form'/>").unwrap()),
        Err(Error::UnexpectedElement { .. })
    ));
}

#[test]
fn hostile_sizes_are_refused() {
    let many: String = (0..10_000).map(|i| format!("<field var='f{i}'/>")).collect();
    assert_eq!(form(&many), Err(Error::TooLarge("fields")));
    let at_limit: String = (0..MAX_FIELDS).map(|i| format!("<field var='f{i}'/>")).collect();
    assert_eq!(form(&at_limit).unwrap().fields.len(), MAX_FIELDS);
    let big = "A".repeat(10 * 1024 * 1024);
    assert_eq!(form(&format!("<field var='a'><value>{big}</value></field>")), Err(Error::TooLarge("value")));
    let ok = "A".repeat(MAX_VALUE_LEN);
    assert!(form(&format!("<field var='a'><value>{ok}</value></field>")).is_ok());
    let values: String = (0..1000).map(|_| "<value>x</value>").collect();
    assert_eq!(
        form(&format!("<field var='a' type='hidden'>{values}</field>")),
        Err(Error::TooLarge("values"))
    );
}

fn request(extra: &str, dh: &str) -> String {
    format!(
        "<field type='hidden' var='FORM_TYPE'><value>urn:xmpp:ssn</value></field>\
         <field type='boolean' var='accept'><value>1</value></field>\
         <field type='list-single' var='logging'><option><value>may</value></option></field>\
         <field type='list-single' var='disclosure'><option><value>never</value></option></field>\
         <field type='list-single' var='security'><option><value>e2e</value></option></field>\
         <field type='list-single' var='modp'><option><value>5</value></option><option><value>14</value></option></field>\
         <field type='list-single' var='crypt_algs'><option><value>aes128-ctr</value></option></field>\
         <field type='list-single' var='hash_algs'><option><value>sha256</value></option></field>\
         <field type='list-single' var='compress'><option><value>none</value></option></field>\
         <field type='list-multi' var='stanzas'><option><value>message</value></option></field>\
         <field type='list-single' var='init_pubkey'><option><value>none</value></option></field>\
         <field type='list-single' var='resp_pubkey'><option><value>none</value></option></field>\
         <field type='list-single' var='ver'><option><value>1.0</value></option></field>\
         <field type='text-single' var='rekey_freq'><value>1</value></field>\
         <field type='hidden' var='my_nonce'><value>AAAA</value></field>{extra}{dh}"
    )
}

#[test]
fn esession_fields_are_validated() {
    let sas = "<field type='list-single' var='sas_algs'><option><value>sas28x5</value></option></field>";
    let good = "<field type='hidden' var='dhhashes'><value>AAAA</value><value>AQID</value></field>";
    assert!(Request::parse(&form(&request(sas, good)).unwrap()).is_ok());
    let cases = [
        (request(sas, "<field type='hidden' var='dhhashes'><value>AAAA</value></field>"), "one per group"),
        (
            request(
                sas,
                "<field type='hidden' var='dhhashes'><value>AA!A</value><value>AAAA</value></field>",
            ),
            "base64",
        ),
        (
            request(sas, "<field type='hidden' var='dhhashes'><value>AAA</value><value>AAAA</value></field>"),
            "padding",
        ),
        (request("", good), "sas_algs missing in 4-message"),
        (request(sas, ""), "no dh values"),
        (
            request(
                sas,
                &format!(
                    "{good}<field type='hidden' var='dhkeys'><value>AAAA</value><value>AAAA</value></field>"
                ),
            ),
            "both",
        ),
        (request(sas, good).replace("<value>urn:xmpp:ssn</value>", "<value>urn:other</value>"), "FORM_TYPE"),
        (
            request(sas, good).replace("var='rekey_freq'><value>1<", "var='rekey_freq'><value>0<"),
            "rekey_freq 0",
        ),
        (
            request(sas, good).replace("var='rekey_freq'><value>1<", "var='rekey_freq'><value>4294967296<"),
            "rekey_freq 2^32",
        ),
        (
            request(sas, good).replace("var='rekey_freq'><value>1<", "var='rekey_freq'><value>+1<"),
            "rekey_freq sign",
        ),
        (request(sas, good).replace("<option><value>aes128-ctr</value></option>", ""), "empty offer"),
        (
            request(sas, good)
                .replace("var='my_nonce'><value>AAAA</value>", "var='my_nonce'><value></value>"),
            "empty nonce",
        ),
    ];
    for (body, why) in cases {
        assert!(Request::parse(&form(&body).unwrap()).is_err(), "{why}");
    }
    // A response with a counter longer than 128 bits.
    let resp = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:ssn</value></field>\
        <field var='counter'><value>AQIDBAUGBwgJCgsMDQ4PEBE=</value></field></x>";
    assert!(matches!(
        Response::parse(&DataForm::parse(&parse(resp).unwrap()).unwrap()),
        Err(Error::BadValue { .. })
    ));
}

/// Issue 16.8: an empty nonce identifies nothing; refused in every form that carries one.
#[test]
fn empty_nonces_are_refused() {
    use esession_forms::esession::{Accept, BobIdentity};
    let with = |fields: &str| {
        let x = format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:ssn</value></field>{fields}</x>"
        );
        DataForm::parse(&parse(&x).unwrap()).unwrap()
    };
    let empty = Error::BadValue { var: "nonce".into(), reason: "empty nonce" };
    let accept = |nonce: &str| {
        with(&format!(
            "<field var='accept'><value>1</value></field><field var='nonce'><value>{nonce}</value></field>\
         <field var='identity'><value>AAAA</value></field><field var='mac'><value>AAAA</value></field>"
        ))
    };
    assert!(Accept::parse(&accept("AAAA")).is_ok());
    assert_eq!(Accept::parse(&accept("")), Err(empty.clone()));
    let ident = |nonce: &str| {
        with(&format!(
            "<field var='nonce'><value>{nonce}</value></field><field var='srshash'><value>AAAA</value></field>\
             <field var='identity'><value>AAAA</value></field><field var='mac'><value>AAAA</value></field>"
        ))
    };
    assert!(BobIdentity::parse(&ident("AAAA")).is_ok());
    assert_eq!(BobIdentity::parse(&ident("")), Err(empty));
}

/// Regression (fuzz/regressions/esession_form/crash-3d854cd7...): an accept with `rshashes` but
/// no `dhkeys` lost its rshashes when serialized.
#[test]
fn accept_with_rshashes_and_no_dhkeys_round_trips() {
    use esession_crypto::Profile;
    use esession_forms::esession::Accept;
    let x = parse(
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='text-single'><value>urn:xmpp:ssn</value></field>\
         <field var='accept'><value>1</value></field><field var='nonce'><value>tAxFIg5uWQo=</value></field>\
         <field var='rshashes'><value>NIacRngMMAaZnFDRAgVNxAmKL8nYnp0XKJ66wp4iGG8=</value></field>\
         <field var='identity'><value>AQID</value></field><field var='mac'><value>BAUG</value></field></x>",
    )
    .unwrap();
    let a = Accept::parse(&DataForm::parse(&x).unwrap()).unwrap();
    assert_eq!(a.e, None);
    assert_eq!(a.rshashes.len(), 1);
    for p in [Profile::Xep, Profile::Gajim] {
        assert_eq!(Accept::parse(&a.to_form(p, true)).unwrap(), a);
    }
}
