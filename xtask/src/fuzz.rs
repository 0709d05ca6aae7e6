//! `cargo xtask fuzz --smoke [TARGET...]` (every target, or those named, for 20 seconds) and
//! `cargo xtask fuzz TARGET [--minutes N]` (one long run). Uses cargo-fuzz with
//! `--sanitizer none`, which runs on the stable toolchain; installs cargo-fuzz when missing.

use crate::{root, run};
use std::process::Command;

const TARGETS: &[&str] = &[
    "content",
    "crypto_decode",
    "dataform",
    "esession_form",
    "interaction",
    "keyvalue",
    "offline",
    "stanza",
];

fn ensure_cargo_fuzz() -> Result<(), String> {
    let ok = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Ok(());
    }
    let mut c = Command::new("cargo");
    c.args(["install", "--locked", "cargo-fuzz"]);
    run(c)
}

fn fuzz(target: &str, seconds: u64) -> Result<(), String> {
    let dir = root().join("fuzz");
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let seeds = dir.join("seeds").join(target);
    let mut c = Command::new("cargo");
    c.current_dir(&dir).args(["fuzz", "run", "--sanitizer", "none", target]);
    c.arg(&corpus);
    if seeds.is_dir() {
        c.arg(&seeds);
    }
    // Inputs up to 256 KiB: deep nesting and long values need room (a server's stanza limit).
    c.args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1", "-max_len=262144"]);
    // A dictionary of the target's tokens, where there is one.
    let dict = dir.join("dicts").join(format!("{target}.dict"));
    if dict.is_file() {
        c.arg(format!("-dict={}", dict.display()));
    }
    run(c)
}

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    ensure_cargo_fuzz()?;
    if args.iter().any(|a| a == "--smoke") {
        // `--smoke TARGET...`: those only.
        let named: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--")).collect();
        if let Some(t) = named.iter().find(|t| !TARGETS.contains(t)) {
            return Err(format!("unknown target {t}; targets: {}", TARGETS.join(", ")));
        }
        for t in if named.is_empty() { TARGETS.to_vec() } else { named } {
            fuzz(t, 20)?;
        }
        return Ok(());
    }
    let Some(target) = args.first().filter(|a| !a.starts_with("--")) else {
        return Err(format!(
            "usage: cargo xtask fuzz --smoke [TARGET...] | TARGET [--minutes N]; targets: {}",
            TARGETS.join(", ")
        ));
    };
    if !TARGETS.contains(&target.as_str()) {
        return Err(format!("unknown target {target}; targets: {}", TARGETS.join(", ")));
    }
    let minutes = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(5);
    fuzz(target, minutes * 60)
}
