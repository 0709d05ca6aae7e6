//! `cargo xtask package`: the crates as a user gets them from a registry.
//!
//! 1. Every packaged Rust file is scanned for `include_str!`, `include_bytes!` and `#[path]`
//!    whose target is not itself in the package (a test or bench that reads the repository
//!    would not build from the published sources; repository-only tests are listed in each
//!    crate's `exclude`).
//! 2. `cargo package --workspace` builds every crate from its packaged sources, the unpublished
//!    path dependencies resolved from the packages made in the same run (cargo's local overlay
//!    registry). `--allow-dirty` packages the working tree as it is, so that the check runs
//!    before a commit too.
//!
//! The package verification compiles the esession crates once more from `target/package/`,
//! once per feature set the packages ask of each other; the dependencies are shared with the
//! ordinary build (the workspace's dev profile is passed on). `--quick` stops after step 1
//! plus `cargo package --no-verify` (the manifests and file lists only).

use crate::features::CRATES;
use crate::{cargo, root, run};
use std::path::{Component, Path, PathBuf};

/// `cargo package --list -p CRATE`: the files of the package, relative to the crate.
fn list(krate: &str) -> Result<Vec<String>, String> {
    let out = cargo()
        .args(["package", "--list", "--allow-dirty", "-p", krate])
        .output()
        .map_err(|e| format!("cannot run cargo package --list: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo package --list -p {krate}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

/// `a/b/../c` -> `a/c` without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The string literal right after `marker` on `line` (`include_str!("..")`, `#[path = ".."]`).
fn literal_after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    Some(&rest[start..start + len])
}

/// The compile-time references of the packaged `.rs` files of one crate that leave the package.
fn outside_references(krate: &str) -> Result<Vec<String>, String> {
    let files = list(krate)?;
    let dir = root().join("crates").join(krate);
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| f.ends_with(".rs")) {
        let text = std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{krate}/{f}: {e}"))?;
        let parent = Path::new(f).parent().unwrap_or(Path::new(""));
        let mut path_attr_dir = parent.to_path_buf();
        if !f.ends_with("mod.rs") && !f.ends_with("main.rs") && !f.ends_with("lib.rs") {
            // `#[path]` in a non-mod-rs file is relative to the directory named after the file.
            path_attr_dir = Path::new(f).with_extension("");
        }
        for (n, line) in text.lines().enumerate() {
            for (marker, base) in
                [("include_str!(", parent), ("include_bytes!(", parent), ("#[path", path_attr_dir.as_path())]
            {
                let Some(target) = literal_after(line, marker) else { continue };
                if line.contains("concat!(") {
                    bad.push(format!("{krate}/{f}:{}: a computed include ({line})", n + 1));
                    continue;
                }
                let resolved = normalize(&base.join(target));
                let in_package = files.iter().any(|p| Path::new(p) == resolved);
                if !in_package {
                    bad.push(format!("{krate}/{f}:{}: {target} is not in the package", n + 1));
                }
            }
        }
    }
    Ok(bad)
}

/// The package check (see the module docs); `quick` skips the verification build.
pub(crate) fn run_package(quick: bool) -> Result<(), String> {
    let mut bad = Vec::new();
    for krate in CRATES {
        bad.extend(outside_references(krate)?);
    }
    if !bad.is_empty() {
        return Err(format!("packaged files include files outside their package:\n  {}", bad.join("\n  ")));
    }
    eprintln!("xtask: no packaged file includes a file outside its package");
    let mut p = cargo();
    p.args(["package", "--workspace", "--exclude", "xtask", "--allow-dirty"]);
    // The packaged manifests carry no [profile] (a registry crate's profiles are ignored):
    // the workspace's dev profile is passed as configuration so that the verification reuses
    // the dependencies the ordinary build compiled instead of compiling them all again.
    p.args(["--config", "profile.dev.package.\"*\".opt-level=2"])
        .args(["--config", "profile.dev.package.xmpp-parsers.opt-level=0"]);
    if quick {
        p.arg("--no-verify");
    }
    run(p)
}

/// `cargo xtask package [--quick]`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    match args {
        [] => run_package(false),
        [q] if q == "--quick" => run_package(true),
        _ => Err("usage: cargo xtask package [--quick]".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_like_the_compiler() {
        assert_eq!(normalize(Path::new("tests/it/../vectors/a.json")), PathBuf::from("tests/vectors/a.json"));
        assert_eq!(normalize(Path::new("src/../../x")), PathBuf::from("../x"));
        assert_eq!(literal_after(r#"    include_str!("../a.txt");"#, "include_str!("), Some("../a.txt"));
        assert_eq!(literal_after(r#"#[path = "../s/mod.rs"]"#, "#[path"), Some("../s/mod.rs"));
        assert_eq!(literal_after("no include here", "include_str!("), None);
    }
}
