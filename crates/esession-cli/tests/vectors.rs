//! `esession vectors check` end to end, as a user runs it: the lines and the summary of the
//! `esession-vectors` library on stdout, exit status 0, or 1 on any failure. The thorough tests
//! of the checker are the library's (`crates/esession-vectors/tests`); its fixtures are used
//! here.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../esession-vectors/tests/fixtures")
}

fn check(dir: &Path, files: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_esession"))
        .current_dir(dir)
        .args(["vectors", "check"])
        .args(files)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn vectors_pass_with_one_line_per_check_and_the_summary() {
    let gajim = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../esession-crypto/tests/vectors/gajim-g4_none_modp5.json");
    let dir = fixtures();
    // The negative file by its bare name: its base is found beside it.
    let (code, out) =
        check(&dir, &[gajim.to_str().unwrap(), "xep-off_rsa_terminate.json", "neg-off_rsa_terminate.json"]);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "ok g4_none_modp5 step3 bob own stanza 8 reproduced",
        "ok off_rsa_terminate step3 bob own stanza 2 reproduced",
        "ok neg-off_rsa_terminate bob-expired",
        "ok neg-off_rsa_terminate signs-one accepted by both",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    let passed = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(out.lines().last(), Some(format!("{passed} passed, 0 failed").as_str()), "{out}");
    assert!(!out.contains("skip"), "{out}");
}

#[test]
fn a_failure_exits_1() {
    let tmp = std::env::temp_dir().join(format!("esession-cli-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(fixtures().join("xep-off_rsa_terminate.json"), tmp.join("base.json")).unwrap();
    let mut neg: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("neg-off_rsa_terminate.json")).unwrap(),
    )
    .unwrap();
    // Another check than the one that fails.
    neg["variants"][0]["expected"]["check"] = "M_B".into();
    std::fs::write(tmp.join("neg.json"), serde_json::to_string(&neg).unwrap()).unwrap();
    let (code, out) = check(&tmp, &["neg.json"]);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("FAIL ")).count(), 1, "{out}");
    assert!(out.lines().last().is_some_and(|l| l.ends_with("passed, 1 failed")), "{out}");
}
