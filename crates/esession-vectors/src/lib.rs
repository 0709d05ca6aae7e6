//! # esession-vectors
//!
//! The test-vector checker of esession (`esession vectors check FILE...` is a thin wrapper over
//! it). It reads vector files in the format the repository's `docs/vectors.md` describes, and
//! for each file does what that format's "What the checker does with a file" says, one module
//! per step:
//!
//! | step | module | what |
//! | --- | --- | --- |
//! | - | `format` | reading a file: the kinds (gajim layout, xep layout, negative), the values, the recorded stanzas, the parties' keys |
//! | - | `structure` | the file's shape: transcript entries (sender, receiver, kind), the agreement of `negotiation_stanzas` with the transcript, the stanza of every XEP-0200 entry, keys and random values that parse |
//! | 1 | `values` | recompute every value from the secrets and the recorded public inputs |
//! | 2 | `forms` | normalize the recorded stanzas' forms: formA, formA2, formB, formB2, the offline signed content |
//! | 3 | `replay`, `offline` | receive-side replay of each party through the code a live session uses (online; XEP-0187) |
//! | 4 | `stanzas` | every XEP-0200 entry re-sealed as its sender and opened as its receiver |
//! | - | `negative` | the variants of a negative file, each refused as expected |
//! | - | [`report`] | the lines `ok NAME` / `FAIL NAME: expected .. got ..` / `skip NAME: why` and the summary |
//!
//! Every check that cannot be made is a `skip` line with its reason, and a file never passes by
//! skipping: a positive file none of whose values could be recomputed, or none of whose parties
//! could be replayed, fails. Keys that change what a file means (`profile`, `kind`, a negative
//! variant's `scenario_patch`, `expected`, `tamper`, `delivered_at_seq`, a transcript entry's
//! `kind`, `from` and `to`) are refused when this checker does not know them; other unknown
//! keys are ignored. Before the steps, `structure` checks the shape of what they read.
//!
//! ```no_run
//! use std::path::Path;
//!
//! // A vector file, e.g. the repository's copy of the one validated against the original Gajim
//! // code (crates/esession-crypto/tests/vectors/gajim-g4_none_modp5.json).
//! let file = Path::new("gajim-g4_none_modp5.json").to_path_buf();
//! let report = esession_vectors::check_files(&[file]);
//! assert!(report.is_success(), "{report}");
//! assert_eq!(report.skipped(), 0, "{report}");
//! assert!(report.lines().iter().any(|l| l.to_string() == "ok g4_none_modp5 step3 bob established"));
//! println!("{}", report.summary());
//! ```
//!
//! What it does not prove: a vector checks this implementation against another reading of the
//! specifications (an independent oracle, or the original Gajim code for `gajim-*` files); the
//! sender's free choices (form layout, nonces, decoys, the serialization of encrypted content)
//! are taken from the recording, never judged.

mod format;
mod forms;
mod negative;
mod offline;
mod party;
mod replay;
pub mod report;
mod stanzas;
mod structure;
mod values;

pub use report::{Line, Report, Verdict};

use format::{Kind, Vector};
use std::path::Path;

/// Checks one vector file (positive or negative), adding its lines to `report`.
pub fn check_file(path: &Path, report: &mut Report) {
    let v = match Vector::read(path) {
        Ok(v) => v,
        Err(e) => return report.fail(&path.display().to_string(), &e),
    };
    match v.kind {
        Kind::Negative => negative::check(&v, report),
        Kind::Gajim | Kind::Xep => positive(&v, report),
    }
}

/// Checks every file in order.
#[must_use]
pub fn check_files<P: AsRef<Path>>(paths: &[P]) -> Report {
    let mut report = Report::new();
    for p in paths {
        check_file(p.as_ref(), &mut report);
    }
    report
}

fn positive(v: &Vector, r: &mut Report) {
    structure::check(v, r);
    let step1 = r.mark();
    values::check(v, r);
    let step1_ok = r.since(step1).iter().any(Line::is_ok);
    forms::check(v, r);
    stanzas::check(v, r);
    recorded_errors(v, r);
    let step3 = r.mark();
    if v.is_offline() {
        offline_check(v, r);
    } else {
        replay::check(v, r);
    }
    let step3_ok = r.since(step3).iter().any(|l| l.is_ok() && l.name.ends_with(" established"));
    // A vector never passes by skipping.
    if !step1_ok {
        r.fail(&v.n("step1"), "no value of the file could be recomputed");
    }
    if !step3_ok {
        r.fail(&v.n("step3"), "no party could be replayed to an established session");
    }
}

fn offline_check(v: &Vector, r: &mut Report) {
    let stanzas = v.recorded();
    for me in [format::Who::Alice, format::Who::Bob] {
        replay::report_outcome(v, me, offline::replay(v, me, &stanzas, true), r);
    }
}

/// The file's `errors` (expected failures): each must be a receiver's rejection recorded in an
/// XEP-0200 entry (step 4 reproduces it); any other is reported as not reproduced.
fn recorded_errors(v: &Vector, r: &mut Report) {
    let Some(errors) = v.v.get("errors").and_then(serde_json::Value::as_array) else { return };
    let entries = v.entries();
    for (i, e) in errors.iter().enumerate() {
        let covered = ["seq", "index", "entry", "stanza", "xep0200"]
            .iter()
            .filter_map(|k| e.get(*k)?.as_u64())
            .any(|n| {
                entries.iter().any(|en| {
                    (en.seq() == Some(n) || en.index.is_some_and(|i| i as u64 == n))
                        && en.recv().is_some_and(|rv| rv.get("error").is_some_and(|x| !x.is_null()))
                })
            });
        if !covered {
            r.skip(
                &v.n(&format!("errors[{i}]")),
                "this recorded failure names no XEP-0200 entry with the receiver's error: not reproduced",
            );
        }
    }
}
