//! Issue 17.4: nothing the file holds is passed over without a line. A transcript entry from
//! or to a stranger, of an unknown kind, an XEP-0200 entry naming a stanza that is not
//! recorded, `negotiation_stanzas` that disagree with the transcript, or inputs that do not
//! parse are FAIL lines; before, the replay dropped the stanza and the file passed.

use super::support::*;
use esession_vectors::Report;
use serde_json::{Value, json};

/// The repository's Gajim vector with a `transcript` built from its negotiation stanzas and
/// XEP-0200 wires (README-xep.md's layout): each stanza gets its `seq`, each entry the `seq`
/// of its wire.
fn with_transcript() -> Value {
    let mut v = read(&gajim_vector());
    let mut transcript = Vec::new();
    let other = |from: &str| if from == "alice" { "bob" } else { "alice" };
    for (i, s) in v["negotiation_stanzas"].as_array_mut().unwrap().iter_mut().enumerate() {
        s["seq"] = json!(i);
        let from = s["from"].as_str().unwrap().to_owned();
        transcript.push(
            json!({"seq": i, "from": from, "to": other(&from), "kind": "negotiation", "xml": s["xml"]}),
        );
    }
    for e in v["xep0200"].as_array_mut().unwrap() {
        let seq = transcript.len();
        e["seq"] = json!(seq);
        let from = e["from"].as_str().unwrap().to_owned();
        transcript
            .push(json!({"seq": seq, "from": from, "to": other(&from), "kind": "xep0200", "xml": e["wire"]}));
    }
    v["transcript"] = Value::Array(transcript);
    v
}

fn last_seq(v: &Value) -> usize {
    v["transcript"].as_array().unwrap().len() - 1
}

fn check(test: &str, v: &Value) -> Report {
    check_value(&temp_dir(test), "v.json", v)
}

#[test]
fn the_gajim_vector_with_a_transcript_passes() {
    // The base of the variants below: every stanza replayed, nothing skipped.
    let v = with_transcript();
    let report = check("transcript-base", &v);
    assert_clean(&report);
    assert_eq!(report.skipped(), 0, "{report}");
    let lines = text(&report);
    let last = last_seq(&v);
    for l in [
        "ok g4_none_modp5 structure transcript".to_owned(),
        "ok g4_none_modp5 structure negotiation_stanzas agree with the transcript".to_owned(),
        "ok g4_none_modp5 structure XEP-0200 entries match their stanzas".to_owned(),
        format!("ok g4_none_modp5 step3 bob own stanza {last} reproduced"),
    ] {
        assert!(lines.contains(&l), "missing {l:?}:\n{report}");
    }
}

#[test]
fn a_transcript_stanza_from_a_stranger_fails() {
    // u_from_carol: the last stanza "from carol" was silently left out of the replay.
    let mut v = with_transcript();
    let last = last_seq(&v);
    v["transcript"][last]["from"] = json!("carol");
    let report = check("from-carol", &v);
    assert_fails(&report, "structure transcript");
    assert!(report.to_string().contains(r#"from "carol" is not alice or bob"#), "{report}");
    // Its entry now names a stanza the replay does not have.
    assert_fails(&report, "structure XEP-0200 entries match their stanzas");
}

#[test]
fn a_transcript_stanza_to_a_stranger_or_from_the_server_fails() {
    let mut v = with_transcript();
    v["transcript"][0]["to"] = json!("carol");
    assert_fails(&check("to-carol", &v), "structure transcript");
    // The server sends and receives PEP IQs only.
    let mut v = with_transcript();
    v["transcript"][1]["from"] = json!("server");
    assert_fails(&check("from-server", &v), "structure transcript");
    // A stanza to its own sender.
    let mut v = with_transcript();
    v["transcript"][1]["to"] = v["transcript"][1]["from"].clone();
    assert_fails(&check("to-self", &v), "structure transcript");
}

#[test]
fn an_entry_naming_a_stanza_not_in_the_transcript_fails() {
    // u_drop_last: the last stanza deleted while its XEP-0200 entry still names it.
    let mut v = with_transcript();
    v["transcript"].as_array_mut().unwrap().pop();
    let report = check("drop-last", &v);
    assert_fails(&report, "structure XEP-0200 entries match their stanzas");
    assert!(report.to_string().contains("is not in the transcript"), "{report}");
}

#[test]
fn an_entry_whose_sender_or_wire_differs_from_its_stanza_fails() {
    let mut v = with_transcript();
    v["xep0200"][0]["from"] = json!(if v["xep0200"][0]["from"] == "alice" { "bob" } else { "alice" });
    assert_fails(&check("entry-from", &v), "structure XEP-0200 entries match their stanzas");
    let mut v = with_transcript();
    v["xep0200"][0]["seq"] = json!(0);
    assert_fails(&check("entry-kind", &v), "structure XEP-0200 entries match their stanzas");
    let mut v = with_transcript();
    v["xep0200"][0]["wire"] = v["xep0200"][1]["wire"].clone();
    assert_fails(&check("entry-wire", &v), "structure XEP-0200 entries match their stanzas");
}

#[test]
fn an_unknown_transcript_kind_is_refused() {
    // u_kind_weird: "bob own stanza N reproduced" silently disappeared.
    let mut v = with_transcript();
    let last = last_seq(&v);
    v["transcript"][last]["kind"] = json!("weird");
    let report = check("kind-weird", &v);
    assert_fails(&report, "structure transcript");
    assert!(report.to_string().contains(r#"unknown kind "weird": refused"#), "{report}");
}

#[test]
fn negotiation_stanzas_that_disagree_with_the_transcript_fail() {
    // x4_flip_negstanzas_only: a byte changed in negotiation_stanzas only was ignored.
    let mut v = with_transcript();
    let xml = v["negotiation_stanzas"][3]["xml"].as_str().unwrap().to_owned();
    let at = xml.find("<value>").unwrap() + "<value>".len();
    let mut changed = xml.clone();
    changed.replace_range(at..=at, if &xml[at..=at] == "A" { "B" } else { "A" });
    v["negotiation_stanzas"][3]["xml"] = json!(changed);
    let report = check("negstanzas-flip", &v);
    assert_fails(&report, "structure negotiation_stanzas agree with the transcript");
    // One stanza fewer, or another sender.
    let mut v = with_transcript();
    v["negotiation_stanzas"].as_array_mut().unwrap().pop();
    assert_fails(&check("negstanzas-short", &v), "structure negotiation_stanzas agree with the transcript");
    let mut v = with_transcript();
    v["negotiation_stanzas"][1]["from"] = json!("alice");
    assert_fails(&check("negstanzas-from", &v), "structure negotiation_stanzas agree with the transcript");
}

#[test]
fn gajim_layout_stanzas_of_a_stranger_or_without_wire_fail() {
    // Without a transcript the recorded stanzas are negotiation_stanzas and the wires.
    let mut v = read(&gajim_vector());
    v["negotiation_stanzas"][3]["from"] = json!("carol");
    assert_fails(&check("gajim-carol", &v), "structure negotiation_stanzas");
    let mut v = read(&gajim_vector());
    v["xep0200"][4].as_object_mut().unwrap().remove("wire");
    assert_fails(&check("gajim-nowire", &v), "structure XEP-0200 entries match their stanzas");
    let mut v = read(&gajim_vector());
    v["xep0200"][4]["from"] = json!("carol");
    assert_fails(&check("gajim-entry-carol", &v), "structure XEP-0200 entries match their stanzas");
}

#[test]
fn inputs_that_do_not_parse_fail() {
    // A trusted key, an identity key, a retained secret or a random value that does not parse
    // was dropped, and the replay went on without it.
    let base = read(&fixture("xep-off_rsa_terminate.json"));
    let mut v = base.clone();
    v["inputs"]["bob"]["config"]["trusted"] = json!([{"n": "zz", "e": "10001"}]);
    assert_fails(&check("trusted", &v), "structure inputs");
    let mut v = base.clone();
    v["inputs"]["alice"]["config"]["keys"]["rsa"] = json!("not a key");
    assert_fails(&check("keys", &v), "structure inputs");
    let mut v = base.clone();
    v["inputs"]["alice"]["config"]["retained"] = json!(["xyz"]);
    assert_fails(&check("retained", &v), "structure inputs");
    let mut v = base.clone();
    v["inputs"]["bob"]["random"]["nonce"] = json!(["nothex"]);
    assert_fails(&check("random", &v), "structure inputs");
    let mut v = base;
    v["offline"]["replay_keys"] = json!(["d"]);
    assert_fails(&check("replay-keys", &v), "structure inputs");
}

#[test]
fn an_offline_transcript_from_a_stranger_fails() {
    let mut v = read(&fixture("xep-off_rsa_terminate.json"));
    v["transcript"][3]["from"] = json!("carol");
    assert_fails(&check("offline-carol", &v), "structure transcript");
}

#[test]
fn a_negative_variant_transcript_of_an_unknown_kind_is_refused() {
    let dir = temp_dir("neg-kind");
    std::fs::copy(fixture("xep-off_rsa_terminate.json"), dir.join("xep-off_rsa_terminate.json")).unwrap();
    let mut neg = read(&fixture("neg-off_rsa_terminate.json"));
    let variants = neg["variants"].as_array_mut().unwrap();
    variants.retain(|v| v["id"] == "nonce");
    variants[0]["transcript"][1]["kind"] = json!("weird");
    let p = dir.join("neg-off_rsa_terminate.json");
    std::fs::write(&p, serde_json::to_string(&neg).unwrap()).unwrap();
    let report = esession_vectors::check_files(&[p]);
    assert_fails(&report, "neg-off_rsa_terminate nonce");
    assert!(report.to_string().contains(r#"unknown kind "weird""#), "{report}");
}
