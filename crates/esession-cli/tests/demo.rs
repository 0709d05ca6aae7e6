//! `esession demo`, the command README.md gives as the main job, runs to its end.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn demo_runs_every_step() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_esession")).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let sas_line = text.lines().find(|l| l.contains("SAS Alice")).unwrap();
    let words: Vec<&str> = sas_line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "Alice").unwrap();
    assert_eq!(words[i + 1], words[i + 4], "both sides show the same SAS: {sas_line}");
    for needle in [
        "Bob reads: \"Hello Bob, this is encrypted.\"",
        "Alice (after Bob's re-key) reads:",
        "acknowledged by Bob",
        "Alice, back online, reads: \"Sent while you were away.\"",
        "Alice, back online, reads: \"And one more.\"",
        "the offline session ended: true",
        "(1 dropped)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}
