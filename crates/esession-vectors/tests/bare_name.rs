//! A negative file given by its bare file name finds its base in its own directory (issue
//! 17.4): checked from that directory. A separate test binary, with one test, because it
//! changes the process's working directory.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn a_negative_file_named_without_a_directory_finds_its_base() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = std::env::temp_dir().join(format!("esession-vectors-{}-bare", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A file name the base's name does not suggest: only the directory holds the answer.
    std::fs::copy(fixtures.join("xep-off_rsa_terminate.json"), dir.join("recorded-base.json")).unwrap();
    let mut neg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("neg-off_rsa_terminate.json")).unwrap())
            .unwrap();
    std::fs::write(dir.join("neg.json"), serde_json::to_string(&neg).unwrap()).unwrap();
    // A wrong expectation in another file, to see the variants are really checked.
    neg["variants"][0]["expected"]["check"] = "M_B".into();
    std::fs::write(dir.join("wrong.json"), serde_json::to_string(&neg).unwrap()).unwrap();
    std::env::set_current_dir(&dir).unwrap();

    let report = esession_vectors::check_files(&["neg.json", "./neg.json"]);
    assert!(report.is_success(), "{report}");
    assert_eq!(report.skipped(), 0, "{report}");
    assert_eq!(report.passed(), 2 * neg["variants"].as_array().unwrap().len(), "{report}");

    let report = esession_vectors::check_files(&["wrong.json"]);
    std::env::set_current_dir(std::env::temp_dir()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(report.failed(), 1, "{report}");
    let fail = report.lines().iter().find(|l| l.is_fail()).unwrap();
    assert_eq!(fail.name, "neg-off_rsa_terminate nonce", "{report}");
    assert!(!fail.to_string().contains("not found"), "{report}");
}
