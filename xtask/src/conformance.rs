//! `cargo xtask conformance`: docs/conformance.md against the specifications and the code.
//!
//! * every normative sentence of a traced XEP (one that has a section in the table) has a row,
//!   with the ID the sentence's position gives it (`X<xep>-<section>-<nn>`; a footnote's
//!   sentences are numbered in a section `N<footnote>`, e.g. `X155-N15-01`);
//! * every MUST / MUST NOT row is implemented (`yes ...` or `n/a ...` with a reason) and names a
//!   test (or `by construction` with the reason in the implemented cell);
//! * every named test exists (`fn NAME(` in the named crate);
//! * every ID quoted in the code is in the table, and every implemented MUST / MUST NOT /
//!   REQUIRED row is quoted in a comment of the library code (`crates/*/src`) at the line that
//!   enforces it, unless its implemented cell says `by construction` and names (in backquotes)
//!   the type or API that makes it hold;
//! * XEPs in scope that are not traced yet fail the check, with their sentence count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SCOPE: [&str; 4] = ["0116", "0187", "0200", "0155"];
const LEVELS: [&str; 8] =
    ["MUST NOT", "MUST", "SHOULD NOT", "SHOULD", "MAY", "REQUIRED", "RECOMMENDED", "OPTIONAL"];

/// The first normative keyword of a sentence.
fn level_of(sentence: &str) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for kw in LEVELS {
        let mut from = 0;
        while let Some(i) = sentence[from..].find(kw) {
            let at = from + i;
            let before = sentence[..at].chars().last().is_none_or(|c| !c.is_ascii_alphanumeric());
            let after = sentence[at + kw.len()..].chars().next().is_none_or(|c| !c.is_ascii_alphanumeric());
            if before && after {
                if best.is_none_or(|(b, k)| at < b || (at == b && kw.len() > k.len())) {
                    best = Some((at, kw));
                }
                break;
            }
            from = at + kw.len();
        }
    }
    best.map(|(_, k)| k)
}

/// The normative sentences of a specification: (ID, level), in order.
fn sentences(xep: &str, text: &str) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut notes = false;
    for line in text.lines() {
        if line.starts_with("## Notes") {
            notes = true;
            section = None;
            continue;
        }
        if notes {
            // `[^15]: text`: the footnote's sentences form section `N15`.
            if let Some(rest) = line.strip_prefix("[^")
                && let Some((n, _)) = rest.split_once("]:")
                && !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
            {
                section = Some(format!("N{n}"));
            }
        } else if line.starts_with('#') {
            let words: Vec<&str> = line.trim_start_matches('#').split_whitespace().collect();
            if let Some(w) = words.first()
                && !w.is_empty()
                && w.chars().all(|c| c.is_ascii_digit() || c == '.')
            {
                section = Some(w.trim_end_matches('.').to_owned());
            }
            continue;
        }
        let Some(sec) = &section else { continue };
        for sentence in split_sentences(line) {
            if let Some(level) = level_of(sentence) {
                let n = counts.entry(sec.clone()).or_insert(0);
                *n += 1;
                out.push((format!("X{}-{sec}-{:02}", xep.trim_start_matches('0'), n), level));
            }
        }
    }
    out
}

/// Splits after `.`, `;` or `:` followed by whitespace.
fn split_sentences(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = line.as_bytes();
    for i in 0..b.len() {
        if matches!(b[i], b'.' | b';' | b':') && b.get(i + 1).is_some_and(u8::is_ascii_whitespace) {
            out.push(&line[start..=i]);
            start = i + 1;
        }
    }
    out.push(&line[start..]);
    out
}

struct Row {
    level: String,
    implemented: String,
    test: String,
}

fn table(doc: &str) -> Result<BTreeMap<String, Row>, String> {
    let mut rows = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| X")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 5 {
            return Err(format!("conformance.md: a row needs 5 cells: {line}"));
        }
        let row =
            Row { level: cells[1].to_owned(), implemented: cells[3].to_owned(), test: cells[4].to_owned() };
        if rows.insert(cells[0].to_owned(), row).is_some() {
            return Err(format!("conformance.md: {} appears twice", cells[0]));
        }
    }
    Ok(rows)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// IDs quoted in code comments.
fn code_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for line in text.lines() {
        let Some(c) = line.find("//") else { continue };
        for w in
            line[c..].split(|ch: char| ch.is_whitespace() || ch == ',' || ch == ':' || ch == '(' || ch == ')')
        {
            let w = w.trim_end_matches('.');
            let mut parts = w.splitn(3, '-');
            if let (Some(x), Some(sec), Some(n)) = (parts.next(), parts.next(), parts.next())
                && x.len() > 1
                && x.starts_with('X')
                && x[1..].chars().all(|c| c.is_ascii_digit())
                && !sec.is_empty()
                && (sec.chars().all(|c| c.is_ascii_digit() || c == '.')
                    || sec
                        .strip_prefix('N')
                        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
                && n.len() == 2
                && n.chars().all(|c| c.is_ascii_digit())
            {
                ids.insert(w.to_owned());
            }
        }
    }
    ids
}

/// `crates/<crate>/src/...`: the code that enforces requirements (not tests, benches or examples).
fn is_library_source(root: &Path, path: &Path) -> bool {
    path.strip_prefix(root.join("crates")).is_ok_and(|rel| {
        let mut parts = rel.components();
        parts.next();
        parts.next().is_some_and(|c| c.as_os_str() == "src")
    })
}

pub(crate) fn run(root: &Path) -> Result<(), String> {
    let doc = std::fs::read_to_string(root.join("docs/conformance.md"))
        .map_err(|e| format!("docs/conformance.md: {e}"))?;
    let rows = table(&doc)?;
    let spec_dir = root.join("../shared/spec");
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for xep in SCOPE {
        let path = spec_dir.join(format!("xep-{xep}.md"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            // Without the specifications (a checkout without ../shared), only the table, the
            // tests and the code are checked.
            println!("XEP-{xep}: {} not found: sentence coverage not checked", path.display());
            continue;
        };
        let expected = sentences(xep, &text);
        let prefix = format!("X{}-", xep.trim_start_matches('0'));
        let traced = rows.keys().any(|k| k.starts_with(&prefix));
        if !traced {
            problems
                .push(format!("XEP-{xep}: not traced ({} normative sentences without rows)", expected.len()));
            summary.push(format!("XEP-{xep}: 0 of {} traced", expected.len()));
            continue;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, level) in &expected {
            *counts.entry(level).or_insert(0) += 1;
            match rows.get(id) {
                None => problems.push(format!("{id} ({level}): no row")),
                Some(r) if r.level != *level => {
                    problems.push(format!("{id}: the table says {}, the specification {level}", r.level));
                }
                Some(_) => {}
            }
        }
        let ids: BTreeSet<&String> = expected.iter().map(|(i, _)| i).collect();
        for id in rows.keys().filter(|k| k.starts_with(&prefix)) {
            if !ids.contains(id) {
                problems.push(format!("{id}: a row for no normative sentence"));
            }
        }
        let c: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
        summary.push(format!("XEP-{xep}: {} of {} traced ({})", ids.len(), expected.len(), c.join(", ")));
    }
    // Implementation and tests.
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let sources: Vec<(PathBuf, String)> =
        files.into_iter().filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t))).collect();
    for (id, r) in &rows {
        let must = r.level == "MUST" || r.level == "MUST NOT" || r.level == "REQUIRED";
        let implemented = r.implemented.starts_with("yes") || r.implemented.starts_with("n/a");
        if must && !implemented {
            problems.push(format!("{id} ({}): not implemented", r.level));
        }
        if r.test == "by construction" {
            if !r.implemented.contains("by construction") {
                problems.push(format!("{id}: `by construction` without the reason in the implemented cell"));
            }
            continue;
        }
        if must && r.test.is_empty() && !r.implemented.starts_with("n/a") {
            problems.push(format!("{id} ({}): no test", r.level));
        }
        // `crate: a; b; other-crate: c`: a name without a crate is in the previous one's.
        let mut krate: Option<&str> = None;
        for t in r.test.split(';').map(str::trim).filter(|t| !t.is_empty()) {
            let name = match t.split_once(':') {
                Some((k, n)) => {
                    krate = Some(k.trim());
                    n
                }
                None => t,
            };
            let Some(krate) = krate else {
                problems.push(format!("{id}: test `{t}` is not `crate: function`"));
                continue;
            };
            let dir = root.join("crates").join(krate);
            let needle = format!("fn {}(", name.trim());
            if !sources.iter().any(|(p, text)| p.starts_with(&dir) && text.contains(&needle)) {
                problems.push(format!("{id}: test {t} does not exist"));
            }
        }
    }
    let mut quoted: BTreeSet<String> = BTreeSet::new();
    for (path, text) in &sources {
        let ids = code_ids(text);
        for id in &ids {
            if !rows.contains_key(id) {
                problems.push(format!("{}: {id} is not in docs/conformance.md", path.display()));
            }
        }
        if is_library_source(root, path) {
            quoted.extend(ids);
        }
    }
    let mut unquoted = 0;
    for (id, r) in &rows {
        let must = r.level == "MUST" || r.level == "MUST NOT" || r.level == "REQUIRED";
        if !must || !r.implemented.starts_with("yes") || quoted.contains(id) {
            continue;
        }
        if r.implemented.contains("by construction") {
            if !r.implemented.contains('`') {
                problems.push(format!("{id}: `by construction` must name (in backquotes) the type or API"));
            }
            continue;
        }
        unquoted += 1;
        problems.push(format!(
            "{id} ({}): implemented, but no library code quotes the ID where it is enforced",
            r.level
        ));
    }
    summary.push(format!("MUST rows implemented without their ID at an enforcing line: {unquoted}"));
    for s in &summary {
        println!("{s}");
    }
    if problems.is_empty() {
        println!("conformance: ok");
        return Ok(());
    }
    for p in &problems {
        println!("conformance: {p}");
    }
    Err(format!("{} conformance problems", problems.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_sentences() {
        assert_eq!(level_of("Alice MUST NOT send it"), Some("MUST NOT"));
        assert_eq!(level_of("it SHOULD, and MUST"), Some("SHOULD"));
        assert_eq!(level_of("MAYBE not MUSTARD"), None);
        let text = "# XEP\n## 5 Content\nA MUST b. C MAY d; e.\n### 5.1 Sub\nE SHOULD f.\n## Notes\nG MUST h.\n[^3]: I MUST j. K MAY l.\n\n[^4]: no keyword.";
        let s = sentences("0999", text);
        let ids: Vec<(&str, &str)> = s.iter().map(|(i, l)| (i.as_str(), *l)).collect();
        assert_eq!(
            ids,
            [
                ("X999-5-01", "MUST"),
                ("X999-5-02", "MAY"),
                ("X999-5.1-01", "SHOULD"),
                ("X999-N3-01", "MUST"),
                ("X999-N3-02", "MAY")
            ]
        );
    }

    #[test]
    fn ids_in_code_comments_only() {
        let ids = code_ids(
            "let x = 1; // X999-8-04 X116-4.5.1-03: checks\nlet s = \"X999-9-01\";\n// X999-8-4 X155-N15-01",
        );
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["X116-4.5.1-03", "X155-N15-01", "X999-8-04"]);
    }

    #[test]
    fn table_rows() {
        let rows =
            table("| ID | level |\n|---|\n| X999-5-01 | MUST | r | yes | esession-stanza: t |\n").unwrap();
        assert_eq!(rows["X999-5-01"].test, "esession-stanza: t");
        assert!(table("| X999-5-01 | MUST | r | yes |\n").is_err());
        assert!(table("| X999-5-01 | MUST | r | yes | t |\n| X999-5-01 | MUST | r | yes | t |\n").is_err());
    }
}
