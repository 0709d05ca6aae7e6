//! Step 2: parse the recorded stanzas' forms and normalize them under the file's profile. Each
//! party's first form must equal formA/formB and its second formA2/formB2 (`identity` and `mac`
//! left out); the XEP-0187 options' signed content is the normalized options form without
//! `signs`.

use crate::format::{Vector, Who, hex, parse_xml};
use crate::report::Report;
use esession_forms::dataform::{DataForm, NS as DATAFORM_NS};
use esession_forms::esession::{AnyForm, OfflineOptions, Wrapper};
use esession_forms::normalize::form_content;
use minidom::Element;
use serde_json::Value;

/// The ESession data form of a stanza: inside `<feature/>`/`<init/>`, or inside a PEP publish
/// or items result.
pub(crate) fn find_form(stanza: &Element) -> Option<&Element> {
    if let Some(w) = Wrapper::find(stanza) {
        return Wrapper::unwrap(w).ok().map(|(_, x)| x);
    }
    esession_offline::pep::options_in(stanza).filter(|x| x.is("x", DATAFORM_NS))
}

/// Step 2 on a positive vector.
pub(crate) fn check(v: &Vector, r: &mut Report) {
    let entries: Vec<(Who, &str)> = match v.v.get("transcript").and_then(Value::as_array) {
        Some(t) => t
            .iter()
            .filter(|e| {
                matches!(
                    e.get("kind").and_then(Value::as_str),
                    Some("negotiation" | "offline-start" | "pep-publish")
                )
            })
            .filter_map(|e| Some((Who::parse(e.get("from")?.as_str()?)?, e.get("xml")?.as_str()?)))
            .collect(),
        None => {
            v.v.get("negotiation_stanzas")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| Some((Who::parse(e.get("from")?.as_str()?)?, e.get("xml")?.as_str()?)))
                .collect()
        }
    };
    if entries.is_empty() {
        return r.skip(&v.n("step2 forms"), "the file records no negotiation stanza");
    }
    let mut seen = [0usize; 2];
    for (i, (from, xml)) in entries.iter().enumerate() {
        let name = v.n(&format!("stanza[{i}] from {}", from.as_str()));
        let stanza = match parse_xml(xml) {
            Ok(s) => s,
            Err(e) => {
                r.fail(&name, &format!("not XML: {e}"));
                continue;
            }
        };
        let Some(x) = find_form(&stanza) else {
            r.fail(&format!("{name} form"), "no ESession form in the stanza");
            continue;
        };
        match DataForm::parse(x).and_then(|f| AnyForm::parse(&f)) {
            Ok(_) => r.ok(&format!("{name} parses")),
            Err(e) => r.fail(&format!("{name} parses"), &e.to_string()),
        }
        let side = match from {
            Who::Alice => 0,
            Who::Bob => 1,
        };
        let key = match (from, seen[side]) {
            (Who::Alice, 0) => "formA",
            (Who::Alice, 1) => "formA2",
            (Who::Bob, 0) => "formB",
            (Who::Bob, 1) => "formB2",
            _ => continue,
        };
        seen[side] += 1;
        if let Some(expected) = v.value_hex(key) {
            let got = form_content(v.profile, x, &["identity", "mac"]);
            r.bytes(&v.n(key), &expected, got.map_err(|e| e.to_string()));
        }
    }
    offline_content(v, r);
}

/// The XEP-0187 options: the signed content is the normalized options form without `signs`.
fn offline_content(v: &Vector, r: &mut Report) {
    let Some(off) = v.v.get("offline").filter(|o| o.is_object()) else { return };
    let (Some(form), Some(expected)) =
        (off.get("options_form").and_then(Value::as_str), hex(off.get("signed_content")))
    else {
        return;
    };
    let got = esession_forms::xml::parse(form).and_then(|x| {
        DataForm::parse(&x).and_then(|f| OfflineOptions::parse(&f))?;
        form_content(v.profile, &x, &["signs"])
    });
    r.bytes(&v.n("offline.signed_content"), &expected, got.map_err(|e| e.to_string()));
}
