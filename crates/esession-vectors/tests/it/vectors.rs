//! Every vector passes: the shared folder's (when present) and the repository's own.

use super::support::*;
use esession_vectors::{Report, check_file, check_files};

#[test]
fn repository_gajim_vectors_pass_without_skips() {
    let report = check_files(&repo_gajim_vectors());
    assert_clean(&report);
    assert_eq!(report.skipped(), 0, "{report}");
    let lines = text(&report);
    // Every step ran: values, forms, XEP-0200 entries, both replays.
    for l in [
        "ok g4_none_modp5 values.K_final",
        "ok g4_none_modp5 formB2",
        "ok g4_none_modp5 step4 xep0200[4].recv.body",
        "ok g4_none_modp5 step3 alice established",
        "ok g4_none_modp5 step3 alice SAS",
        "ok g4_none_modp5 step3 bob own stanza 8 reproduced",
    ] {
        assert!(lines.iter().any(|x| x == l), "missing {l:?}:\n{report}");
    }
}

#[test]
fn every_shared_vector_passes() {
    let Some(dir) = shared_dir() else {
        eprintln!("skipped: the shared vectors folder is absent (set ESESSION_VECTORS_DIR)");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut report = Report::new();
    for f in &files {
        let before = report.passed();
        check_file(f, &mut report);
        assert!(report.passed() > before, "{} yielded no ok line:\n{report}", f.display());
    }
    assert_clean(&report);
    for l in report.lines().iter().filter(|l| l.is_skip()) {
        eprintln!("{l}");
    }
    // Each negative variant is one line, ok.
    let negatives = report.lines().iter().filter(|l| l.name.starts_with("neg-")).count();
    assert!(negatives > 0 || !files.iter().any(|f| f.to_string_lossy().contains("neg-")), "{report}");
}

#[test]
fn offline_fixture_and_its_variants_pass() {
    let report = check_files(&[fixture("xep-off_rsa_terminate.json"), fixture("neg-off_rsa_terminate.json")]);
    assert_clean(&report);
    assert_eq!(report.skipped(), 0, "{report}");
    let lines = text(&report);
    for l in [
        "ok off_rsa_terminate step3 bob own stanza 2 reproduced",
        "ok off_rsa_terminate step3 alice stanza 2 body",
        "ok off_rsa_terminate step3 alice replay store holds d",
        "ok off_rsa_terminate step3 alice replay store holds NB",
        "ok off_rsa_terminate offline.signs[1] re-signed",
        "ok neg-off_rsa_terminate replay",
        "ok neg-off_rsa_terminate bob-expired",
        "ok neg-off_rsa_terminate alice-expired",
        "ok neg-off_rsa_terminate alice-at-expiry accepted by both",
        "ok neg-off_rsa_terminate signs-one accepted by both",
    ] {
        assert!(lines.iter().any(|x| x == l), "missing {l:?}:\n{report}");
    }
}

#[test]
fn the_summary_is_the_documented_last_line() {
    let report = check_files(&[gajim_vector()]);
    let s = report.to_string();
    let last = s.lines().last().unwrap();
    assert_eq!(last, format!("{} passed, 0 failed", report.passed()));
    assert_eq!(s.lines().count(), report.lines().len() + 1);
}
