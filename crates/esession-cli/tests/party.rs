//! Two `esession party --stdio` processes relayed to each other, as an interop harness drives
//! them: 4- and 3-message negotiations in both profiles, messages both ways, re-keys (with and
//! without content), old MAC keys, encrypted presence and iq, termination, and an offline
//! session (publish, offline sends, terminate, return).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

struct Party {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    events: Vec<serde_json::Value>,
    /// The last `state` event.
    state: serde_json::Value,
}

fn pem(f: &str) -> String {
    format!("{}/tests/vectors/pem/{f}", env!("CARGO_MANIFEST_DIR"))
}

impl Party {
    fn spawn(name: &'static str, profile: &str) -> Self {
        Self::spawn_with(name, profile, &[])
    }

    fn spawn_with(name: &'static str, profile: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_esession"))
            .args(["party", "--role", name, "--stdio", "--profile", profile, "--modp", "5,14"])
            .args(["--identity", &pem("rsa.pem"), "--trust", &pem("rsa.pub.pem")])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Party { name, child, stdin, stdout, events: Vec::new(), state: serde_json::Value::Null }
    }

    /// Sends a line and `!state`; returns the lines before the state event.
    fn line(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}\n!state").unwrap();
        self.stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            assert!(self.stdout.read_line(&mut l).unwrap() > 0, "{} exited", self.name);
            let l = l.trim_end().to_owned();
            if let Some(e) = l.strip_prefix("EVT ") {
                let v: serde_json::Value = serde_json::from_str(e).unwrap();
                if v["event"] == "state" {
                    self.state = v;
                    return out;
                }
                self.events.push(v);
            } else {
                assert!(l.starts_with("OUT <"), "unexpected line {l:?}");
            }
            out.push(l);
        }
    }

    fn take_events(&mut self) -> Vec<serde_json::Value> {
        std::mem::take(&mut self.events)
    }
}

/// Runs `line` on `from` and relays every stanza it writes to `to` (and the answers back),
/// except the server-only withdraw IQ.
fn run(from: &mut Party, to: &mut Party, line: &str) {
    for l in from.line(line) {
        let Some(x) = l.strip_prefix("OUT ") else { continue };
        if x.starts_with("<iq") && x.contains("<item/>") {
            continue;
        }
        run(to, from, x);
    }
}

fn kinds(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] != "alert")
        .map(|e| match e["event"].as_str().unwrap() {
            "message" => format!("message:{}", e["body"].as_str().unwrap_or("")),
            "negotiated" => format!("negotiated:{}", e["sas"].as_str().unwrap_or("-")),
            other => other.to_owned(),
        })
        .collect()
}

#[test]
fn online_sessions_in_both_profiles() {
    for profile in ["xep", "gajim"] {
        let mut a = Party::spawn("alice", profile);
        let mut b = Party::spawn("bob", profile);
        for mode in ["4", "3"] {
            run(&mut a, &mut b, &format!("!start {mode}"));
            let (ea, eb) = (a.take_events(), b.take_events());
            let (ka, kb) = (kinds(&ea), kinds(&eb));
            assert_eq!(ka.len(), 1, "{profile} {mode}: {ea:?}");
            assert_eq!(ka, kb, "{profile} {mode}: both negotiated, with the same SAS");
            assert_eq!(ka[0] == "negotiated:-", mode == "3", "a SAS only for 4-message: {ka:?}");
            run(&mut a, &mut b, "!send hello bob");
            run(&mut b, &mut a, "!send hi alice");
            run(&mut a, &mut b, "!rekey after alice's re-key");
            run(&mut b, &mut a, "!rekey");
            run(&mut b, &mut a, "!old with old keys");
            run(&mut b, &mut a, "!presence away");
            run(&mut a, &mut b, "!iq <iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>");
            assert_eq!(
                kinds(&b.take_events()),
                vec!["message:hello bob", "message:after alice's re-key", "iq"],
                "{profile} {mode}"
            );
            assert_eq!(
                kinds(&a.take_events()),
                vec!["message:hi alice", "message:with old keys", "presence"],
                "{profile} {mode}"
            );
            run(&mut a, &mut b, "!terminate");
            assert_eq!(kinds(&a.take_events()), vec!["terminated"]);
            assert_eq!(kinds(&b.take_events()), vec!["terminated"]);
            // Nothing more may be sent.
            a.line("!send too late");
            assert_eq!(a.take_events()[0]["condition"], "no-session");
        }
        for p in [&mut a, &mut b] {
            writeln!(p.stdin, "!quit").unwrap();
            p.stdin.flush().unwrap();
            assert!(p.child.wait().unwrap().success());
        }
    }
}

#[test]
fn offline_session_through_the_party() {
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    run(&mut a, &mut b, "!now 2026-06-01T08:00:00Z");
    run(&mut b, &mut a, "!now 2026-06-01T08:30:00Z");
    run(&mut a, &mut b, "!publish-offline 3600");
    assert_eq!(kinds(&a.take_events()), vec!["published"]);
    let eb = b.take_events();
    assert_eq!(eb[0]["event"], "offline-options");
    assert_eq!(eb[0]["ok"], true);
    run(&mut b, &mut a, "!offline-send while you were away");
    run(&mut b, &mut a, "!offline-send second");
    run(&mut b, &mut a, "!terminate");
    assert_eq!(kinds(&b.take_events()), vec!["negotiated:-", "terminated"]);
    assert!(a.take_events().is_empty(), "Alice is away: everything is queued");
    // Back before the options expire.
    run(&mut a, &mut b, "!now 2026-06-01T08:59:00Z");
    let lines = a.line("!return");
    assert!(lines[0].starts_with("OUT <iq") && lines[0].contains("<item/>"), "withdraw first: {lines:?}");
    assert_eq!(
        kinds(&a.take_events()),
        vec!["negotiated:-", "message:while you were away", "message:second", "terminated"]
    );
    // Object encryption: one stanza that starts and ends the session.
    run(&mut a, &mut b, "!publish-offline 3600");
    let _ = (a.take_events(), b.take_events());
    run(&mut b, &mut a, "!offline-terminate one shot");
    assert_eq!(kinds(&b.take_events()), vec!["negotiated:-", "terminated"]);
    a.line("!return");
    assert_eq!(kinds(&a.take_events()), vec!["negotiated:-", "message:one shot", "terminated"]);
    // Too late: Bob refuses expired options.
    run(&mut a, &mut b, "!publish-offline 60");
    let _ = (a.take_events(), b.take_events());
    run(&mut b, &mut a, "!now 2026-06-01T10:00:00Z");
    run(&mut b, &mut a, "!offline-send nobody reads this");
    let eb = b.take_events();
    assert_eq!(eb.last().unwrap()["condition"], "silent", "{eb:?}");
}

#[test]
fn durable_stores_keep_the_retained_secret_across_restarts() {
    let root = std::env::temp_dir().join(format!("esession-party-store-{}", std::process::id()));
    let (da, db) = (root.join("alice"), root.join("bob"));
    let alerts = |evs: &[serde_json::Value]| -> Vec<String> {
        evs.iter().filter(|e| e["event"] == "alert").map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
    };
    let mut seen = Vec::new();
    for _round in 0..2 {
        let mut a = Party::spawn_with("alice", "xep", &["--store", da.to_str().unwrap()]);
        let mut b = Party::spawn_with("bob", "xep", &["--store", db.to_str().unwrap()]);
        run(&mut a, &mut b, "!start 4");
        let (ea, eb) = (a.take_events(), b.take_events());
        assert_eq!(kinds(&ea), kinds(&eb));
        seen.push((alerts(&ea), alerts(&eb)));
        for p in [&mut a, &mut b] {
            writeln!(p.stdin, "!quit").unwrap();
            p.stdin.flush().unwrap();
            assert!(p.child.wait().unwrap().success());
        }
    }
    // First run: no retained secret yet; after a restart the stored one is found.
    assert!(seen[0].0.iter().any(|a| a == "no-retained-secret"), "{seen:?}");
    assert!(!seen[1].0.iter().any(|a| a == "no-retained-secret"), "{seen:?}");
    assert!(!seen[1].1.iter().any(|a| a == "no-retained-secret"), "{seen:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(da.join("seal.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the sealing key is private to its owner");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// `--store DIR` is an account data directory, opened as the account commands open it: what
/// the party trusts (`--trust`, `--petname`), `esession trust list --data DIR` lists, and the
/// party runs in a directory that `esession keygen` made. An account sealed with a passphrase
/// is refused, and left as it was (no `seal.key` beside its `salt`).
#[test]
fn the_store_is_an_account_directory() {
    let root = std::env::temp_dir().join(format!("esession-party-account-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let esession = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_esession"))
            .args(args)
            .env_remove("ESESSION_PASSWORD")
            .env_remove("ESESSION_PASSPHRASE")
            .env("XDG_CONFIG_HOME", root.join("config"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let dir = root.join("alice");
    let d = dir.to_str().unwrap();
    let o = esession(&["keygen", "--bits", "1024", "--jid", "alice@example.org", "--data", d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut a = Party::spawn_with("alice", "xep", &["--store", d, "--petname", "Bob (laptop)"]);
    let state = a.line("!state");
    assert!(state.is_empty() && a.state["role"] == "alice", "{state:?}");
    writeln!(a.stdin, "!quit").unwrap();
    a.stdin.flush().unwrap();
    assert!(a.child.wait().unwrap().success());
    let o = esession(&["trust", "list", "--jid", "alice@example.org", "--data", d]);
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(list.contains("verified \"Bob (laptop)\"  bob@example.com"), "{list}");
    // The identity key the account made is still there.
    let o = esession(&["fingerprint", "--jid", "alice@example.org", "--data", d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let sealed = root.join("sealed");
    let s = sealed.to_str().unwrap();
    let o = esession(&[
        "keygen",
        "--bits",
        "1024",
        "--jid",
        "alice@example.org",
        "--data",
        s,
        "--passphrase",
        "pw",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_esession"))
        .args(["party", "--role", "alice", "--stdio", "--store", s])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("sealed with a passphrase"), "{err}");
    assert!(sealed.join("salt").exists() && !sealed.join("seal.key").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn hostile_lines_are_errors_not_crashes() {
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    for junk in [
        "<message",
        "<message xmlns='jabber:client'><c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'><data>AAAA</data></c></message>",
        "!start 7",
        "!frobnicate",
        "!now yesterday",
        "!return",
        "!offline-send nothing fetched",
        "!iq <presence/>",
        "<iq xmlns='jabber:client' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='x'><item><x xmlns='jabber:x:data' type='form'/></item></items></pubsub></iq>",
    ] {
        b.line(junk);
        let e = b.take_events();
        assert!(e.iter().all(|e| e["event"] == "error" || e["event"] == "offline-options"), "{junk}: {e:?}");
    }
    // A tampered request (one character of the form changed) is refused; a good one still works.
    let req = a.line("!start 4").into_iter().find_map(|l| l.strip_prefix("OUT ").map(str::to_owned)).unwrap();
    let i = req.find("<value>").unwrap() + 7;
    let mut bad = req.clone().into_bytes();
    bad[i] ^= 0x01;
    b.line(&String::from_utf8(bad).unwrap());
    let _ = (a.take_events(), b.take_events());
    writeln!(a.stdin, "!quit").unwrap();
    a.stdin.flush().unwrap();
    assert!(a.child.wait().unwrap().success());
    let mut a = Party::spawn("alice", "xep");
    run(&mut a, &mut b, "!start 4");
    assert_eq!(kinds(&a.take_events()).len(), 1, "negotiated after the junk");
    run(&mut a, &mut b, "!send still fine");
    assert_eq!(kinds(&b.take_events()).last().unwrap(), "message:still fine");
}

/// Issue 17.5: after `!return`, the offline session Alice accepted is kept: Bob's later
/// stanzas and his terminate reach it (no `no-session`).
#[test]
fn the_offline_session_lives_on_after_the_return() {
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    run(&mut a, &mut b, "!publish-offline 3600");
    let _ = (a.take_events(), b.take_events());
    run(&mut b, &mut a, "!offline-send before the return");
    a.line("!return");
    assert_eq!(kinds(&a.take_events()), vec!["negotiated:-", "message:before the return"]);
    // Bob goes on in the same offline session, then ends it.
    run(&mut b, &mut a, "!offline-send after the return");
    run(&mut b, &mut a, "!terminate");
    let ea = a.take_events();
    assert_eq!(kinds(&ea), vec!["message:after the return", "terminated"], "{ea:?}");
    assert!(ea.iter().all(|e| e["condition"] != "no-session"), "{ea:?}");
}

/// Issue 17.6: every offer of `Config` is an option of the party, on either side: what Alice
/// offers and what Bob accepts steer the negotiation, and a value nobody offers is refused.
#[test]
fn every_offer_is_an_option() {
    let opts: &[&str] = &[
        "--modp",
        "15",
        "--crypt",
        "twofish256-ctr",
        "--hash",
        "whirlpool",
        "--sign",
        "rsa",
        "--offer-init-pubkey",
        "hash",
        "--offer-resp-pubkey",
        "key",
        "--stanzas",
        "message,presence",
        "--logging",
        "mustnot",
        "--rekey-freq",
        "3",
    ];
    let mut a = Party::spawn_with("alice", "xep", opts);
    let mut b = Party::spawn_with("bob", "xep", opts);
    // Piggybacked content on the 3-message accept.
    run(&mut a, &mut b, "!start 3 riding along");
    let (ea, eb) = (a.take_events(), b.take_events());
    assert_eq!(kinds(&ea), vec!["negotiated:-"], "{ea:?}");
    assert_eq!(kinds(&eb), vec!["negotiated:-", "message:riding along"], "{eb:?}");
    // rekey_freq 3: a re-key before three stanzas is refused.
    a.line("!rekey too soon");
    assert_eq!(a.take_events()[0]["event"], "error");
    // iq is not among the negotiated stanzas: refused, nothing sent in clear.
    let lines = a.line("!iq <iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(lines.iter().all(|l| !l.starts_with("OUT")), "{lines:?}");
    assert_eq!(a.take_events()[0]["event"], "error");
    for p in [&mut a, &mut b] {
        writeln!(p.stdin, "!quit").unwrap();
        p.stdin.flush().unwrap();
        assert!(p.child.wait().unwrap().success());
    }
    // Bob refuses what Alice offers when he accepts none of it.
    let mut a = Party::spawn_with("alice", "xep", &["--crypt", "aes256-ctr"]);
    let mut b = Party::spawn_with("bob", "xep", &["--crypt", "serpent256-ctr"]);
    run(&mut a, &mut b, "!start 4");
    let (ea, eb) = (a.take_events(), b.take_events());
    assert!(ea.iter().any(|e| e["event"] == "error" && e["condition"] == "not-acceptable"), "{ea:?}");
    assert!(eb.iter().any(|e| e["event"] == "error"), "{eb:?}");
    // An unknown value is a usage error, exit status 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_esession"))
        .args(["party", "--role", "alice", "--stdio", "--crypt", "rot13"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --help prints the usage on stdout and succeeds.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_esession"))
        .args(["party", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--offer-init-pubkey"));
}

/// Issue 16.1/16.8 at the party: a line over the limit is refused unread and quickly, a line
/// that is not UTF-8 is reported, and the party goes on.
#[test]
fn oversized_and_invalid_lines_are_reported_and_survived() {
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    let t = std::time::Instant::now();
    let huge = format!("<message xmlns='jabber:client'><body>{}</body></message>", "A".repeat(10 << 20));
    b.line(&huge);
    assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(b.take_events()[0]["condition"], "policy-violation");
    b.stdin.write_all(b"\xff\xfe not utf-8\n").unwrap();
    b.line("");
    let e = b.take_events();
    assert!(e.iter().any(|e| e["condition"] == "bad-request"), "{e:?}");
    let deep =
        format!("<message xmlns='jabber:client'>{}{}</message>", "<a>".repeat(40_000), "</a>".repeat(40_000));
    b.line(&deep);
    assert_eq!(b.take_events()[0]["condition"], "policy-violation");
    run(&mut a, &mut b, "!start 4");
    run(&mut a, &mut b, "!send still here");
    assert_eq!(kinds(&b.take_events()).last().unwrap(), "message:still here");
}

#[test]
fn lifetimes_without_a_valid_expiry_are_refused_with_an_error_line() {
    // Hostile finding 6: a lifetime that overflows, is not positive or is not a number gives an
    // error line; nothing is published and the party goes on.
    let mut a = Party::spawn("alice", "xep");
    for arg in ["9223372036854775807", "100000000000000", "-3600", "0", "soon", "315576000000"] {
        let out = a.line(&format!("!publish-offline {arg}"));
        assert!(out.iter().all(|l| !l.starts_with("OUT ")), "{arg}: nothing published: {out:?}");
        let e = a.take_events();
        assert_eq!(e.len(), 1, "{arg}: {e:?}");
        assert_eq!(
            (e[0]["event"].as_str(), e[0]["condition"].as_str()),
            (Some("error"), Some("bad-request")),
            "{arg}"
        );
    }
    let out = a.line("!publish-offline 3600");
    assert!(out.iter().any(|l| l.starts_with("OUT <iq")), "{out:?}");
    assert_eq!(kinds(&a.take_events()), vec!["published"]);
    writeln!(a.stdin, "!quit").unwrap();
    a.stdin.flush().unwrap();
    assert!(a.child.wait().unwrap().success());
}

#[test]
fn petnames_are_shown_before_the_jid() {
    // X116-7.4-05: Bob named Alice's key: his events show the petname first, then the JID.
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn_with("bob", "xep", &["--petname", "Alice"]);
    run(&mut a, &mut b, "!start 4");
    run(&mut a, &mut b, "!send hello");
    let eb = b.take_events();
    let shown = "\"Alice\" (alice@example.org/pda)";
    let n = eb.iter().find(|e| e["event"] == "negotiated").unwrap();
    assert_eq!(n["peer"], shown, "{eb:?}");
    let m = eb.iter().find(|e| e["event"] == "message").unwrap();
    assert_eq!((m["body"].as_str(), m["from"].as_str()), (Some("hello"), Some(shown)));
    let ea = a.take_events();
    let n = ea.iter().find(|e| e["event"] == "negotiated").unwrap();
    assert_eq!(n["peer"], "bob@example.com/laptop", "no petname: the JID alone");
}

/// The `terminated` events among `events`, as (verified, why).
fn terminations(events: &[serde_json::Value]) -> Vec<(bool, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "terminated")
        .map(|e| (e["verified"].as_bool().unwrap(), e["why"].as_str().unwrap().to_owned()))
        .collect()
}

/// The first stanza a command of `p` writes.
fn first_out(p: &mut Party, line: &str) -> String {
    p.line(line).into_iter().find_map(|l| l.strip_prefix("OUT ").map(str::to_owned)).unwrap()
}

/// `verified` in `terminated` tells whether the end was authenticated: a session ended by a
/// stanza that failed verification (a MAC changed in transit, a replayed stanza) ends with
/// `"verified":false,"why":"Failure"`; a terminate inside the verified content ends with
/// `"verified":true`.
#[test]
fn a_session_ended_by_a_failed_verification_is_not_verified() {
    // A MAC changed in transit.
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    run(&mut a, &mut b, "!start 4");
    let _ = (a.take_events(), b.take_events());
    let wire = first_out(&mut b, "!send tampered");
    let at = wire.find("<mac>").unwrap() + 5;
    let flipped = if wire.as_bytes()[at] == b'A' { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &wire[..at], &wire[at + 1..]);
    assert_ne!(tampered, wire);
    a.line(&tampered);
    let ea = a.take_events();
    assert!(!ea.iter().any(|e| e["event"] == "message"), "{ea:?}");
    assert_eq!(terminations(&ea), vec![(false, "Failure".to_owned())], "{ea:?}");
    assert_eq!(a.state["phase"], "idle");
    // A replayed stanza.
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    run(&mut a, &mut b, "!start 4");
    let _ = (a.take_events(), b.take_events());
    let wire = first_out(&mut b, "!send once");
    a.line(&wire);
    assert_eq!(kinds(&a.take_events()), vec!["message:once"]);
    a.line(&wire);
    let ea = a.take_events();
    assert!(!ea.iter().any(|e| e["event"] == "message"), "{ea:?}");
    assert_eq!(terminations(&ea), vec![(false, "Failure".to_owned())], "{ea:?}");
    // A terminate inside the verified content, on both sides.
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    run(&mut a, &mut b, "!start 4");
    let _ = (a.take_events(), b.take_events());
    run(&mut a, &mut b, "!terminate");
    assert_eq!(terminations(&b.take_events()), vec![(true, "ByPeer { verified: true }".to_owned())]);
    assert_eq!(terminations(&a.take_events()), vec![(true, "Acknowledged".to_owned())]);
}

/// `!now` past the negotiation timeout expires the negotiation at once (the engine expires by
/// `now`, and the party runs that expiry when its clock moves): `!state` says `idle`, not
/// `negotiating`, and a new negotiation completes.
#[test]
fn now_past_the_timeout_expires_the_negotiation() {
    let mut a = Party::spawn("alice", "xep");
    let mut b = Party::spawn("bob", "xep");
    a.line("!start 4");
    assert_eq!(a.state["phase"], "negotiating");
    let soon = chrono::Utc::now() + chrono::Duration::seconds(60);
    a.line(&format!("!now {}", soon.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    assert_eq!(a.state["phase"], "negotiating", "within the timeout");
    let _ = a.take_events();
    let later = chrono::Utc::now() + chrono::Duration::minutes(10);
    a.line(&format!("!now {}", later.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    assert_eq!(a.state["phase"], "idle", "expired by the clock: {:?}", a.state);
    let ea = a.take_events();
    assert_eq!(ea.len(), 1, "{ea:?}");
    assert_eq!(ea[0]["event"], "error");
    assert_eq!(ea[0]["condition"], "remote-server-timeout", "{ea:?}");
    // Bob follows the same clock; a new negotiation completes.
    b.line(&format!("!now {}", later.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    run(&mut a, &mut b, "!start 4");
    let ea = a.take_events();
    assert_eq!(a.state["phase"], "active", "{ea:?}");
}
