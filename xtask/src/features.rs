//! `cargo xtask features`: every library crate and the CLI checked (`cargo check`, warnings are
//! errors) with `--no-default-features` and with `--all-features`, one crate at a time, so that a
//! feature a crate leaves off cannot be switched back on by a sibling's defaults (cargo unifies
//! features within one invocation). Then the MSRV (see [`msrv`]).
//!
//! Warnings are read from cargo's output rather than forced with `RUSTFLAGS=-D warnings`: a
//! different `RUSTFLAGS` would rebuild every dependency in the shared target directory.

use crate::{cargo, root};

/// The published packages, lowest layer first.
pub(crate) const CRATES: [&str; 8] = [
    "esession-crypto",
    "esession-forms",
    "esession-stanza",
    "esession-negotiate",
    "esession-offline",
    "esession-xmpp",
    "esession-vectors",
    "esession-cli",
];

/// `cargo check -q -p CRATE FLAGS...`; fails on an error or on any warning.
fn check(krate: &str, flags: &[&str]) -> Result<(), String> {
    let mut c = cargo();
    c.args(["check", "--quiet", "-p", krate]).args(flags);
    eprintln!("xtask: running {c:?}");
    let out = c.output().map_err(|e| format!("cannot run cargo check: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.lines().any(|l| l.starts_with("warning")) {
        eprint!("{stderr}");
        return Err(format!("cargo check -p {krate} {} failed or warned", flags.join(" ")));
    }
    Ok(())
}

/// Every crate without its default features and with all of them.
pub(crate) fn run() -> Result<(), String> {
    for krate in CRATES {
        check(krate, &["--no-default-features"])?;
    }
    for krate in CRATES {
        check(krate, &["--all-features", "--all-targets"])?;
    }
    msrv()
}

/// The workspace's `rust-version` (the MSRV), from the root Cargo.toml.
fn workspace_msrv() -> Result<String, String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("rust-version = \"").and_then(|r| r.strip_suffix('"')))
        .map(str::to_owned)
        .ok_or_else(|| "no rust-version in [workspace.package]".to_owned())
}

/// The published crates whose Cargo.toml sets a `rust-version` of its own (not the
/// workspace's), with it.
fn own_rust_versions() -> Result<Vec<(String, String)>, String> {
    let mut own = Vec::new();
    for krate in CRATES {
        let path = root().join("crates").join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(v) =
            text.lines().find_map(|l| l.strip_prefix("rust-version = \"").and_then(|r| r.strip_suffix('"')))
        {
            own.push((krate.to_owned(), v.to_owned()));
        }
    }
    Ok(own)
}

/// "1.85" / "1.85.1" as comparable numbers.
fn version(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The MSRV check. With the toolchain installed (`rustup toolchain list`; `.ci/run` installs
/// it), the libraries and binaries are built with it (`cargo +MSRV check --workspace`: what
/// users build; tests and examples are the project's own). Only a build finds a dependency that
/// needs a newer Rust without declaring it (rustyline 19 uses `cfg_select!`, stable in 1.95,
/// and declares no `rust-version`: see esession-cli's Cargo.toml). Without the toolchain, the
/// weaker check that remains is that no dependency in Cargo.lock declares a `rust-version`
/// above ours (cargo's MSRV-aware resolver, `resolver = "3"`, prefers such versions), said so
/// on stderr. Besides, clippy (`cargo xtask test` runs it with warnings as errors) reads
/// `rust-version` and its `incompatible_msrv` lint flags standard-library APIs stabilized later.
pub(crate) fn msrv() -> Result<(), String> {
    let msrv = workspace_msrv()?;
    let toolchains = std::process::Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // The installed toolchain for a version: `1.90-x86_64-…` or `1.90.0-x86_64-…`.
    let installed = |v: &str| {
        toolchains
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|t| t.starts_with(&format!("{v}-")) || t.starts_with(&format!("{v}.0-")))
            .map(str::to_owned)
    };
    // Crates with a rust-version of their own (the CLI) are built with theirs, the rest with
    // the workspace's.
    let own = own_rust_versions()?;
    let own_toolchains: Option<Vec<String>> = own.iter().map(|(_, v)| installed(v)).collect();
    if let (Some(ws), Some(own_toolchains)) = (installed(&msrv), own_toolchains) {
        let mut c = std::process::Command::new("cargo");
        c.current_dir(root()).args([&format!("+{ws}"), "check", "--workspace", "--exclude", "xtask"]);
        for (krate, _) in &own {
            c.args(["--exclude", krate]);
        }
        crate::run(c)?;
        for ((krate, _), t) in own.iter().zip(&own_toolchains) {
            let mut c = std::process::Command::new("cargo");
            c.current_dir(root()).args([&format!("+{t}"), "check", "-p", krate]);
            crate::run(c)?;
        }
        return Ok(());
    }
    eprintln!(
        "xtask: toolchain {msrv} (the MSRV) is not installed: only the dependencies' declared \
         rust-version is checked, which misses a dependency that does not declare one (install \
         it with `rustup toolchain install {msrv} --profile minimal` for the real check)"
    );
    let out = cargo()
        .args(["metadata", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let json = String::from_utf8_lossy(&out.stdout);
    let ours = version(&msrv);
    let mut above = Vec::new();
    // In each package object "manifest_path" follows its dependencies and targets (which have
    // none) and precedes its "rust_version": split there, each piece holds one package's path
    // and, when it declares one, its rust-version.
    for pkg in json.split("\"manifest_path\":\"").skip(1) {
        let path = pkg.split('"').next().unwrap_or("?");
        let name = path.rsplit('/').nth(1).unwrap_or(path);
        let Some(rv) = pkg.split("\"rust_version\":\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        // A crate of ours with a rust-version of its own (the CLI) states its own MSRV.
        if own.iter().any(|(krate, own_rv)| krate == name && own_rv == rv) {
            continue;
        }
        if version(rv) > ours {
            above.push(format!("{name} (rust-version {rv})"));
        }
    }
    if above.is_empty() {
        eprintln!("xtask: no dependency needs a Rust newer than {msrv}");
        Ok(())
    } else {
        Err(format!("dependencies need a Rust newer than the MSRV {msrv}: {}", above.join(", ")))
    }
}
