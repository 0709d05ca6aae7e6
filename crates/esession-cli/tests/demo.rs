//! `esession demo`, the command README.md gives as the main job, runs to its end.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn demo_runs_every_step() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_esession")).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let sas: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("session established, SAS ").map(|(_, s)| s.trim()))
        .collect();
    assert_eq!(sas.len(), 2, "{text}");
    assert_eq!(sas[0], sas[1], "both sides show the same SAS");
    for needle in [
        "Bob reads: \"Hello, Bob!\"",
        "Alice reads: \"Hi Alice, ünïcødé works too\"",
        "Bob reads: \"after a re-key\"",
        "Alice: session ended: terminated, acknowledged by the peer",
        "Bob: session ended: terminated by the peer (authenticated)",
        "Alice: offline session accepted",
        "Alice reads: \"see you when you are back\"",
        "Alice reads: \"and a second message\"",
        "the same start delivered again is dropped silently: true",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}
