//! Negative files: variants are replayed over the variant's own transcript, clock variants are
//! the named ones of README-xep.md, the base is found beside the negative file, and whatever
//! would change a variant's meaning unknown to the checker is refused.

use super::support::*;
use esession_vectors::check_files;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The offline fixture pair copied into `dir`, with the variants passed through `edit`.
fn offline_pair(dir: &Path, edit: impl FnOnce(&mut Vec<Value>)) -> PathBuf {
    std::fs::copy(fixture("xep-off_rsa_terminate.json"), dir.join("xep-off_rsa_terminate.json")).unwrap();
    let mut neg = read(&fixture("neg-off_rsa_terminate.json"));
    edit(neg["variants"].as_array_mut().unwrap());
    let p = dir.join("neg-off_rsa_terminate.json");
    std::fs::write(&p, serde_json::to_string(&neg).unwrap()).unwrap();
    p
}

fn only(variants: &mut Vec<Value>, id: &str) {
    variants.retain(|v| v["id"] == id);
    assert_eq!(variants.len(), 1);
}

#[test]
fn an_unknown_scenario_patch_key_is_refused() {
    let dir = temp_dir("patch-key");
    let p = offline_pair(&dir, |vs| {
        only(vs, "bob-expired");
        vs[0]["scenario_patch"] = json!({"bob.clock": "2026-01-02T08:00:00Z"});
    });
    let report = check_files(&[p]);
    assert_fails(&report, "neg-off_rsa_terminate bob-expired");
    assert!(report.to_string().contains("not a known clock variant"), "{report}");
}

#[test]
fn a_merge_patch_is_not_a_clock_variant() {
    let dir = temp_dir("patch-merge");
    let p = offline_pair(&dir, |vs| {
        only(vs, "bob-expired");
        vs[0]["scenario_patch"] = json!({"bob": {"now": "2026-01-02T08:00:00Z"}});
    });
    assert_fails(&check_files(&[p]), "neg-off_rsa_terminate bob-expired");
}

#[test]
fn clock_variants_change_the_clock() {
    // The expiry is 2026-01-02T08:00:00Z. Bob at 07:59:59 accepts the options: a variant that
    // expects options-expired there fails, so the clock did change (and the one at 08:00 is
    // the fixture's own, which passes).
    let dir = temp_dir("patch-effect");
    let p = offline_pair(&dir, |vs| {
        only(vs, "bob-expired");
        vs[0]["scenario_patch"] = json!({"bob.now": "2026-01-02T07:59:59Z"});
    });
    let report = check_files(&[p]);
    assert_fails(&report, "neg-off_rsa_terminate bob-expired");
    // Alice's clock: at the expiry she still accepts, a second later she does not.
    let p = offline_pair(&dir, |vs| {
        vs.retain(|v| v["id"] == "alice-expired");
        vs[0]["scenario_patch"] = json!({"clock.alice": "2026-01-02T08:00:00Z"});
    });
    assert_fails(&check_files(&[p]), "neg-off_rsa_terminate alice-expired");
}

#[test]
fn keys_that_change_a_variant_are_refused_when_unknown() {
    let dir = temp_dir("unknown-keys");
    let p = offline_pair(&dir, |vs| {
        vs.retain(|v| ["nonce", "d", "identity"].contains(&v["id"].as_str().unwrap()));
        vs[0]["expected"]["rejected_at_least_once"] = json!(true);
        vs[1]["tamper"] = json!({"kind": "bit-rot", "where": "d"});
        vs[2]["delivered_at_seq"] = json!(2);
    });
    let report = check_files(&[p]);
    assert_eq!(report.failed(), 3, "{report}");
    assert_eq!(report.passed(), 0, "{report}");
    let s = report.to_string();
    for what in ["unknown key", "tamper", "delivered_at_seq"] {
        assert!(s.contains(what), "{what}:\n{s}");
    }
}

#[test]
fn wrong_expectations_fail() {
    let dir = temp_dir("wrong");
    let mut n = 0;
    let p = offline_pair(&dir, |vs| {
        for v in vs.iter_mut() {
            match v["id"].as_str().unwrap() {
                // Another check than the one that fails.
                "nonce" => v["expected"]["check"] = "M_B".into(),
                // The wrong party.
                "signs-all" => {
                    v["expected"]["rejected_by"] = "alice".into();
                    v["expected"]["at_seq"] = 2.into();
                }
                // A refusal where there is none.
                "signs-one" => {
                    v["expected"] = json!({"rejected_by": "bob", "at_seq": 1, "check": "options-signature", "condition": "silent"})
                }
                // An error condition where offline refusals are silent.
                "replay" => v["expected"]["condition"] = "not-acceptable".into(),
                // An error sent where none is.
                "d" => v["expected"]["error_sent"] = true.into(),
                _ => continue,
            }
            n += 1;
        }
    });
    let report = check_files(&[p]);
    let fails: Vec<_> = report.lines().iter().filter(|l| l.is_fail()).collect();
    assert_eq!(fails.len(), n, "every wrong expectation is caught:\n{report}");
}

#[test]
fn a_missing_base_fails() {
    let dir = temp_dir("no-base");
    let neg = read(&fixture("neg-off_rsa_terminate.json"));
    let report = check_value(&dir, "neg.json", &neg);
    assert_eq!((report.failed(), report.passed(), report.skipped()), (1, 0, 0), "{report}");
    assert!(report.to_string().contains("base vector"), "{report}");
}

/// A negative file for the gajim vector: Alice's request with another `my_nonce` reaches Bob,
/// whose response (changed: it echoes that nonce) Alice refuses.
fn gajim_nonce_variant(dir: &Path, transcript_has_changed_response: bool, changed: &[u64]) -> PathBuf {
    let base = read(&gajim_vector());
    std::fs::write(dir.join("gajim-g4_none_modp5.json"), serde_json::to_string(&base).unwrap()).unwrap();
    let na = "cQ+PeP9gjL8="; // base64 of N_A 710f8f78ff608cbf
    let other = "ABEiM0RVZv8=";
    let s0 = base["negotiation_stanzas"][0]["xml"].as_str().unwrap().to_owned();
    let s1 = base["negotiation_stanzas"][1]["xml"].as_str().unwrap().to_owned();
    assert_eq!(s0.matches(na).count(), 1);
    assert_eq!(s1.matches(na).count(), 1);
    let response = if transcript_has_changed_response { s1.replace(na, other) } else { s1 };
    let neg = json!({
        "name": "neg-g4", "base": "g4_none_modp5", "kind": "negative",
        "variants": [{
            "id": "m1-my_nonce", "seq": 0, "tamper": "field my_nonce", "scenario_patch": null,
            "original_xml": s0, "delivered_at_seq": [s0.replace(na, other)],
            "expected": {"rejected_by": "alice", "at_seq": 1, "check": "nonce-echo",
                         "condition": "feature-not-implemented", "error_sent": true, "fields": ["nonce"]},
            "transcript": [
                {"seq": 0, "from": "alice", "to": "bob", "kind": "negotiation", "xml": s0},
                {"seq": 1, "from": "bob", "to": "alice", "kind": "negotiation", "xml": response}
            ],
            "stanzas_changed_from_base": changed
        }]
    });
    let p = dir.join("neg-g4.json");
    std::fs::write(&p, serde_json::to_string(&neg).unwrap()).unwrap();
    p
}

#[test]
fn changed_stanzas_come_from_the_variant_transcript() {
    let dir = temp_dir("changed");
    let report = check_files(&[gajim_nonce_variant(&dir, true, &[1])]);
    assert_clean(&report);
    assert_eq!(text(&report), ["ok neg-g4 m1-my_nonce"], "{report}");
    // Taken from the base, the response echoes the right nonce and Alice does not refuse it.
    let report = check_files(&[gajim_nonce_variant(&dir, false, &[])]);
    assert_fails(&report, "neg-g4 m1-my_nonce");
    // A changed stanza the transcript does not hold cannot be replayed.
    let report = check_files(&[gajim_nonce_variant(&dir, true, &[1, 2])]);
    assert_fails(&report, "neg-g4 m1-my_nonce");
}

#[test]
fn the_expected_fields_are_compared() {
    let dir = temp_dir("fields");
    let p = gajim_nonce_variant(&dir, true, &[1]);
    let mut neg = read(&p);
    neg["variants"][0]["expected"]["fields"] = json!(["my_nonce"]);
    let report = check_value(&dir, "neg-g4.json", &neg);
    assert_fails(&report, "neg-g4 m1-my_nonce");
}
