//! Helpers: the vectors, temporary copies, and assertions on reports.

use esession_vectors::{Report, check_files};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The repository's own copy of the vector validated against the original Gajim code.
pub(crate) fn gajim_vector() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../esession-crypto/tests/vectors/gajim-g4_none_modp5.json")
}

/// The repository's gajim-* vectors (always checked).
pub(crate) fn repo_gajim_vectors() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../esession-crypto/tests/vectors");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("gajim-"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "the repository's gajim vectors are missing");
    out
}

/// This crate's fixtures: an XEP-0187 vector of the independent oracle and hand-written
/// negative variants of it.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The shared vectors folder (`ESESSION_VECTORS_DIR`, else `shared/vectors` beside the
/// workspace), when it is there.
pub(crate) fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ESESSION_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"));
    dir.is_dir().then_some(dir)
}

/// A shared vector by file name, or None (with the reason printed) when the folder is absent.
pub(crate) fn shared(name: &str) -> Option<PathBuf> {
    let Some(dir) = shared_dir() else {
        eprintln!("skipped: the shared vectors folder is absent");
        return None;
    };
    let p = dir.join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

pub(crate) fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A fresh temporary directory for one test.
pub(crate) fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("esession-vectors-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `v` as `dir/name` and checks it.
pub(crate) fn check_value(dir: &Path, name: &str, v: &Value) -> Report {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
    check_files(&[p])
}

/// Flips the first hex digit of the string at `pointer`.
pub(crate) fn flip_hex(v: &mut Value, pointer: &str) {
    let s = v.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer}"));
    let text = s.as_str().unwrap().to_owned();
    let first = text.chars().next().unwrap();
    let flipped = if first == '0' { '1' } else { '0' };
    *s = Value::String(format!("{flipped}{}", &text[1..]));
}

/// Asserts the report has no failure and every skip says why.
pub(crate) fn assert_clean(report: &Report) {
    assert!(report.is_success(), "{report}");
    for l in report.lines().iter().filter(|l| l.is_skip()) {
        let why = l.to_string();
        assert!(why.split_once(": ").is_some_and(|(_, r)| r.len() > 10), "a skip without its reason: {why}");
    }
    assert!(report.passed() > 0, "{report}");
}

/// Asserts some line whose name contains `what` failed, and none with that name passed or was
/// skipped.
pub(crate) fn assert_fails(report: &Report, what: &str) {
    let named: Vec<_> = report.lines().iter().filter(|l| l.name.contains(what)).collect();
    assert!(named.iter().any(|l| l.is_fail()), "no FAIL line for {what:?}:\n{report}");
    assert!(!report.is_success());
    for l in named.iter().filter(|l| !l.is_fail()) {
        assert!(!l.name.ends_with(what), "{what:?} also reported as {l}:\n{report}");
    }
}

/// The lines of a report as text.
pub(crate) fn text(report: &Report) -> Vec<String> {
    report.lines().iter().map(ToString::to_string).collect()
}
