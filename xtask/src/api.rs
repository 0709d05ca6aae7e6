//! `cargo xtask api [--check]`: the public API of each library crate, one item per line, in
//! `docs/api/CRATE.txt` (checked in), so that a change to the public surface shows in review
//! and a breaking change is a decision.
//!
//! The listing is made from rustdoc's JSON output, which only the nightly toolchain writes
//! (`cargo +nightly rustdoc -- -Z unstable-options --output-format json`, default features): a
//! line per module, type, variant, public field, function and method (with its signature),
//! constant, trait, re-export (`use`), and trait implementation (`impl Trait for Type`, auto
//! traits included: losing `Send` is a breaking change). Blanket implementations are left out.
//! `--check` regenerates and fails when a listing differs from the checked-in one;
//! `cargo xtask test` runs it when a nightly toolchain is installed (it compiles every
//! dependency with nightly: minutes on a cold cache, seconds after) and says so loudly when not. `cargo public-api` would be the fuller tool; it is not installed here.

use crate::root;
use serde_json::Value;
use std::collections::BTreeSet;

/// The library crates whose API is recorded (the CLI has none; the vector checker is a tool).
const LIBS: [&str; 6] = [
    "esession-crypto",
    "esession-forms",
    "esession-stanza",
    "esession-negotiate",
    "esession-offline",
    "esession-xmpp",
];

/// The check `cargo xtask test` runs: `api --check` when the nightly toolchain is installed,
/// otherwise a loud note that the listings were not compared.
pub(crate) fn check_if_nightly() -> Result<(), String> {
    let toolchains = std::process::Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if toolchains.lines().any(|l| l.starts_with("nightly")) {
        main(&["--check".to_owned()])
    } else {
        eprintln!("xtask: no nightly toolchain: the public API listings (docs/api/) were NOT compared");
        Ok(())
    }
}

/// `cargo xtask api [--check]`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [c] if c == "--check" => true,
        _ => return Err("usage: cargo xtask api [--check]".into()),
    };
    let dir = root().join("docs/api");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut changed = Vec::new();
    for krate in LIBS {
        let listing = listing(krate)?;
        let path = dir.join(format!("{krate}.txt"));
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != listing {
            changed.push(krate);
            if !check {
                std::fs::write(&path, &listing).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    if check && !changed.is_empty() {
        return Err(format!(
            "the public API of {} changed: run `cargo xtask api` and review the diff of docs/api/",
            changed.join(", ")
        ));
    }
    eprintln!("xtask: public API listings {}", if changed.is_empty() { "unchanged" } else { "written" });
    Ok(())
}

/// Runs rustdoc (nightly, JSON) on one crate and renders its listing.
fn listing(krate: &str) -> Result<String, String> {
    // Not `crate::cargo()` (the cargo running xtask): `+nightly` needs the rustup proxy.
    let mut c = std::process::Command::new("cargo");
    c.current_dir(root())
        .args(["+nightly", "rustdoc", "--quiet", "-p", krate, "--lib", "--", "-Z", "unstable-options"])
        .args(["--output-format", "json"]);
    crate::run(c)?;
    let file = root().join("target/doc").join(format!("{}.json", krate.replace('-', "_")));
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut lines = BTreeSet::new();
    let root_id = doc["root"].to_string();
    walk(&doc, &root_id, krate.replace('-', "_").as_str(), &mut lines);
    let mut out = format!("# The public API of {krate} (cargo xtask api; default features).\n");
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Ok(out)
}

fn item<'a>(doc: &'a Value, id: &str) -> Option<&'a Value> {
    doc["index"].get(id)
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter(|x| !x.is_null()).map(Value::to_string).collect())
        .unwrap_or_default()
}

/// Lists the items of module `id` at `path`, recursing into public modules.
fn walk(doc: &Value, id: &str, path: &str, out: &mut BTreeSet<String>) {
    let Some(m) = item(doc, id) else { return };
    for child in ids(&m["inner"]["module"]["items"]) {
        let Some(it) = item(doc, &child) else { continue };
        let name = it["name"].as_str().unwrap_or("_");
        render(doc, &child, it, path, name, out);
    }
}

/// One item, listed under the public path `path::name`. A re-export of one of the crate's own
/// items (`pub use private_module::Type`) lists the item itself at the re-exported path, since
/// that is the only path users can name; a re-export of another crate is listed as a `use`.
fn render(doc: &Value, id: &str, it: &Value, path: &str, name: &str, out: &mut BTreeSet<String>) {
    let here = format!("{path}::{name}");
    let Some((kind, body)) = it["inner"].as_object().and_then(|o| o.iter().next()) else { return };
    match kind.as_str() {
        "module" => {
            out.insert(format!("mod {here}"));
            walk(doc, id, &here, out);
        }
        "use" => {
            let target = body["id"].to_string();
            let local = item(doc, &target).filter(|t| t["crate_id"].as_u64() == Some(0));
            let glob = body["is_glob"].as_bool() == Some(true);
            let used = body["name"].as_str().unwrap_or(name);
            match local {
                Some(_) if glob => walk(doc, &target, path, out), // `pub use module::*`
                Some(t) => render(doc, &target, t, path, used, out),
                None => {
                    let src = body["source"].as_str().unwrap_or("?");
                    out.insert(format!("use {path}::{used} = {src}{}", if glob { "::*" } else { "" }));
                }
            }
        }
        "struct" | "enum" | "union" | "trait" => {
            let attrs = it["attrs"].to_string();
            let ne = if attrs.contains("non_exhaustive") { " #[non_exhaustive]" } else { "" };
            out.insert(format!("{kind} {here}{}{ne}", generics(&body["generics"])));
            members(doc, kind, body, &here, out);
        }
        "function" => {
            out.insert(format!("fn {here}{}", sig(body)));
        }
        "constant" | "static" => {
            out.insert(format!("{kind} {here}: {}", ty(&body["type"])));
        }
        "type_alias" => {
            out.insert(format!("type {here} = {}", ty(&body["type"])));
        }
        other => {
            out.insert(format!("{other} {here}"));
        }
    }
}

/// Fields, variants, trait items and implementations of a type.
fn members(doc: &Value, kind: &str, body: &Value, here: &str, out: &mut BTreeSet<String>) {
    let mut list: Vec<String> = Vec::new();
    if kind == "enum" {
        list.extend(ids(&body["variants"]));
    }
    if kind == "trait" {
        list.extend(ids(&body["items"]));
    }
    if let Some(fields) = body["kind"]["plain"]["fields"].as_array() {
        list.extend(fields.iter().map(Value::to_string));
    }
    if let Some(fields) = body["kind"]["tuple"].as_array() {
        list.extend(fields.iter().filter(|x| !x.is_null()).map(Value::to_string));
    }
    for id in list {
        let Some(it) = item(doc, &id) else { continue };
        let name = it["name"].as_str().unwrap_or("_");
        match it["inner"].as_object().and_then(|o| o.iter().next()) {
            Some((k, b)) if k == "variant" => {
                let attrs = it["attrs"].to_string();
                let ne = if attrs.contains("non_exhaustive") { " #[non_exhaustive]" } else { "" };
                out.insert(format!("variant {here}::{name}{}{ne}", variant(doc, b)));
            }
            Some((k, b)) if k == "struct_field" => {
                out.insert(format!("field {here}.{name}: {}", ty(b)));
            }
            Some((k, b)) if k == "function" => {
                out.insert(format!("fn {here}::{name}{}", sig(b)));
            }
            Some((k, _)) => {
                out.insert(format!("{k} {here}::{name}"));
            }
            None => {}
        }
    }
    for imp in ids(&body["impls"]) {
        let Some(it) = item(doc, &imp) else { continue };
        let b = &it["inner"]["impl"];
        if !b["blanket_impl"].is_null() {
            continue;
        }
        if b["trait"].is_null() {
            for f in ids(&b["items"]) {
                let Some(fi) = item(doc, &f) else { continue };
                if fi["visibility"].as_str() != Some("public") {
                    continue;
                }
                let name = fi["name"].as_str().unwrap_or("_");
                match fi["inner"].as_object().and_then(|o| o.iter().next()) {
                    Some((k, fb)) if k == "function" => {
                        out.insert(format!("fn {here}::{name}{}", sig(fb)));
                    }
                    Some((k, fb)) if k == "assoc_const" => {
                        out.insert(format!("const {here}::{name}: {}", ty(&fb["type"])));
                    }
                    Some((k, _)) => {
                        out.insert(format!("{k} {here}::{name}"));
                    }
                    None => {}
                }
            }
        } else {
            let neg = if b["is_negative"].as_bool() == Some(true) { "!" } else { "" };
            out.insert(format!("impl {neg}{} for {}", path_ty(&b["trait"]), ty(&b["for"])));
        }
    }
}

fn variant(doc: &Value, b: &Value) -> String {
    let kind = &b["kind"];
    if let Some(t) = kind["tuple"].as_array() {
        let parts: Vec<String> = t
            .iter()
            .map(|f| item(doc, &f.to_string()).map_or("_".to_owned(), |fi| ty(&fi["inner"]["struct_field"])))
            .collect();
        return format!("({})", parts.join(", "));
    }
    if let Some(fs) = kind["struct"]["fields"].as_array() {
        let parts: Vec<String> = fs
            .iter()
            .filter_map(|f| item(doc, &f.to_string()))
            .map(|fi| format!("{}: {}", fi["name"].as_str().unwrap_or("_"), ty(&fi["inner"]["struct_field"])))
            .collect();
        return format!(" {{ {} }}", parts.join(", "));
    }
    String::new()
}

fn generics(g: &Value) -> String {
    let params: Vec<String> = g["params"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if params.is_empty() { String::new() } else { format!("<{}>", params.join(", ")) }
}

fn sig(f: &Value) -> String {
    let inputs: Vec<String> = f["sig"]["inputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let name = p[0].as_str().unwrap_or("_");
                    if name == "self" { ty_self(&p[1]) } else { format!("{name}: {}", ty(&p[1])) }
                })
                .collect()
        })
        .unwrap_or_default();
    let out = &f["sig"]["output"];
    let ret = if out.is_null() { String::new() } else { format!(" -> {}", ty(out)) };
    format!("{}({}){ret}", generics(&f["generics"]), inputs.join(", "))
}

fn ty_self(t: &Value) -> String {
    match ty(t).as_str() {
        "Self" => "self".into(),
        "&Self" => "&self".into(),
        "&mut Self" => "&mut self".into(),
        other => format!("self: {other}"),
    }
}

fn path_ty(p: &Value) -> String {
    let name = p["path"].as_str().unwrap_or("?").to_owned();
    let args = &p["args"]["angle_bracketed"]["args"];
    let list: Vec<String> = args
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    if !x["type"].is_null() {
                        ty(&x["type"])
                    } else if let Some(l) = x["lifetime"].as_str() {
                        l.to_owned()
                    } else {
                        "_".to_owned()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut list = list;
    // Associated type bindings: `Iterator<Item = T>`.
    if let Some(cs) = p["args"]["angle_bracketed"]["constraints"].as_array() {
        for c in cs {
            let bound = &c["binding"]["equality"]["type"];
            if !bound.is_null() {
                list.push(format!("{} = {}", c["name"].as_str().unwrap_or("?"), ty(bound)));
            }
        }
    }
    if list.is_empty() { name } else { format!("{name}<{}>", list.join(", ")) }
}

/// A compact rendering of a rustdoc JSON type.
fn ty(t: &Value) -> String {
    let Some((k, b)) = t.as_object().and_then(|o| o.iter().next()) else { return "?".into() };
    match k.as_str() {
        "resolved_path" => path_ty(b),
        "primitive" | "generic" => b.as_str().unwrap_or("?").to_owned(),
        "borrowed_ref" => {
            let m = if b["is_mutable"].as_bool() == Some(true) { "mut " } else { "" };
            let l = b["lifetime"].as_str().map(|l| format!("{l} ")).unwrap_or_default();
            format!("&{l}{m}{}", ty(&b["type"]))
        }
        "slice" => format!("[{}]", ty(b)),
        "array" => format!("[{}; {}]", ty(&b["type"]), b["len"].as_str().unwrap_or("?")),
        "tuple" => {
            let parts: Vec<String> = b.as_array().map(|a| a.iter().map(ty).collect()).unwrap_or_default();
            format!("({})", parts.join(", "))
        }
        "impl_trait" | "dyn_trait" => {
            let bounds: Vec<String> = if k == "impl_trait" {
                b.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| match x["outlives"].as_str() {
                                Some(l) => l.to_owned(),
                                None => path_ty(&x["trait_bound"]["trait"]),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                b["traits"]
                    .as_array()
                    .map(|a| a.iter().map(|x| path_ty(&x["trait"])).collect())
                    .unwrap_or_default()
            };
            format!("{} {}", if k == "impl_trait" { "impl" } else { "dyn" }, bounds.join(" + "))
        }
        "qualified_path" => format!(
            "<{} as {}>::{}",
            ty(&b["self_type"]),
            path_ty(&b["trait"]),
            b["name"].as_str().unwrap_or("?")
        ),
        "raw_pointer" => format!(
            "*{} {}",
            if b["is_mutable"].as_bool() == Some(true) { "mut" } else { "const" },
            ty(&b["type"])
        ),
        other => other.to_owned(),
    }
}
