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
         <field type='hidden' var='my_nonce'><value>AAECAwQFBgc=</value></field>{extra}{dh}"
    )
}

#[test]
fn esession_fields_are_validated() {
    let sas = "<field type='list-single' var='sas_algs'><option><value>sas28x5</value></option></field>";
    let good = "<field type='hidden' var='dhhashes'><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</value><value>AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=</value></field>";
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
                .replace("var='my_nonce'><value>AAECAwQFBgc=</value>", "var='my_nonce'><value></value>"),
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
    assert!(Accept::parse(&accept("AAECAwQFBgc=")).is_ok());
    assert_eq!(Accept::parse(&accept("")), Err(empty.clone()));
    let ident = |nonce: &str| {
        with(&format!(
            "<field var='nonce'><value>{nonce}</value></field><field var='srshash'><value>AAAA</value></field>\
             <field var='identity'><value>AAAA</value></field><field var='mac'><value>AAAA</value></field>"
        ))
    };
    assert!(BobIdentity::parse(&ident("AAECAwQFBgc=")).is_ok());
    assert_eq!(BobIdentity::parse(&ident("")), Err(empty));
}

/// Hostile peers: a one-octet ESession ID (`AA==`) or one shorter than
/// [`esession_forms::esession::MIN_NONCE_LEN`] is refused wherever a nonce is read (`my_nonce`
/// of a request and of a response, the echoed `nonce`), naming the field; so is a request whose
/// `dhhashes` are empty or not SHA-256 outputs (a responder would otherwise answer it and keep
/// state).
#[test]
fn short_nonces_and_empty_commitments_are_refused() {
    use esession_forms::esession::{HE_LEN, MIN_NONCE_LEN};
    assert_eq!(MIN_NONCE_LEN, 8);
    let sas = "<field type='list-single' var='sas_algs'><option><value>sas28x5</value></option></field>";
    let he = esession_crypto::mpi::b64_encode(&[7; HE_LEN]);
    let good = format!("<field type='hidden' var='dhhashes'><value>{he}</value><value>{he}</value></field>");
    let nonce = |n: &str| {
        request(sas, &good).replace(
            "var='my_nonce'><value>AAECAwQFBgc=</value>",
            &format!("var='my_nonce'><value>{n}</value>"),
        )
    };
    assert!(Request::parse(&form(&nonce("AAECAwQFBgc=")).unwrap()).is_ok(), "8 octets");
    for short in ["AA==", "AAECAwQFBg=="] {
        let e = Request::parse(&form(&nonce(short)).unwrap()).unwrap_err();
        assert_eq!(e, Error::BadValue { var: "my_nonce".into(), reason: "nonce shorter than 8 octets" });
        assert_eq!(e.field(), Some("my_nonce"));
    }
    // Five empty commitments (five groups), one short one.
    let five_groups = request(sas, "").replace(
        "<option><value>5</value></option><option><value>14</value></option>",
        "<option><value>5</value></option><option><value>14</value></option><option><value>15</value></option>\
         <option><value>16</value></option><option><value>17</value></option>",
    );
    let empty =
        format!("{five_groups}<field type='hidden' var='dhhashes'>{}</field>", "<value></value>".repeat(5));
    let e = Request::parse(&form(&empty).unwrap()).unwrap_err();
    assert_eq!(e.field(), Some("dhhashes"), "{e:?}");
    let short = esession_crypto::mpi::b64_encode(&[7; HE_LEN - 1]);
    let e = Request::parse(
        &form(&request(
            sas,
            &format!("<field type='hidden' var='dhhashes'><value>{he}</value><value>{short}</value></field>"),
        ))
        .unwrap(),
    )
    .unwrap_err();
    assert_eq!(e, Error::BadValue { var: "dhhashes".into(), reason: "a commitment is not 32 octets" });
    // The response's my_nonce (N_B) and its echo of N_A.
    let resp = |my_nonce: &str, echo: &str| {
        let x = format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:ssn</value></field>\
             <field var='accept'><value>1</value></field><field var='logging'><value>may</value></field>\
             <field var='disclosure'><value>never</value></field><field var='security'><value>e2e</value></field>\
             <field var='modp'><value>5</value></field><field var='crypt_algs'><value>aes128-ctr</value></field>\
             <field var='hash_algs'><value>sha256</value></field><field var='compress'><value>none</value></field>\
             <field var='stanzas'><value>message</value></field><field var='init_pubkey'><value>none</value></field>\
             <field var='resp_pubkey'><value>none</value></field><field var='ver'><value>1.0</value></field>\
             <field var='rekey_freq'><value>1</value></field><field var='my_nonce'><value>{my_nonce}</value></field>\
             <field var='dhkeys'><value>Ag==</value></field><field var='nonce'><value>{echo}</value></field>\
             <field var='counter'><value>AQ==</value></field></x>"
        );
        Response::parse(&DataForm::parse(&parse(&x).unwrap()).unwrap())
    };
    assert!(resp("AAECAwQFBgc=", "AAECAwQFBgc=").is_ok());
    assert_eq!(resp("AA==", "AAECAwQFBgc=").unwrap_err().field(), Some("my_nonce"));
    assert_eq!(resp("AAECAwQFBgc=", "AA==").unwrap_err().field(), Some("nonce"));
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

/// X155-N11-01: both lexical forms of xs:boolean, in a form as an ESession reads it: `accept`
/// given as `1`, `true`, `0` or `false`; anything else refused.
#[test]
fn booleans_in_both_lexical_forms() {
    use esession_forms::dataform::parse_bool;
    assert_eq!([parse_bool("1"), parse_bool("true")], [Some(true), Some(true)]);
    assert_eq!([parse_bool("0"), parse_bool("false")], [Some(false), Some(false)]);
    for bad in ["", "TRUE", "yes", "2", " 1"] {
        assert_eq!(parse_bool(bad), None, "{bad:?}");
    }
}
