//! `esession vectors check` as a user runs it: an XEP-0187 vector and hand-written negative
//! variants of it must pass, and the same variants with wrong expectations must fail.
//!
//! The fixtures are regression data: `xep-off_rsa_terminate.json` is a copy of the independent
//! oracle's vector; `neg-off_rsa_terminate.json` was written for this test (see its
//! `description`), so it proves the checker's plumbing, not the protocol's correctness.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn check(files: &[PathBuf]) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_esession")).args(["vectors", "check"]).args(files).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn offline_vector_and_its_variants_pass() {
    let dir = fixtures();
    let (ok, out) = check(&[dir.join("xep-off_rsa_terminate.json"), dir.join("neg-off_rsa_terminate.json")]);
    assert!(ok, "{out}");
    for line in [
        "ok off_rsa_terminate step3 bob own stanza 2 reproduced",
        "ok off_rsa_terminate step3 alice stanza 2 body",
        "ok off_rsa_terminate step3 alice replay store holds d and N_B",
        "ok neg-off_rsa_terminate replay",
        "ok neg-off_rsa_terminate bob-expired",
        "ok neg-off_rsa_terminate alice-expired",
        "ok neg-off_rsa_terminate signs-one accepted by bob",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(!out.contains("skip"), "{out}");
}

#[test]
fn wrong_expectations_fail() {
    let dir = fixtures();
    let tmp = std::env::temp_dir().join(format!("esession-cli-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(dir.join("xep-off_rsa_terminate.json"), tmp.join("base.json")).unwrap();
    let mut neg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("neg-off_rsa_terminate.json")).unwrap())
            .unwrap();
    let variants = neg["variants"].as_array_mut().unwrap();
    let mut wrong = Vec::new();
    for v in variants.iter() {
        let mut v = v.clone();
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
                v["expected"] = serde_json::json!({"rejected_by": "bob", "at_seq": 1,
                    "check": "options-signature", "condition": "silent"})
            }
            // A clock patch that changes nothing.
            "bob-expired" => {
                v["scenario_patch"] = serde_json::json!({"bob": {"now": "2026-01-01T12:00:00Z"}})
            }
            // An error condition where offline refusals are silent.
            "replay" => v["expected"]["condition"] = "not-acceptable".into(),
            _ => continue,
        }
        wrong.push(v);
    }
    let n = wrong.len();
    neg["variants"] = Value::Array(wrong);
    std::fs::write(tmp.join("neg.json"), serde_json::to_string(&neg).unwrap()).unwrap();
    let (ok, out) = check(&[tmp.join("neg.json")]);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(!ok, "{out}");
    let fails = out.lines().filter(|l| l.starts_with("FAIL")).count();
    assert_eq!(fails, n, "every wrong expectation is caught:\n{out}");
}
