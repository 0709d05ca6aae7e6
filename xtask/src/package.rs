//! `cargo xtask package`: the crates as a user gets them from a registry.
//!
//! 1. Every packaged Rust file is scanned for `include_str!`, `include_bytes!` and `#[path]`
//!    whose target is not itself in the package (a test or bench that reads the repository
//!    would not build from the published sources; repository-only tests are listed in each
//!    crate's `exclude`).
//! 2. `cargo package --workspace --no-verify` makes the `.crate` files (the unpublished path
//!    dependencies resolved through cargo's local overlay registry); `--allow-dirty` packages
//!    the working tree as it is, so that the check runs before a commit too.
//! 3. Every package is built from its `.crate` (see [`verify`] for why this is not cargo's own
//!    verification, which reuses stale sources of sibling packages).
//!
//! `--quick` stops after step 2 (the manifests and file lists only).

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
    p.args(["package", "--workspace", "--exclude", "xtask", "--allow-dirty", "--no-verify"]);
    run(p)?;
    if quick {
        return Ok(());
    }
    verify()
}

/// The crate version all packages share (`[workspace.package] version`).
fn version() -> Result<String, String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("version = \"").and_then(|r| r.strip_suffix('"')))
        .map(str::to_owned)
        .ok_or_else(|| "no version in [workspace.package]".to_owned())
}

/// Builds every package from its `.crate` file, as `cargo package`'s own verification would.
///
/// Not cargo's verification: it resolves the unpublished esession dependencies through a
/// local registry whose crates it unpacks once into `$CARGO_HOME/registry/src` and then
/// treats as immutable (registry sources never change), so after a change a later run
/// silently builds a package against the *previous* packaged sources of its siblings (seen
/// here: esession-offline verified against an esession-forms without a function added since).
/// Here every `.crate` is unpacked afresh into `target/package/verify/`, a workspace of the
/// unpacked packages whose `[patch.crates-io]` points each esession dependency at its unpacked
/// sibling (path sources: rebuilt when they change), with the repository's dev profile and
/// Cargo.lock, checked in the shared target directory. Each package is checked alone (its own
/// feature set, lib and binaries, like cargo's verification, which builds: a check finds the same
/// missing files, features and dependencies at a fraction of the time and disk, and none of our
/// packages has a build script or links native code), then every target of every package is
/// checked with all features (the packaged tests, benches and examples build).
fn verify() -> Result<(), String> {
    let version = version()?;
    let pkg = root().join("target/package");
    let dir = pkg.join("verify");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut members = Vec::new();
    let mut patch = String::new();
    for krate in CRATES {
        let name = format!("{krate}-{version}");
        let mut tar = std::process::Command::new("tar");
        // `-m`: the files get the time of extraction, not the packaged one: cargo fingerprints
        // path sources by mtime, and with the packaged times a later run reused the shared
        // target's build of the previous sources (seen: esession-xmpp against an older
        // esession-negotiate).
        tar.arg("xzmf").arg(pkg.join(format!("{name}.crate"))).arg("-C").arg(&dir);
        run(tar)?;
        members.push(format!("\"{name}\""));
        patch.push_str(&format!("{krate} = {{ path = \"{name}\" }}\n"));
    }
    let manifest = format!(
        "# Written by `cargo xtask package`: the packaged crates, unpacked.\n[workspace]\nresolver = \"3\"\n\
         members = [{}]\n\n[patch.crates-io]\n{patch}\n[profile.dev]\ndebug = \"line-tables-only\"\n\n\
         [profile.dev.package.\"*\"]\nopt-level = 2\ndebug = false\n\n\
         [profile.dev.package.xmpp-parsers]\nopt-level = 0\n",
        members.join(", ")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| format!("verify/Cargo.toml: {e}"))?;
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let target = root().join("target");
    for krate in CRATES {
        let mut b = cargo();
        b.current_dir(&dir).args(["check", "--quiet", "-p", krate, "--target-dir"]).arg(&target);
        run(b)?;
    }
    let mut c = cargo();
    c.current_dir(&dir).args([
        "check",
        "--quiet",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--target-dir",
    ]);
    c.arg(&target);
    run(c)?;
    eprintln!("xtask: every package compiles (cargo check) from its packaged sources");
    Ok(())
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
