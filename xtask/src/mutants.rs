//! `cargo xtask mutants [CRATE...] [--file PATH]... [--shard K/N] [--list]`: mutation testing with
//! cargo-mutants (installed with `cargo install cargo-mutants --locked` when missing).
//!
//! Each mutant (a function body replaced, an operator flipped, a condition negated) is built in a
//! copy of the tree and the crate's own tests are run against it: a mutant the tests do not
//! catch ("missed") is a requirement no test proves. The default crates are the protocol
//! layers whose rows the conformance table claims: esession-stanza and esession-negotiate.
//! Not part of `test` or CI (it takes hours on two cores); the figures go into
//! docs/conformance.md ("Mutation testing"). The results are in `mutants.out/` (`caught.txt`,
//! `missed.txt`, `timeout.txt`, `unviable.txt`).

use std::process::Command;

use crate::{cargo, run};

const DEFAULT: [&str; 2] = ["esession-stanza", "esession-negotiate"];

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    if Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let mut install = cargo();
        install.args(["install", "cargo-mutants", "--locked"]);
        run(install)?;
    }
    let mut crates: Vec<&str> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--file" | "--shard" | "-F" | "--re" | "-e" | "--exclude" => {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                extra.push(a.clone());
                extra.push(v.clone());
            }
            "--list" => extra.push(a.clone()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => crates.push(s),
        }
    }
    if crates.is_empty() {
        crates.extend(DEFAULT);
    }
    for krate in crates {
        let out = crate::root().join("target/mutants").join(krate);
        std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let mut m = cargo();
        // Each crate's own tests judge its mutants; one job, the machines have two cores.
        // ESESSION_QUICK: the slowest tests (the negotiation tamper matrix) sample their cases,
        // so the figures are a lower bound of what the full suite catches.
        m.env("ESESSION_QUICK", "1");
        // The `mutants` profile (Cargo.toml) keeps the mutants' builds apart from the test
        // profile's, so that the tree's own builds are not judged against a mutant.
        m.args(["mutants", "--package", krate, "--test-package", krate, "--jobs", "1"])
            .args(["--profile", "mutants"])
            .args(["--output", &format!("target/mutants/{krate}")])
            .args(&extra);
        // cargo-mutants exits 2 when mutants are missed: that is a result to read, not a failure.
        eprintln!("xtask: running {m:?}");
        let status = m.status().map_err(|e| format!("cannot start cargo mutants: {e}"))?;
        match status.code() {
            Some(0 | 2 | 3) => eprintln!(
                "xtask: {krate}: see target/mutants/{krate}/mutants.out/{{caught,missed,timeout,unviable}}.txt"
            ),
            _ => return Err(format!("cargo mutants on {krate} failed: {status}")),
        }
    }
    Ok(())
}
