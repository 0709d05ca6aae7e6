//! Negative files (README-xep.md "Negative file"): each variant replays the rejecting party of
//! the base vector over the base transcript with the variant's stanzas: before `seq` the base's;
//! at `seq`, what was delivered instead (`delivered_at_seq`: one changed stanza, or the same one
//! twice for a replay) when the stanza is the peer's, the original when it is the party's own;
//! from `seq` on, the variant's own `transcript` (the tampered run, which changes both what the
//! party receives and what it replies; never the base). The party must refuse `at_seq` with the
//! expected check, condition, error and fields; a variant that expects no rejection must let
//! both parties establish.
//!
//! Keys that change what a variant means are refused when unknown: a `scenario_patch` key other
//! than the documented clock variants (`bob.now`, `clock.alice`), an `expected` key the format
//! does not define, a `tamper` that is not a description, a `delivered_at_seq` of another shape.
//! The base is found by name among the `.json` files in the negative file's own directory,
//! whatever form the path was given in.

use crate::format::{Kind, Recorded, Vector, Who};
use crate::party::Outcome;
use crate::report::{Report, Verdict};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The keys of `expected` the format defines.
const EXPECTED_KEYS: [&str; 7] =
    ["rejected_by", "at_seq", "check", "condition", "error_sent", "fields", "error_stanza"];

/// The directory of a file, whatever form its path has (`neg.json`, `./neg.json`, absolute).
pub(crate) fn directory_of(path: &Path) -> PathBuf {
    if let Ok(full) = std::fs::canonicalize(path)
        && let Some(dir) = full.parent()
    {
        return dir.to_owned();
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The base vector named `base`, among the `.json` files of `dir`.
fn find_base(dir: &Path, base: &str) -> Result<Vector, String> {
    let is_base = |v: &Vector| v.name == base && v.kind != Kind::Negative;
    // The usual file names first, then every file.
    for name in [format!("{base}.json"), format!("xep-{base}.json"), format!("gajim-{base}.json")] {
        let p = dir.join(name);
        if let Ok(v) = Vector::read(&p)
            && is_base(&v)
        {
            return Ok(v);
        }
    }
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| Vector::read(&p).ok())
        .find(is_base)
        .ok_or_else(|| format!("base vector {base:?} not found among the .json files of {}", dir.display()))
}

/// Applies a variant's `scenario_patch` (named clock variants, not a JSON patch) to a copy of
/// the base vector.
///
/// # Errors
/// A key that names no known clock variant (an RFC 7386 merge patch or RFC 6902 operations
/// included), a value that is not an XEP-0082 time, or a clock the base does not have.
pub(crate) fn patched(base: &Value, patch: &Value) -> Result<Value, String> {
    let mut out = base.clone();
    let Some(map) = patch.as_object() else {
        return Err("scenario_patch is not a map of clock variants: refused".into());
    };
    for (key, val) in map {
        if !matches!(key.as_str(), "bob.now" | "clock.alice") {
            return Err(format!(
                "scenario_patch key {key:?} is not a known clock variant (bob.now, clock.alice): refused"
            ));
        }
        let now = val
            .as_str()
            .filter(|s| esession_offline::parse_xep0082(s).is_some())
            .ok_or_else(|| format!("scenario_patch {key}: {val} is not an XEP-0082 UTC time"))?;
        if key == "bob.now" {
            let bob = out
                .pointer_mut("/inputs/bob")
                .and_then(Value::as_object_mut)
                .ok_or("scenario_patch bob.now: the base has no inputs.bob")?;
            bob.insert("now".into(), Value::String(now.to_owned()));
            continue;
        }
        let ops = out
            .pointer_mut("/inputs/script")
            .and_then(Value::as_array_mut)
            .ok_or("scenario_patch clock.alice: the base has no inputs.script")?;
        let mut changed = 0;
        for op in ops.iter_mut().filter(|op| {
            op.get("op").and_then(Value::as_str) == Some("clock")
                && op.get("party").and_then(Value::as_str) == Some("alice")
        }) {
            if let Some(o) = op.as_object_mut() {
                o.insert("now".into(), Value::String(now.to_owned()));
                changed += 1;
            }
        }
        if changed == 0 {
            return Err("scenario_patch clock.alice: the script has no clock operation of alice".into());
        }
    }
    Ok(out)
}

/// A negative file.
pub(crate) fn check(neg: &Vector, r: &mut Report) {
    let Some(base_name) = neg.v.get("base").and_then(Value::as_str) else {
        return r.fail(&neg.name, "no base named");
    };
    let dir = directory_of(&neg.path);
    let base = match find_base(&dir, base_name) {
        Ok(b) => b,
        Err(e) => return r.fail(&neg.name, &e),
    };
    let variants = neg.v.get("variants").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if variants.is_empty() {
        return r.fail(&neg.name, "no variants");
    }
    for variant in variants {
        let id = variant.get("id").and_then(Value::as_str).unwrap_or("?");
        let name = neg.n(id);
        let verdict = match variant_verdict(&base, variant) {
            Ok(v) => v,
            Err(why) => Verdict::Fail(why),
        };
        r.push(crate::report::Line::new(name_for(&name, variant), verdict));
    }
}

/// `NAME ID`, and for a variant without a rejection, what it checks.
fn name_for(name: &str, variant: &Value) -> String {
    if variant.get("expected").is_none_or(Value::is_null) {
        format!("{name} accepted by both")
    } else {
        name.to_owned()
    }
}

fn variant_verdict(base: &Vector, variant: &Value) -> Result<Verdict, String> {
    // What changes the variant's meaning: refused when unknown.
    let expected = variant.get("expected").filter(|e| !e.is_null());
    if let Some(exp) = expected {
        let map = exp.as_object().ok_or("expected is neither null nor an object: refused")?;
        if let Some(k) = map.keys().find(|k| !EXPECTED_KEYS.contains(&k.as_str())) {
            return Err(format!("expected has the unknown key {k:?}: refused"));
        }
    }
    match variant.get("tamper") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => return Err(format!("tamper {other} is not a known kind (a description): refused")),
    }
    let base_json = match variant.get("scenario_patch").filter(|p| !p.is_null()) {
        Some(p) => patched(&base.v, p)?,
        None => base.v.clone(),
    };
    let vector = Vector::from_value(&base.path, base_json)?;
    let seq = variant.get("seq").and_then(Value::as_u64).ok_or("the variant has no seq")?;
    let delivered: Vec<String> = match variant.get("delivered_at_seq") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        None | Some(Value::Null) if variant.get("scenario_patch").is_some_and(|p| !p.is_null()) => Vec::new(),
        None | Some(Value::Null) => {
            return Err("the variant delivers nothing (no delivered_at_seq) and patches no clock".into());
        }
        Some(other) => {
            return Err(format!(
                "delivered_at_seq {} is not a stanza or a list of stanzas: refused",
                kind_of(other)
            ));
        }
    };
    let transcript = variant.get("transcript").and_then(Value::as_array);
    let changed: Vec<u64> = variant
        .get("stanzas_changed_from_base")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    for c in &changed {
        let present =
            transcript.is_some_and(|t| t.iter().any(|e| e.get("seq").and_then(Value::as_u64) == Some(*c)));
        if !present {
            return Err(format!(
                "stanza {c} changed from the base but the variant's transcript does not hold it"
            ));
        }
    }
    let base_recs = base.recorded();
    let run = |me: Who| -> Result<Outcome, String> {
        let stanzas = stanzas_for(&base_recs, variant, seq, &delivered, me)?;
        if vector.is_offline() {
            crate::offline::replay(&vector, me, &stanzas, false)
        } else {
            crate::replay::replay(&vector, me, &stanzas, false)
        }
    };
    let Some(exp) = expected else {
        // No rejection: both parties establish, reproducing their own stanzas.
        for me in [Who::Alice, Who::Bob] {
            let out = run(me)?;
            if let Some(rej) = &out.rejected {
                return Ok(Verdict::Fail(format!("expected no rejection, {} {rej}", me.as_str())));
            }
            if !out.established {
                return Ok(Verdict::Fail(format!(
                    "{} did not establish: {}",
                    me.as_str(),
                    out.incomplete.unwrap_or_default()
                )));
            }
            if let Some(l) = out.lines.iter().find(|l| l.is_fail()) {
                return Ok(Verdict::Fail(format!("{}: {l}", me.as_str())));
            }
        }
        return Ok(Verdict::Ok);
    };
    let who = exp
        .get("rejected_by")
        .and_then(Value::as_str)
        .and_then(Who::parse)
        .ok_or("expected.rejected_by is not alice or bob")?;
    let at = exp.get("at_seq").and_then(Value::as_u64).ok_or("expected.at_seq missing")?;
    let check = exp.get("check").and_then(Value::as_str).ok_or("expected.check missing")?;
    let condition = exp.get("condition").and_then(Value::as_str).ok_or("expected.condition missing")?;
    let error_sent = exp.get("error_sent").and_then(Value::as_bool);
    let fields: Option<Vec<String>> = exp
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect());
    let want = format!("{} to refuse stanza {at} ({check}, {condition})", who.as_str());
    let out = run(who)?;
    // What the party did before refusing must be what the tampered run recorded.
    if let Some(l) = out.lines.iter().find(|l| l.is_fail()) {
        return Ok(Verdict::Fail(format!("expected {want}; the replay diverged first: {l}")));
    }
    let Some(rej) = out.rejected else {
        let what = match (&out.incomplete, out.established) {
            (Some(why), _) => why.clone(),
            (None, true) => "it accepted every stanza".into(),
            (None, false) => "it neither established nor refused".into(),
        };
        return Ok(Verdict::Fail(format!("expected {want}; {what}")));
    };
    let mut wrong = Vec::new();
    if rej.seq != at || rej.check != check || rej.condition != condition {
        wrong.push(rej.to_string());
    }
    if let Some(sent) = error_sent
        && sent != rej.error_sent
    {
        wrong.push(format!("error sent: {}", rej.error_sent));
    }
    if let (Some(exp_fields), Some(got)) = (&fields, &rej.fields) {
        let (mut a, mut b) = (exp_fields.clone(), got.clone());
        a.sort();
        b.sort();
        if a != b {
            wrong.push(format!("fields {got:?} where {exp_fields:?} were expected"));
        }
    }
    if wrong.is_empty() {
        Ok(Verdict::Ok)
    } else {
        Ok(Verdict::Fail(format!(
            "expected {want}{}; got {}",
            fields.map_or_else(String::new, |f| format!(" naming {f:?}")),
            wrong.join("; ")
        )))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The stanzas party `me` sees in a variant: the base before `seq`; at `seq`, what was
/// delivered (the peer's stanza) or the original (its own); after `seq`, the variant's
/// transcript (without error stanzas), or the base's when the variant records none.
fn stanzas_for(
    base: &[Recorded],
    variant: &Value,
    seq: u64,
    delivered: &[String],
    me: Who,
) -> Result<Vec<Recorded>, String> {
    let transcript: Option<Vec<Recorded>> = match variant.get("transcript").and_then(Value::as_array) {
        Some(t) => Some(
            t.iter()
                .enumerate()
                .map(|(i, e)| {
                    crate::format::transcript_entry(e).map_err(|why| format!("transcript[{i}]: {why}"))
                })
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    let mut out: Vec<Recorded> = base.iter().filter(|s| s.seq < seq).cloned().collect();
    let at = transcript
        .as_ref()
        .and_then(|t| t.iter().find(|s| s.seq == seq).cloned())
        .or_else(|| base.iter().find(|s| s.seq == seq).cloned())
        .ok_or_else(|| format!("no stanza {seq} in the base or the variant"))?;
    if at.from == me || delivered.is_empty() {
        let original =
            variant.get("original_xml").and_then(Value::as_str).map_or_else(|| at.xml.clone(), str::to_owned);
        out.push(Recorded { xml: original, ..at.clone() });
    } else {
        for xml in delivered {
            out.push(Recorded { xml: xml.clone(), ..at.clone() });
        }
    }
    match transcript {
        Some(t) => out.extend(t.into_iter().filter(|s| s.seq > seq)),
        None => out.extend(base.iter().filter(|s| s.seq > seq).cloned()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_has_the_current_directory() {
        assert_eq!(directory_of(Path::new("does-not-exist.json")), PathBuf::from("."));
        assert_eq!(directory_of(Path::new("a/b.json")), PathBuf::from("a"));
    }

    #[test]
    fn clock_variants_patch_the_named_clocks_and_nothing_else() {
        let base = serde_json::json!({"inputs": {"bob": {"now": "2026-01-01T12:00:00Z"},
            "script": [{"op": "clock", "party": "alice", "now": "2026-01-01T20:00:00Z"}, {"op": "return"}]}});
        let p = patched(&base, &serde_json::json!({"bob.now": "2026-01-02T08:00:00Z"})).unwrap_or_default();
        assert_eq!(p.pointer("/inputs/bob/now").and_then(Value::as_str), Some("2026-01-02T08:00:00Z"));
        let p =
            patched(&base, &serde_json::json!({"clock.alice": "2026-01-02T08:00:01Z"})).unwrap_or_default();
        assert_eq!(p.pointer("/inputs/script/0/now").and_then(Value::as_str), Some("2026-01-02T08:00:01Z"));
        // A merge patch, another key, a bad time: refused.
        assert!(patched(&base, &serde_json::json!({"bob": {"now": "2026-01-02T08:00:00Z"}})).is_err());
        assert!(patched(&base, &serde_json::json!({"clock.bob": "2026-01-02T08:00:00Z"})).is_err());
        assert!(patched(&base, &serde_json::json!({"bob.now": "tomorrow"})).is_err());
        assert!(patched(&base, &serde_json::json!([{"op": "replace"}])).is_err());
    }
}
