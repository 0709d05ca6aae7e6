//! `cargo xtask bench [--quick]`: the criterion benchmarks and, in the same run, the matching
//! `openssl speed` figures and OpenSSL's constant-time modular exponentiation at our exponent
//! lengths (xtask/ref/modexp.c, built with the system's C compiler against libcrypto); prints
//! each ratio ours/OpenSSL and writes docs/performance.md. Every figure is the fastest sample
//! (ours: criterion's samples; OpenSSL's exponentiation: 20 blocks of 25 ms), and without
//! `--quick` the DH, stanza and negotiation comparisons are the best of three alternating runs
//! of each side: the speed of shared machines drifts by tens of percent within seconds.

use crate::{cargo, root};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

/// One of our benchmarks and the OpenSSL figure it is compared with.
enum Reference {
    /// OpenSSL throughput (bytes/s) of an `-evp` cipher or `-hmac` digest at `bytes`.
    Throughput { args: Vec<String>, bytes: u64 },
    /// OpenSSL operations per second, `field` of the `+F` line (2 = sign or derive, 3 = verify).
    Ops { alg: String, field: usize },
}

struct Pair {
    ours: String,
    reference: Reference,
    label: String,
}

fn pairs() -> Vec<Pair> {
    let mut v = Vec::new();
    for (ours, evp) in [("aes128-ctr", "aes-128-ctr"), ("aes256-ctr", "aes-256-ctr")] {
        for bytes in [64u64, 1024, 65536] {
            v.push(Pair {
                ours: format!("ctr/{ours}/{bytes}"),
                reference: Reference::Throughput { args: vec!["-evp".into(), evp.into()], bytes },
                label: format!("openssl speed -evp {evp} -bytes {bytes}"),
            });
        }
    }
    for bytes in [64u64, 1024, 65536] {
        v.push(Pair {
            ours: format!("hmac/sha256/{bytes}"),
            reference: Reference::Throughput { args: vec!["-hmac".into(), "sha256".into()], bytes },
            label: format!("openssl speed -hmac sha256 -bytes {bytes}"),
        });
    }
    for (group, bits) in [(14, 2048), (15, 3072), (16, 4096), (17, 6144), (18, 8192)] {
        for op in ["keygen", "agree"] {
            v.push(Pair {
                ours: format!("dh/{op}/modp{group}"),
                reference: Reference::Ops { alg: format!("ffdh{bits}"), field: 3 },
                label: format!("openssl speed ffdh{bits} (derive)"),
            });
        }
    }
    for (name, alg) in [("rsa2048", "rsa2048"), ("dsa2048_256", "dsa2048")] {
        for (op, field) in [("sign", 3), ("verify", 4)] {
            v.push(Pair {
                ours: format!("sign/{name}/{op}"),
                reference: Reference::Ops { alg: alg.into(), field },
                label: format!("openssl speed {alg} ({op})"),
            });
        }
    }
    v
}

/// Parses criterion's `--output-format bencher` lines: `test NAME ... bench: N ns/iter (+/- M)`.
fn parse_bencher(out: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("test ") else { continue };
        let Some((name, tail)) = rest.split_once(" ... bench:") else { continue };
        let ns: String = tail.split_whitespace().next().unwrap_or("").replace(',', "");
        if let Ok(ns) = ns.parse::<f64>() {
            m.insert(name.trim().to_owned(), ns);
        }
    }
    m
}

fn openssl(args: &[String]) -> Option<String> {
    let out = Command::new("openssl").args(["speed", "-mr", "-seconds", "1"]).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// OpenSSL's figure for a reference: bytes/s or ops/s, the best of three `openssl speed` runs
/// (our side is the fastest criterion sample).
fn reference_rate(r: &Reference, cache: &mut BTreeMap<String, Vec<String>>) -> Option<f64> {
    let runs = |a: &[String]| (0..3).filter_map(|_| openssl(a)).collect::<Vec<_>>();
    let rates: Vec<f64> = match r {
        Reference::Throughput { args, bytes } => {
            let mut a = args.clone();
            a.extend(["-bytes".to_owned(), bytes.to_string()]);
            let outs = cache.entry(a.join(" ")).or_insert_with(|| runs(&a));
            outs.iter()
                .filter_map(|out| {
                    let line = out.lines().find(|l| l.starts_with("+F:"))?;
                    line.rsplit(':').next()?.trim().parse().ok()
                })
                .collect()
        }
        Reference::Ops { alg, field } => {
            let outs = cache.entry(alg.clone()).or_insert_with(|| runs(std::slice::from_ref(alg)));
            outs.iter()
                .filter_map(|out| {
                    let line = out.lines().find(|l| l.starts_with("+F"))?;
                    line.split(':').nth(*field)?.trim().parse().ok()
                })
                .collect()
        }
    };
    rates.into_iter().reduce(f64::max)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let ossl = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores; {ossl}")
}

fn criterion(package: &str, bench: &str, quick: bool) -> Result<BTreeMap<String, f64>, String> {
    criterion_filtered(package, bench, None, quick)
}

/// [`criterion`] restricted to the benchmarks whose names match `filter`.
fn criterion_filtered(
    package: &str,
    bench: &str,
    filter: Option<&str>,
    quick: bool,
) -> Result<BTreeMap<String, f64>, String> {
    let mut c = cargo();
    c.args(["bench", "-p", package, "--bench", bench, "--"]);
    c.args(filter);
    c.args(["--output-format", "bencher"]);
    if quick {
        c.arg("--quick");
    }
    eprintln!("xtask: running {c:?}");
    let started = std::time::SystemTime::now();
    let out = c.output().map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo bench failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut results = parse_bencher(&String::from_utf8_lossy(&out.stdout));
    // Replace criterion's central estimate by the fastest sample of the run just made; take
    // the benchmarks it wrote in this run even where its text output names none (--quick).
    for (name, ns) in fastest_samples(Some(started)) {
        results.insert(name, ns);
    }
    // A run that measured nothing is a failure, never empty tables.
    if results.is_empty() {
        return Err(format!(
            "cargo bench -p {package} --bench {bench}{} measured nothing: no result in its output or under target/criterion",
            filter.map(|f| format!(" {f}")).unwrap_or_default()
        ));
    }
    Ok(results)
}

/// Per benchmark (criterion's full id), its fastest sample in ns per iteration, from the
/// `new/benchmark.json` and `new/sample.json` criterion writes under target/criterion. The
/// machines' speed drifts on a scale of seconds, so a mean mixes fast and slow phases; the
/// fastest sample is the closest to the work itself, and modexp.c reports OpenSSL the same way.
fn fastest_samples(since: Option<std::time::SystemTime>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root().join("target/criterion")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            }
        }
        let fresh = since.is_none_or(|t| {
            std::fs::metadata(dir.join("sample.json")).and_then(|m| m.modified()).is_ok_and(|m| m >= t)
        });
        if dir.file_name().is_some_and(|n| n == "new")
            && fresh
            && let (Ok(b), Ok(s)) = (
                std::fs::read_to_string(dir.join("benchmark.json")),
                std::fs::read_to_string(dir.join("sample.json")),
            )
            && let (Some(id), Some(iters), Some(times)) =
                (json_string(&b, "full_id"), json_numbers(&s, "iters"), json_numbers(&s, "times"))
        {
            let best = iters
                .iter()
                .zip(&times)
                .filter(|(i, _)| **i > 0.0)
                .map(|(i, t)| t / i)
                .fold(f64::INFINITY, f64::min);
            if best.is_finite() {
                out.insert(id, best);
            }
        }
    }
    out
}

/// The string value of `"key":"..."` in criterion's flat JSON (ids have no escapes).
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let len = json[start..].find('"')?;
    Some(json[start..start + len].to_owned())
}

/// The numbers of `"key":[...]` in criterion's JSON.
fn json_numbers(json: &str, key: &str) -> Option<Vec<f64>> {
    let start = json.find(&format!("\"{key}\":["))? + key.len() + 4;
    let len = json[start..].find(']')?;
    json[start..start + len].split(',').map(|n| n.trim().parse().ok()).collect()
}

/// The stanza path beside the raw CTR + HMAC of the same octets, from the same run.
fn stanza_table(s: &BTreeMap<String, f64>) -> String {
    let mut t = String::from(
        "| cipher | body | encrypt (XML to `<c/>`) | decrypt (`<c/>` to XML) | encrypt + decrypt | raw CTR + HMAC | raw / encrypt | raw / decrypt | encrypts per second | round trips per second |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, enc) in s {
        let Some(rest) = name.strip_prefix("stanza/encrypt/") else { continue };
        let Some((alg, len)) = rest.rsplit_once('/') else { continue };
        let rt = s.get(&format!("stanza/roundtrip/{alg}/{len}"));
        let raw = s.get(&format!("stanza/raw-ctr-hmac/{alg}/{len}"));
        let dec = s.get(&format!("stanza/decrypt/{alg}/{len}"));
        let (Some(rt), Some(raw), Some(dec)) = (rt, raw, dec) else { continue };
        let _ = writeln!(
            t,
            "| {alg} | {len} B | {:.2} µs | {:.2} µs | {:.2} µs | {:.2} µs | {:.2} | {:.2} | {:.0} | {:.0} |",
            enc / 1e3,
            dec / 1e3,
            rt / 1e3,
            raw / 1e3,
            raw / enc,
            raw / dec,
            1e9 / enc,
            1e9 / rt
        );
    }
    t
}

/// A complete negotiation beside the sum of its primitives, from the same run.
fn negotiate_table(s: &BTreeMap<String, f64>) -> String {
    let mut t = String::from(
        "| group | identities | full negotiation (both parties) | primitives (2 g^x, 2 agreements [, 2 RSA sign+verify]) | full / primitives | time outside the primitives |\n|---|---|---|---|---|---|\n",
    );
    let rsa = s.get("negotiate/primitives/rsa/2x(sign+verify)").copied().unwrap_or(0.0);
    for g in ["modp5", "modp14", "modp18"] {
        let Some(dh) = s.get(&format!("negotiate/primitives/dh/{g}")).copied() else { continue };
        for (label, extra) in [("none", 0.0), ("rsa", rsa)] {
            let Some(full) = s.get(&format!("negotiate/full/{label}/{g}")).copied() else { continue };
            let prim = dh + extra;
            let _ = writeln!(
                t,
                "| {g} | {label} | {:.2} ms | {:.2} ms | {:.2} | {:.0} % |",
                full / 1e6,
                prim / 1e6,
                full / prim,
                100.0 * (full - prim).max(0.0) / full
            );
        }
    }
    t
}

/// Our DH exponent lengths (`ModpGroup::exponent_bits`), for the OpenSSL reference.
const EXPONENTS: [(u32, u32); 8] =
    [(1, 256), (2, 256), (5, 256), (14, 320), (15, 448), (16, 512), (17, 576), (18, 640)];

/// Builds and runs xtask/ref/modexp.c: ns per `BN_mod_exp_mont_consttime` for 2^x and y^x with
/// our exponent lengths, keyed `keygen/modpN` and `agree/modpN`. Installs the compiler and the
/// libcrypto headers with apt-get when missing and running as root.
fn openssl_modexp() -> Result<BTreeMap<String, f64>, String> {
    let src = root().join("xtask/ref/modexp.c");
    let out_dir = root().join("target/xtask");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let exe = out_dir.join("modexp");
    let build = || {
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(&src)
            .arg("-lcrypto")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !build() {
        let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        if root_user {
            eprintln!("xtask: installing gcc and libssl-dev for the OpenSSL reference");
            let _ = Command::new("apt-get").args(["install", "-y", "-q", "gcc", "libssl-dev"]).status();
        }
        if !build() {
            return Err("cannot build xtask/ref/modexp.c (needs cc and libssl-dev)".into());
        }
    }
    let args: Vec<String> = EXPONENTS.iter().map(|(g, b)| format!("{g}:{b}")).collect();
    eprintln!("xtask: running the OpenSSL modexp reference");
    let out = Command::new(&exe).args(&args).output().map_err(|e| e.to_string())?;
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [op, group, ns] = f[..]
            && let Ok(ns) = ns.parse::<f64>()
        {
            m.insert(format!("{op}/{group}"), ns);
        }
    }
    Ok(m)
}

/// Per key, the smaller (faster) of two runs' figures, and the largest relative difference
/// between them.
fn faster_of(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> (BTreeMap<String, f64>, f64) {
    let mut drift: f64 = 0.0;
    let mut m = a.clone();
    for (k, &vb) in b {
        match m.get_mut(k) {
            Some(va) => {
                drift = drift.max((*va - vb).abs() / va.min(vb));
                *va = va.min(vb);
            }
            None => {
                m.insert(k.clone(), vb);
            }
        }
    }
    (m, drift)
}

/// DH beside OpenSSL's constant-time exponentiation with the same exponent lengths.
fn dh_table(ours: &BTreeMap<String, f64>, reference: &BTreeMap<String, f64>) -> String {
    let mut t = String::from(
        "| group | exponent bits | ours g^x (comb) | OpenSSL 2^x | ratio | ours e^y | OpenSSL y^x | ratio |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (g, bits) in EXPONENTS {
        let get = |m: &BTreeMap<String, f64>, k: String| m.get(&k).copied();
        let (Some(k), Some(a)) =
            (get(ours, format!("dh/keygen/modp{g}")), get(ours, format!("dh/agree/modp{g}")))
        else {
            continue;
        };
        let (rk, ra) = (get(reference, format!("keygen/modp{g}")), get(reference, format!("agree/modp{g}")));
        let ms = |ns: f64| format!("{:.3} ms", ns / 1e6);
        let cell = |r: Option<f64>| r.map_or("n/a".into(), ms);
        let ratio = |o: f64, r: Option<f64>| r.map_or("n/a".into(), |r| format!("{:.2}", r / o));
        let _ = writeln!(
            t,
            "| modp{g} | {bits} | {} | {} | {} | {} | {} | {} |",
            ms(k),
            cell(rk),
            ratio(k, rk),
            ms(a),
            cell(ra),
            ratio(a, ra)
        );
    }
    t
}

/// Time to Alice's first message with all eight groups, fresh or pooled key pairs.
fn start_table(s: &BTreeMap<String, f64>) -> String {
    let mut t = String::from("| key pairs | time to the first message (8 groups offered) |\n|---|---|\n");
    for k in ["fresh", "pooled"] {
        if let Some(ns) = s.get(&format!("start/all-groups/{k}")) {
            let _ = writeln!(t, "| {k} | {:.3} ms |", ns / 1e6);
        }
    }
    t
}

/// A returning Alice beside her primitives, and the cost of one commit per session.
fn offline_table(s: &BTreeMap<String, f64>) -> String {
    let mut t = String::new();
    let ret = s.get("offline/return/1000/modp14");
    let prim = s.get("offline/primitives/1000/modp14");
    if let (Some(r), Some(p)) = (ret, prim) {
        let _ = writeln!(
            t,
            "| 1,000 queued starts (group 14, RSA) | come_back, durable store | 1,000 × (d^x + RSA verify) | ratio |\n|---|---|---|---|\n| | {:.0} ms | {:.0} ms | {:.2} |\n",
            r / 1e6,
            p / 1e6,
            r / p
        );
    }
    if let (Some(e), Some(b)) =
        (s.get("offline/replay/commit-each/100"), s.get("offline/replay/commit-batch/100"))
    {
        let _ = writeln!(
            t,
            "Replay entries of 100 sessions: one transaction each {:.1} ms, one for all {:.1} ms.",
            e / 1e6,
            b / 1e6
        );
    }
    t
}

/// The hostile-input benchmark (crates/esession-xmpp/benches/hostile.rs): its table.
fn hostile() -> Result<String, String> {
    let mut c = cargo();
    c.args(["bench", "-p", "esession-xmpp", "--bench", "hostile"]);
    eprintln!("xtask: running {c:?}");
    let out = c.output().map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !out.status.success() {
        return Err(format!("the hostile benchmark failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let table: String = text
        .split_once("hostile/table\n")
        .map(|(_, t)| t.lines().take_while(|l| l.starts_with('|')).map(|l| format!("{l}\n")).collect())
        .unwrap_or_default();
    if data_rows(&table) == 0 {
        return Err("the hostile benchmark measured nothing".into());
    }
    Ok(table)
}

/// Replaces what stands between `begin` and `end` in `path` (or appends the block).
pub(crate) fn write_between(
    path: &std::path::Path,
    begin: &str,
    end: &str,
    body: &str,
) -> Result<(), String> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{begin}\n{body}{end}");
    let new = match (old.find(begin), old.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{old}\n{block}\n"),
    };
    std::fs::write(path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// The data rows of the Markdown tables in `t` (not headers, not separators).
fn data_rows(t: &str) -> usize {
    let lines: Vec<&str> = t.lines().collect();
    (0..lines.len())
        .filter(|&i| {
            lines[i].starts_with('|')
                && !lines[i].starts_with("|---")
                && !lines.get(i + 1).is_some_and(|n| n.starts_with("|---"))
        })
        .count()
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    // The machines' speed drifts by tens of percent over minutes (shared hosts). The DH
    // comparison alternates: OpenSSL's exponentiation reference, our benchmarks, the reference
    // again, our DH benchmarks again, ...; each side keeps its best figure, so neither profits
    // from a fast phase the other did not see.
    let reference = || {
        openssl_modexp().unwrap_or_else(|e| {
            eprintln!("xtask: no OpenSSL modexp reference: {e}");
            BTreeMap::new()
        })
    };
    let rounds = if quick { 1 } else { 3 };
    let (mut modexp, mut drift) = (reference(), 0.0f64);
    let mut ours = criterion("esession-crypto", "crypto", quick)?;
    for round in 1..=rounds {
        let (best, d) = faster_of(&modexp, &reference());
        (modexp, drift) = (best, drift.max(d));
        if round < rounds {
            let (best, _) =
                faster_of(&ours, &criterion_filtered("esession-crypto", "crypto", Some("dh/"), quick)?);
            ours = best;
        }
    }
    // The stanza path and the negotiation are compared with primitives measured by the same
    // binary seconds apart; both sides are the best of `rounds` runs too.
    let best_of = |package: &str, bench: &str| -> Result<BTreeMap<String, f64>, String> {
        let mut best = criterion(package, bench, quick)?;
        for _ in 1..rounds {
            best = faster_of(&best, &criterion(package, bench, quick)?).0;
        }
        Ok(best)
    };
    let stanza = best_of("esession-stanza", "stanza")?;
    let negotiate = best_of("esession-negotiate", "negotiate")?;
    let offline = criterion("esession-offline", "offline", quick)?;
    let mut cache = BTreeMap::new();
    let mut table =
        String::from("| benchmark | ours | OpenSSL | ours/OpenSSL | reference |\n|---|---|---|---|---|\n");
    for p in pairs() {
        let Some(ns) = ours.get(&p.ours) else { continue };
        let (ours_txt, ours_rate, unit) = match &p.reference {
            Reference::Throughput { bytes, .. } => {
                let rate = *bytes as f64 / (ns * 1e-9);
                (format!("{:.1} MB/s", rate / 1e6), rate, "MB/s")
            }
            Reference::Ops { .. } => (format!("{:.3} ms", ns / 1e6), 1e9 / ns, "op/s"),
        };
        let (theirs, ratio) = match reference_rate(&p.reference, &mut cache) {
            Some(r) if r > 0.0 => {
                let t = if unit == "MB/s" {
                    format!("{:.1} MB/s", r / 1e6)
                } else {
                    format!("{:.3} ms", 1e3 / r)
                };
                (t, format!("{:.2}", ours_rate / r))
            }
            _ => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(table, "| {} | {ours_txt} | {theirs} | {ratio} | `{}` |", p.ours, p.label);
    }
    let mut rest = String::from("| benchmark | ours |\n|---|---|\n");
    let paired: Vec<String> = pairs().into_iter().map(|p| p.ours).collect();
    for (name, ns) in &ours {
        if !paired.contains(name) {
            let _ = writeln!(rest, "| {name} | {:.3} µs |", ns / 1e3);
        }
    }
    let stanza_tbl = stanza_table(&stanza);
    let neg_tbl = negotiate_table(&negotiate);
    let mut dh_tbl = dh_table(&ours, &modexp);
    if !modexp.is_empty() {
        let _ = writeln!(
            dh_tbl,
            "\nBest of {rounds} runs of ours alternating with {} of OpenSSL's; the reference's runs differed by up to {:.0} %.",
            rounds + 1,
            drift * 100.0
        );
    }
    let start_tbl = start_table(&negotiate);
    let offline_tbl = offline_table(&offline);
    println!("{table}\n{dh_tbl}\n{rest}\n{stanza_tbl}\n{neg_tbl}\n{start_tbl}\n{offline_tbl}");
    // Every table must hold figures: a table with no row means a benchmark was renamed or not
    // run, and the run fails rather than publish it.
    for (name, t) in [
        ("OpenSSL comparison", &table),
        ("stanza", &stanza_tbl),
        ("negotiation", &neg_tbl),
        ("first message", &start_tbl),
        ("offline", &offline_tbl),
    ] {
        if data_rows(t) == 0 {
            return Err(format!("the {name} table has no figures: a benchmark was not measured"));
        }
    }
    let hostile_tbl = hostile()?;
    println!("{hostile_tbl}");
    if quick {
        eprintln!(
            "xtask: --quick: figures printed, docs/performance.md left as it is (a full run writes it)"
        );
        return Ok(());
    }
    write_between(
        &root().join("docs/security.md"),
        "<!-- BEGIN xtask bench hostile -->",
        "<!-- END xtask bench hostile -->",
        &format!("Measured by `cargo xtask bench` on {}.\n\n{hostile_tbl}", machine()),
    )?;
    let doc = root().join("docs/performance.md");
    let old = std::fs::read_to_string(&doc).unwrap_or_default();
    let begin = "<!-- BEGIN xtask bench -->";
    let end = "<!-- END xtask bench -->";
    let generated = format!(
        "{begin}\nMeasured by `cargo xtask bench{}` on {}.\n\n### Compared with OpenSSL in the same run\n\n{table}\n### Diffie-Hellman beside OpenSSL's constant-time exponentiation with our exponent lengths\n\n{dh_tbl}\n### Other benchmarks\n\n{rest}\n### XEP-0200 stanza path (esession-stanza) beside the raw primitives on the same octets\n\n{stanza_tbl}\n### A complete 4-message negotiation (esession-negotiate) beside its primitives\n\n{neg_tbl}\n### Time to the first negotiation message\n\n{start_tbl}\n### A returning Alice (esession-offline)\n\n{offline_tbl}{end}",
        if quick { " --quick" } else { "" },
        machine()
    );
    let new = match (old.find(begin), old.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{generated}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{old}\n{generated}\n"),
    };
    std::fs::write(&doc, new).map_err(|e| format!("cannot write {}: {e}", doc.display()))?;
    eprintln!("xtask: wrote {}", doc.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::data_rows;

    #[test]
    fn empty_tables_have_no_data_rows() {
        assert_eq!(data_rows("| a | b |\n|---|---|\n"), 0);
        assert_eq!(data_rows(""), 0);
        assert_eq!(data_rows("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n"), 2);
        assert_eq!(data_rows("| h |\n|---|\n| x |\ntext\n| h2 |\n|---|\n"), 1);
    }
}
