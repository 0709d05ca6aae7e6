//! Before any step: the shape of what the steps read from the file. The replay, the forms and
//! the XEP-0200 entries walk the recorded stanzas and the parties' inputs; a stanza with an
//! unknown sender or kind, an entry naming a stanza that is not recorded, a recorded section
//! that disagrees with another, or a key, secret or random value that does not parse would
//! otherwise be passed over without a line. Each is a FAIL here (the file is malformed), so
//! that nothing the file holds is silently left unchecked.
//!
//! * `transcript`: every entry has a `seq` (unique), `from` and `to` among `alice`, `bob` and
//!   (PEP IQs only) `server`, a `kind` of README-xep.md's list and its `xml`. Error stanzas
//!   are not replayed: each is a `skip` line.
//! * `negotiation_stanzas`: every entry is `{from: alice|bob, xml}`; when the file also has a
//!   transcript, they must be its negotiation part (kinds `negotiation` and `offline-start`),
//!   in order, with the same sender, XML and `seq`.
//! * XEP-0200 entries (`xep0200`, `termination.terminate`/`ack`): with a transcript, each names
//!   by `seq` a stanza of the same sender that carries it (`xep0200`, or a negotiation or
//!   offline start when piggybacked), and its `wire`, when given, is that stanza; without one,
//!   each has a sender, a non-piggybacked one its `wire`, and the piggybacked ones are as many
//!   as the negotiation stanzas carrying a `<c/>`.
//! * Inputs: the parties' keys, trusted keys, retained secrets and random queues parse; the
//!   offline replay keys are `tag:hex`.

use crate::format::{Recorded, Vector, Who, hex, transcript_entry};
use crate::report::Report;
use serde_json::Value;

/// Checks the file's shape, one line per section (FAIL lines name each problem).
pub(crate) fn check(v: &Vector, r: &mut Report) {
    let transcript = transcript(v, r);
    negotiation_stanzas(v, transcript.as_deref(), r);
    entries(v, transcript.as_deref(), r);
    inputs(v, r);
}

/// A section's verdict: ok when it has no problem, else one FAIL per problem.
fn report(v: &Vector, r: &mut Report, what: &str, problems: Vec<String>) {
    if problems.is_empty() {
        r.ok(&v.n(&format!("structure {what}")));
    }
    for p in problems {
        r.fail(&v.n(&format!("structure {what}")), &p);
    }
}

/// The transcript's entries (error stanzas left out), or None when the file has none.
fn transcript(v: &Vector, r: &mut Report) -> Option<Vec<Recorded>> {
    let t = v.v.get("transcript")?;
    let Some(t) = t.as_array() else {
        r.fail(&v.n("structure transcript"), "transcript is not a list");
        return Some(Vec::new());
    };
    let mut problems = Vec::new();
    let mut out: Vec<Recorded> = Vec::new();
    let mut seqs: Vec<u64> = Vec::new();
    for (i, e) in t.iter().enumerate() {
        if let Some(seq) = e.get("seq").and_then(Value::as_u64) {
            if seqs.contains(&seq) {
                problems.push(format!("transcript[{i}]: seq {seq} appears twice"));
            }
            seqs.push(seq);
        }
        match transcript_entry(e) {
            Ok(Some(rec)) => out.push(rec),
            Ok(None) => r.skip(
                &v.n(&format!("transcript[{i}]")),
                "an error stanza: not replayed (a refusal is checked through the XEP-0200 entry that records it)",
            ),
            Err(why) => problems.push(format!("transcript[{i}]: {why}")),
        }
    }
    report(v, r, "transcript", problems);
    Some(out)
}

fn negotiation_stanzas(v: &Vector, transcript: Option<&[Recorded]>, r: &mut Report) {
    let Some(ns) = v.v.get("negotiation_stanzas") else { return };
    let Some(ns) = ns.as_array() else {
        return r.fail(&v.n("structure negotiation_stanzas"), "negotiation_stanzas is not a list");
    };
    let mut problems = Vec::new();
    let mut read: Vec<(Who, &str, Option<u64>)> = Vec::new();
    for (i, e) in ns.iter().enumerate() {
        let from = e.get("from").and_then(Value::as_str);
        let who = from.and_then(Who::parse);
        let xml = e.get("xml").and_then(Value::as_str);
        let seq = e.get("seq");
        match (who, xml) {
            (Some(who), Some(xml)) if seq.is_none_or(Value::is_u64) => {
                read.push((who, xml, seq.and_then(Value::as_u64)));
            }
            (None, _) => problems.push(format!(
                "negotiation_stanzas[{i}]: from {} is neither alice nor bob",
                from.map_or_else(|| "(missing)".to_owned(), |f| format!("{f:?}"))
            )),
            (_, None) => problems.push(format!("negotiation_stanzas[{i}]: no xml")),
            _ => problems.push(format!("negotiation_stanzas[{i}]: seq is not an integer")),
        }
    }
    if !problems.is_empty() {
        return report(v, r, "negotiation_stanzas", problems);
    }
    let Some(t) = transcript else {
        return report(v, r, "negotiation_stanzas", problems);
    };
    // The negotiation part of the transcript, which the steps use in their place.
    let part: Vec<&Recorded> =
        t.iter().filter(|s| matches!(s.kind.as_str(), "negotiation" | "offline-start")).collect();
    if part.len() != read.len() {
        problems.push(format!(
            "{} negotiation stanzas, but the transcript's negotiation part has {}",
            read.len(),
            part.len()
        ));
    }
    for (i, ((who, xml, seq), rec)) in read.iter().zip(&part).enumerate() {
        if *who != rec.from {
            problems.push(format!(
                "negotiation_stanzas[{i}] is from {}, transcript seq {} from {}",
                who.as_str(),
                rec.seq,
                rec.from.as_str()
            ));
        }
        if let Some(s) = seq
            && *s != rec.seq
        {
            problems.push(format!(
                "negotiation_stanzas[{i}] has seq {s}, the transcript's stanza there seq {}",
                rec.seq
            ));
        }
        if *xml != rec.xml {
            problems.push(format!(
                "negotiation_stanzas[{i}] differs from transcript stanza {} (expected the transcript's xml)",
                rec.seq
            ));
        }
    }
    let what = "negotiation_stanzas agree with the transcript";
    report(v, r, what, problems);
}

fn entries(v: &Vector, transcript: Option<&[Recorded]>, r: &mut Report) {
    let entries = v.entries();
    if entries.is_empty() {
        return;
    }
    let mut problems = Vec::new();
    let mut piggybacked = 0usize;
    for e in &entries {
        let from = e.from();
        if from.is_none() {
            problems.push(format!("{}: from is neither alice nor bob", e.label));
        }
        let wire = e
            .value
            .get("wire")
            .or_else(|| e.send().and_then(|s| s.get("wire")))
            .and_then(Value::as_str)
            .filter(|w| w.starts_with('<'));
        match transcript {
            Some(t) => {
                let Some(seq) = e.seq() else {
                    problems.push(format!("{}: no seq (the transcript stanza that carries it)", e.label));
                    continue;
                };
                let Some(s) = t.iter().find(|s| s.seq == seq) else {
                    problems.push(format!("{}: stanza {seq} is not in the transcript", e.label));
                    continue;
                };
                if from.is_some_and(|f| f != s.from) {
                    problems.push(format!(
                        "{}: from {} but transcript stanza {seq} is from {}",
                        e.label,
                        from.map_or("?", Who::as_str),
                        s.from.as_str()
                    ));
                }
                let carrier = if e.piggybacked() {
                    matches!(s.kind.as_str(), "negotiation" | "offline-start")
                } else {
                    s.kind == "xep0200"
                };
                if !carrier {
                    problems.push(format!(
                        "{}: transcript stanza {seq} is of kind {:?}, which does not carry this entry",
                        e.label, s.kind
                    ));
                }
                if wire.is_some_and(|w| w != s.xml) {
                    problems.push(format!("{}: wire differs from transcript stanza {seq}", e.label));
                }
            }
            None if e.piggybacked() => piggybacked += 1,
            None if wire.is_none() => problems.push(format!("{}: no wire stanza", e.label)),
            None => {}
        }
    }
    if transcript.is_none() {
        let carriers = v
            .v
            .get("negotiation_stanzas")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| s.get("xml").and_then(Value::as_str).is_some_and(|x| x.contains("xep-0200.html#ns")))
            .count();
        if carriers != piggybacked {
            problems.push(format!(
                "{piggybacked} entries are piggybacked, but {carriers} negotiation stanzas carry a <c/>"
            ));
        }
    }
    report(v, r, "XEP-0200 entries match their stanzas", problems);
}

fn inputs(v: &Vector, r: &mut Report) {
    let mut problems = Vec::new();
    let mut seen = false;
    let is_hex = |x: &Value| x.as_str().is_some_and(|s| hex(Some(x)).is_some() && !s.is_empty());
    for who in [Who::Alice, Who::Bob] {
        let p = who.as_str();
        for (place, kind, k) in v.key_objects_at(who) {
            seen = true;
            if !crate::format::key_parses(kind, k) {
                problems.push(format!("{p} {place}.{kind}: not a key"));
            }
        }
        if let Some(t) = v.config(who, "trusted") {
            seen = true;
            match t.as_array() {
                Some(list) => {
                    for (i, k) in list.iter().enumerate() {
                        if !crate::format::key_parses("public", k) {
                            problems.push(format!("{p} config.trusted[{i}]: not a public key"));
                        }
                    }
                }
                None => problems.push(format!("{p} config.trusted is not a list")),
            }
        }
        if let Some(t) = v.config(who, "retained") {
            seen = true;
            match t.as_array() {
                Some(list) => {
                    for (i, s) in list.iter().enumerate() {
                        if !(is_hex(s) || s.get("secret").is_some_and(is_hex)) {
                            problems.push(format!("{p} config.retained[{i}]: not a hex secret"));
                        }
                    }
                }
                None => problems.push(format!("{p} config.retained is not a list")),
            }
        }
        let random = v.inputs(who).and_then(|i| i.get("random")).and_then(Value::as_object);
        let queues = random.into_iter().flatten().map(|(k, q)| (format!("random.{k}"), q));
        let dh = v.inputs(who).and_then(|i| i.get("dh_secrets")).map(|q| ("dh_secrets".to_owned(), q));
        for (name, q) in queues.chain(dh) {
            seen = true;
            match q.as_array() {
                Some(list) => {
                    for (i, x) in list.iter().enumerate() {
                        if !is_hex(x) {
                            problems.push(format!("{p} inputs.{name}[{i}]: not hex"));
                        }
                    }
                }
                None => problems.push(format!("{p} inputs.{name} is not a list")),
            }
        }
    }
    if let Some(keys) = v.v.pointer("/offline/replay_keys") {
        seen = true;
        match keys.as_array() {
            Some(list) => {
                for (i, k) in list.iter().enumerate() {
                    let ok = k.as_str().and_then(|k| k.split_once(':')).is_some_and(|(tag, h)| {
                        !tag.is_empty() && hex(Some(&Value::String(h.to_owned()))).is_some()
                    });
                    if !ok {
                        problems.push(format!("offline.replay_keys[{i}]: not tag:hex"));
                    }
                }
            }
            None => problems.push("offline.replay_keys is not a list".into()),
        }
    }
    if seen || !problems.is_empty() {
        report(v, r, "inputs", problems);
    }
}
