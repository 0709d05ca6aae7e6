//! The checker's output: one [`Line`] per check (`ok NAME`, `FAIL NAME: expected .. got ..`,
//! `skip NAME: why`) and the summary `N passed, M failed` (`, K skipped` when anything was
//! skipped).

use core::fmt;

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The check passed.
    Ok,
    /// The check failed, with what was expected and what was found.
    Fail(String),
    /// The check could not be made, with the reason.
    Skip(String),
}

/// One check and its verdict. `Display` writes the line the command prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What was checked: the vector's name, then the check.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
}

impl Line {
    pub(crate) fn new(name: impl Into<String>, verdict: Verdict) -> Self {
        Self { name: name.into(), verdict }
    }

    /// Whether the check passed.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.verdict == Verdict::Ok
    }

    /// Whether the check failed.
    #[must_use]
    pub fn is_fail(&self) -> bool {
        matches!(self.verdict, Verdict::Fail(_))
    }

    /// Whether the check was skipped.
    #[must_use]
    pub fn is_skip(&self) -> bool {
        matches!(self.verdict, Verdict::Skip(_))
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Ok => write!(f, "ok {}", self.name),
            Verdict::Fail(why) => write!(f, "FAIL {}: {why}", self.name),
            Verdict::Skip(why) => write!(f, "skip {}: {why}", self.name),
        }
    }
}

/// Every line of a run, in order, with the counts.
///
/// `Display` writes the lines and the summary, one per line, as `esession vectors check` prints
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    lines: Vec<Line>,
    passed: usize,
    failed: usize,
    skipped: usize,
}

/// A position in a report, to count what was added since (see [`Report::mark`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(usize);

impl Report {
    /// An empty report.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines, in the order the checks ran.
    #[must_use]
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// How many checks passed.
    #[must_use]
    pub fn passed(&self) -> usize {
        self.passed
    }

    /// How many checks failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// How many checks could not be made.
    #[must_use]
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Whether nothing failed (the command's exit status 0).
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }

    /// The last line: `N passed, M failed`, then `, K skipped` when anything was skipped.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        s
    }

    /// Adds a line.
    pub fn push(&mut self, line: Line) {
        match line.verdict {
            Verdict::Ok => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::Skip(_) => self.skipped += 1,
        }
        self.lines.push(line);
    }

    pub(crate) fn ok(&mut self, name: &str) {
        self.push(Line::new(name, Verdict::Ok));
    }

    pub(crate) fn fail(&mut self, name: &str, why: &str) {
        self.push(Line::new(name, Verdict::Fail(why.to_owned())));
    }

    pub(crate) fn skip(&mut self, name: &str, why: &str) {
        self.push(Line::new(name, Verdict::Skip(why.to_owned())));
    }

    /// Compares octets; a computation error is a failure.
    pub(crate) fn bytes(&mut self, name: &str, expected: &[u8], got: Result<Vec<u8>, String>) {
        self.push(Line::new(name, compare(expected, got)));
    }

    /// A yes/no check.
    pub(crate) fn truth(&mut self, name: &str, ok: bool, why: &str) {
        if ok { self.ok(name) } else { self.fail(name, why) }
    }

    /// The current position.
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.lines.len())
    }

    /// The lines added since `mark`.
    pub(crate) fn since(&self, mark: Mark) -> &[Line] {
        self.lines.get(mark.0..).unwrap_or(&[])
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// The verdict of comparing octets.
pub(crate) fn compare(expected: &[u8], got: Result<Vec<u8>, String>) -> Verdict {
    match got {
        Ok(g) if g == expected => Verdict::Ok,
        Ok(g) => Verdict::Fail(format!("expected {} got {}", short(expected), short(&g))),
        Err(e) => Verdict::Fail(format!("expected {} got error: {e}", short(expected))),
    }
}

/// Octets as hex, cut after 24 octets.
pub(crate) fn short(b: &[u8]) -> String {
    let h = hex::encode(b);
    if h.len() > 48 { format!("{}..({} octets)", &h[..48], b.len()) } else { h }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_summary_are_the_documented_format() {
        let mut r = Report::new();
        r.ok("v K");
        r.fail("v MA", "expected 00 got 01");
        assert_eq!(r.summary(), "1 passed, 1 failed");
        r.skip("v signA", "no key");
        assert_eq!(
            r.to_string(),
            "ok v K\nFAIL v MA: expected 00 got 01\nskip v signA: no key\n1 passed, 1 failed, 1 skipped"
        );
        assert!(!r.is_success());
    }
}
