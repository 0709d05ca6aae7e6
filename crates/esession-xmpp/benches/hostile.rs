//! What hostile input costs a client: for each class of hostile stanza, the time per stanza
//! (text to engine, as the party and a client receive it: bounded parse, then
//! `Engine::handle`) and the peak memory of a process that handles a flood of them, beside a
//! reference measured in the same run: a genuine negotiation request (time) and an idle engine
//! (memory). `cargo bench -p esession-xmpp --bench hostile` (run by `cargo xtask bench`; the
//! figures go into docs/security.md, "Resources").
//!
//! Each class runs in a child process of this binary, so that its peak (VmHWM) is its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, unreachable_pub)]

use chrono::{DateTime, Utc};
use esession_crypto::{CryptoProvider, ModpGroup, PrivateKey};
use esession_forms::xml;
use esession_negotiate::{Config, Jid, MemoryRetained, MemoryTrust, Mode};
use esession_offline::replay::MemoryReplay;
use esession_xmpp::{Engine, EngineStores};
use std::fmt::Write as _;
use std::time::Instant;

const BOB: &str = "bob@example.com/laptop";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

fn engine(key: Option<PrivateKey>) -> Engine {
    let mut cfg = match key {
        Some(k) => Config::with_identity(k),
        None => Config::default(),
    };
    cfg.provider = CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::default() };
    let stores = EngineStores {
        trust: Box::new(MemoryTrust::default()),
        retained: Box::new(MemoryRetained::default()),
        replay: Box::new(MemoryReplay::default()),
    };
    Engine::new(cfg, stores)
}

/// A genuine 4-message request of Alice's, as text, with `{THREAD}` and `{FROM}` to fill.
fn genuine_request() -> String {
    let mut alice = engine(None);
    let step = alice.start(now(), &Jid::new(BOB).unwrap(), Mode::Four).unwrap();
    let req = step.send.into_iter().next().unwrap();
    let text = String::from(&req);
    // The thread is the only element with text directly under the message: make it a slot.
    let t0 = text.find("<thread").unwrap();
    let open_end = t0 + text[t0..].find('>').unwrap() + 1;
    let close = open_end + text[open_end..].find("</thread>").unwrap();
    let with_thread = format!("{}{{THREAD}}{}", &text[..open_end], &text[close..]);
    with_thread.replacen("<message ", "<message from='{FROM}' ", 1)
}

/// The request with one more field `bogus` holding `inner` (raw XML).
fn request_with(inner: &str) -> String {
    genuine_request().replacen("</x>", &format!("<field var='bogus'>{inner}</field></x>"), 1)
}

fn fill(t: &str, i: usize) -> String {
    t.replace("{THREAD}", &format!("thread-{i}")).replace("{FROM}", &format!("x{i}@evil.example/r"))
}

/// The stanzas of a class: (how many to handle, a function making the i-th as text).
fn class(name: &str) -> (usize, Box<dyn Fn(usize) -> String>) {
    match name {
        "genuine request (reference)" => {
            let t = genuine_request();
            (200, Box::new(move |i| fill(&t, i)))
        }
        "deep nesting, 19,000 levels" => {
            let t = request_with(&format!("{}{}", "<a>".repeat(19_000), "</a>".repeat(19_000)));
            (20, Box::new(move |i| fill(&t, i)))
        }
        "1 MiB of text in a field" => {
            let t = request_with(&format!("<value>{}</value>", "A".repeat(1 << 20)));
            (20, Box::new(move |i| fill(&t, i)))
        }
        "100,000 options" => {
            let t = request_with(&"<option><value>x</value></option>".repeat(100_000));
            (10, Box::new(move |i| fill(&t, i)))
        }
        "requests of 243 kB from distinct JIDs" => {
            let big = format!("<value>{}</value>", "A".repeat(60_000)).repeat(4);
            let t = request_with(&big);
            (1_100, Box::new(move |i| fill(&t, i)))
        }
        "small requests from distinct JIDs" => {
            let t = genuine_request();
            (5_000, Box::new(move |i| fill(&t, i)))
        }
        "presence from distinct strangers" => (
            200_000,
            Box::new(|i| format!("<presence xmlns='jabber:client' from='u{i}@evil.example/r{i}'/>")),
        ),
        "presence from resources of one JID" => (
            100_000,
            Box::new(|i| format!("<presence xmlns='jabber:client' from='alice@example.org/r{i}'/>")),
        ),
        "error stanzas quoting a request" => {
            let q = genuine_request();
            (
                2_000,
                Box::new(move |i| {
                    fill(&q, i).replacen("<message ", "<message type='error' ", 1).replacen(
                        "</message>",
                        "<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
                        1,
                    )
                }),
            )
        }
        _ => panic!("unknown class {name}"),
    }
}

const CLASSES: [&str; 9] = [
    "genuine request (reference)",
    "deep nesting, 19,000 levels",
    "1 MiB of text in a field",
    "100,000 options",
    "requests of 243 kB from distinct JIDs",
    "small requests from distinct JIDs",
    "presence from distinct strangers",
    "presence from resources of one JID",
    "error stanzas quoting a request",
];

/// VmHWM (peak resident set) of this process, in KiB.
fn peak_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// In the child: handles the class, prints `ns_per_stanza peak_kib sent`.
fn child(name: &str) {
    let mut bob = engine(None);
    let (n, make) = class(name);
    // The inputs are made before the clock and the peak are read (an attacker's text costs
    // its sender); each is parsed and handled as a client would.
    let inputs: Vec<String> = (0..n).map(&make).collect();
    let idle = peak_kib();
    let start = Instant::now();
    let mut sent = 0usize;
    for text in &inputs {
        if let Ok(el) = xml::parse(text) {
            let step = bob.handle(now(), &el);
            sent += step.send.len();
            xml::dispose(el);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    drop(inputs);
    println!("{ns} {} {sent}", peak_kib().saturating_sub(idle));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--class") {
        child(&args[i + 1]);
        return;
    }
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let exe = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    for name in CLASSES {
        let out = std::process::Command::new(&exe).args(["--class", name]).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        assert_eq!(v.len(), 3, "{name}: {text}");
        rows.push((name, v[0], v[1], v[2]));
    }
    let reference = rows[0].1;
    let mut table = String::from(
        "| hostile input | stanzas | time per stanza | / genuine request | peak memory above an idle engine | stanzas sent in answer |\n|---|---|---|---|---|---|\n",
    );
    for (name, ns, kib, sent) in &rows {
        let n = class(name).0;
        let _ = writeln!(
            table,
            "| {name} | {n} | {:.1} µs | {:.2} | {:.1} MiB | {sent} |",
            ns / 1e3,
            ns / reference,
            kib / 1024.0
        );
    }
    println!("hostile/table\n{table}");
}
