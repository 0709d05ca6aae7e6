//! The account commands against a real Prosody on loopback (see esession-xmpp's
//! tests/support): keys, trust, offline publish / send / receive, an interactive chat, and the
//! one-line errors a person sees.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "../../esession-xmpp/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::{PASSWORD, Prosody};

const BIN: &str = env!("CARGO_BIN_EXE_esession");

fn esession(p: &Prosody, user: &str, args: &[&str]) -> Output {
    let data = p.data(user);
    Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(&data)
        .args(["--jid", &format!("{user}@localhost"), "--server", &p.server()])
        .env("ESESSION_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "failed: {}\n{out}", String::from_utf8_lossy(&o.stderr));
    out
}

/// The error a person sees: one line, exit status 1.
fn one_line_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("esession: "), "{err}");
    err
}

fn keys(p: &Prosody, users: &[&str]) {
    for u in users {
        let out = ok(&esession(p, u, &["keygen"]));
        assert!(out.starts_with("identity key: "), "{out}");
        let pem = p.dir.join(format!("{u}.pub.pem"));
        let fp = ok(&esession(p, u, &["fingerprint", "--pem", pem.to_str().unwrap()]));
        assert!(out.contains(fp.trim()), "keygen and fingerprint agree");
    }
}

fn trust(p: &Prosody, user: &str, peer: &str) {
    let pem = p.dir.join(format!("{peer}.pub.pem"));
    ok(&esession(p, user, &["trust", "verify", &format!("{peer}@localhost"), pem.to_str().unwrap()]));
}

#[test]
#[ignore = "end-to-end against Prosody: run by `cargo xtask e2e` and `cargo xtask test`"]
fn keys_trust_offline_send_and_receive() {
    let p = Prosody::start(&["alice", "bob"]);
    keys(&p, &["alice", "bob"]);
    trust(&p, "alice", "bob");
    trust(&p, "bob", "alice");
    // The key list, and a petname.
    let list = ok(&esession(&p, "bob", &["trust", "list"]));
    assert!(list.contains("verified") && list.contains("alice@localhost"), "{list}");
    let fp: String = list.split("  ").next().unwrap().to_owned();
    ok(&esession(&p, "bob", &["trust", "petname", &fp, "Alice"]));
    assert!(ok(&esession(&p, "bob", &["trust", "list"])).contains("\"Alice\""));
    // Alice publishes and leaves; Bob (not subscribed: the everyone set) sends twice.
    assert!(ok(&esession(&p, "alice", &["offline", "publish"])).contains("published"));
    for text in ["first", "second"] {
        let out = ok(&esession(&p, "bob", &["send", "alice@localhost", text]));
        assert!(out.contains("offline session"), "{out}");
    }
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('<')).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("<bob@localhost/") && lines[0].ends_with("> first"), "{out}");
    assert!(lines[1].ends_with("> second"), "{out}");
    // Received once: a second receive shows nothing.
    let again = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    assert!(!again.contains("first"), "{again}");
    // Published again and withdrawn: Bob finds nothing to use any more.
    ok(&esession(&p, "alice", &["offline", "publish"]));
    assert!(ok(&esession(&p, "alice", &["offline", "withdraw"])).contains("withdrawn"));
    let err = one_line_error(&esession(&p, "bob", &["send", "alice@localhost", "third"]));
    assert!(err.contains("no offline options"), "{err}");
}

#[test]
#[ignore = "end-to-end against Prosody: run by `cargo xtask e2e` and `cargo xtask test`"]
fn errors_are_one_line() {
    let p = Prosody::start(&["alice", "bob", "carol"]);
    keys(&p, &["alice", "carol"]);
    // Wrong password.
    let o = Command::new(BIN)
        .args([
            "receive",
            "--jid",
            "alice@localhost",
            "--password",
            "wrong",
            "--server",
            &p.server(),
            "--data",
        ])
        .arg(p.data("alice"))
        .output()
        .unwrap();
    assert!(one_line_error(&o).contains("login refused"));
    // Unreachable server.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = Command::new(BIN)
        .args(["receive", "--jid", "alice@localhost", "--server", &format!("127.0.0.1:{port}"), "--data"])
        .arg(p.data("alice"))
        .env("ESESSION_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(one_line_error(&o).contains("cannot reach the server"));
    // Untrusted options: Carol has not verified Alice's key.
    ok(&esession(&p, "alice", &["offline", "publish"]));
    let o = esession(&p, "carol", &["send", "alice@localhost", "hi"]);
    assert!(one_line_error(&o).contains("options-signature"));
    // A contact without options.
    let o = esession(&p, "carol", &["send", "bob@localhost", "hi"]);
    assert!(one_line_error(&o).contains("no offline options"));
    // Offline options need an identity key.
    let o = esession(&p, "bob", &["offline", "publish"]);
    assert!(one_line_error(&o).contains("keygen"));
    // A wrong passphrase opens nothing, and writes nothing.
    let dir = p.data("dave");
    let run = |pass: &str, args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data")
            .arg(&dir)
            .env("ESESSION_PASSPHRASE", pass)
            .output()
            .unwrap()
    };
    ok(&run("right", &["keygen", "--bits", "1024"]));
    let before = ok(&run("right", &["fingerprint"]));
    let o = run("wrong", &["keygen", "--force", "--bits", "1024"]);
    assert!(one_line_error(&o).contains("passphrase"));
    assert!(one_line_error(&run("wrong", &["fingerprint"])).contains("passphrase"));
    assert!(ok(&run("right", &["fingerprint"])) == before, "the key was not replaced");
    // A usage error is clap's (exit 2).
    assert_eq!(Command::new(BIN).arg("send").output().unwrap().status.code(), Some(2));
}

#[test]
#[ignore = "end-to-end against Prosody: run by `cargo xtask e2e` and `cargo xtask test`"]
fn interactive_chat() {
    let p = Prosody::start(&["alice", "bob"]);
    keys(&p, &["alice", "bob"]);
    trust(&p, "alice", "bob");
    trust(&p, "bob", "alice");
    // Bob is online with a known resource, answering whatever comes.
    let bob = Command::new(BIN)
        .args(["receive", "--wait", "6", "--jid", "bob@localhost/desk", "--server", &p.server(), "--data"])
        .arg(p.data("bob"))
        .env("ESESSION_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut alice = Command::new(BIN)
        .args(["chat", "bob@localhost/desk", "--jid", "alice@localhost", "--server", &p.server(), "--data"])
        .arg(p.data("alice"))
        .env("ESESSION_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = alice.stdin.take().unwrap();
    stdin.write_all(b"hello bob\n/rekey\nafter the re-key\n/verify\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin.write_all(b"/quit\n").unwrap();
    drop(stdin);
    let a = alice.wait_with_output().unwrap();
    let a_out = ok(&a);
    let b_out = ok(&bob.wait_with_output().unwrap());
    let sas = |out: &str| -> String {
        let l = out
            .lines()
            .find(|l| l.contains("encrypted session") && l.contains("SAS "))
            .unwrap_or_else(|| panic!("no SAS in {out}"));
        l.split("SAS ").nth(1).unwrap().split(':').next().unwrap().to_owned()
    };
    assert_eq!(sas(&a_out), sas(&b_out), "the same SAS on both sides");
    assert!(a_out.contains("key is now verified"), "{a_out}");
    let got: Vec<&str> = b_out.lines().filter(|l| l.starts_with("<alice@localhost/")).collect();
    assert_eq!(got.len(), 2, "{b_out}");
    assert!(got[0].ends_with("> hello bob") && got[1].ends_with("> after the re-key"), "{b_out}");
    assert!(b_out.contains("session with alice@localhost"), "{b_out}");
    assert!(
        b_out.lines().any(|l| l.contains("session with alice@localhost") && l.contains("ended")),
        "terminated: {b_out}"
    );
}
