//! The account commands against a real server on loopback (Prosody, or ejabberd with
//! `ESESSION_SERVER=ejabberd`; see esession-xmpp's tests/support): keys, trust, offline publish /
//! send / receive, a chat over pipes, and the one-line errors a person sees with their exit
//! statuses. The tests that need no server (files, permissions, usage) are not ignored. The
//! chat through a terminal is tests/terminal.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

/// The error a person sees: one line, exit status `code`.
fn error_with(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("esession: "), "{err}");
    err
}

/// The message lines of an output, without their time stamps (`[HH:MM:SS] <peer> text`).
fn messages(out: &str) -> Vec<&str> {
    out.lines().map(|l| l.split_once("] ").map_or(l, |(_, r)| r)).filter(|l| l.starts_with('<')).collect()
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
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
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
    let lines: Vec<&str> = messages(&out);
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("<bob@localhost/") && lines[0].ends_with("> (sent while you were away) first"),
        "{out}"
    );
    assert!(lines[1].ends_with("> (sent while you were away) second"), "{out}");
    // Received once: a second receive shows nothing.
    let again = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    assert!(!again.contains("first"), "{again}");
    // Published again and withdrawn: Bob finds nothing to use any more.
    ok(&esession(&p, "alice", &["offline", "publish"]));
    assert!(ok(&esession(&p, "alice", &["offline", "withdraw"])).contains("withdrawn"));
    let err = error_with(&esession(&p, "bob", &["send", "alice@localhost", "third"]), 8);
    assert!(err.contains("no offline options"), "{err}");
}

#[test]
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
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
    assert!(error_with(&o, 5).contains("login refused"));
    // Unreachable server.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = Command::new(BIN)
        .args(["receive", "--jid", "alice@localhost", "--server", &format!("127.0.0.1:{port}"), "--data"])
        .arg(p.data("alice"))
        .env("ESESSION_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(error_with(&o, 6).contains("cannot reach the server"));
    // Untrusted options: Carol has not verified Alice's key.
    ok(&esession(&p, "alice", &["offline", "publish"]));
    // Issue 19: said for a person (it read "options-signature"), with the one command that
    // trusts the key after comparing.
    let o = esession(&p, "carol", &["send", "alice@localhost", "hi"]);
    let err = error_with(&o, 8);
    assert!(err.contains("its offline options are not signed by a key you trust"), "{err}");
    assert!(err.contains("esession trust verify alice@localhost"), "{err}");
    assert!(!err.contains("options-signature"), "{err}");
    // A contact without options.
    let o = esession(&p, "carol", &["send", "bob@localhost", "hi"]);
    assert!(error_with(&o, 8).contains("no offline options"));
    // Offline options need an identity key.
    let o = esession(&p, "bob", &["offline", "publish"]);
    assert!(error_with(&o, 4).contains("keygen"));
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
    assert!(error_with(&o, 4).contains("passphrase"));
    assert!(error_with(&run("wrong", &["trust", "list"]), 4).contains("passphrase"));
    assert!(ok(&run("right", &["fingerprint"])) == before, "the key was not replaced");
    // Issue 19: the fingerprint is of the public key, kept apart: no passphrase is asked for
    // (none given, no terminal: it used to fail with a usage error).
    let o = Command::new(BIN)
        .args(["fingerprint", "--data"])
        .arg(&dir)
        .env_remove("ESESSION_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(ok(&o), before, "{}", String::from_utf8_lossy(&o.stderr));
    // A usage error is clap's (exit 2).
    assert_eq!(Command::new(BIN).arg("send").output().unwrap().status.code(), Some(2));
}

#[test]
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
fn interactive_chat() {
    let p = Prosody::start(&["alice", "bob"]);
    keys(&p, &["alice", "bob"]);
    trust(&p, "alice", "bob");
    trust(&p, "bob", "alice");
    // Bob is in a chat with a known resource (a chat accepts sessions; a one-shot command such
    // as `receive` does not: a_one_shot_command_takes_no_session).
    let mut bob = Command::new(BIN)
        .args(["chat", "alice@localhost", "--jid", "bob@localhost/desk", "--server", &p.server(), "--data"])
        .arg(p.data("bob"))
        .env("ESESSION_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bob_in = bob.stdin.take().unwrap();
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
    std::thread::sleep(Duration::from_millis(1000));
    let mut bob_in = bob_in;
    bob_in.write_all(b"/quit\n").unwrap();
    drop(bob_in);
    let b_out = ok(&bob.wait_with_output().unwrap());
    let sas = |out: &str| -> String {
        let l = out.lines().find(|l| l.contains("* SAS ")).unwrap_or_else(|| panic!("no SAS in {out}"));
        l.split("SAS ").nth(1).unwrap().split(':').next().unwrap().to_owned()
    };
    assert_eq!(sas(&a_out), sas(&b_out), "the same SAS on both sides");
    assert!(a_out.contains("bob@localhost is verified (SAS"), "{a_out}");
    let got: Vec<&str> =
        messages(&b_out).into_iter().filter(|l| l.starts_with("<alice@localhost/")).collect();
    assert_eq!(got.len(), 2, "{b_out}");
    assert!(got[0].ends_with("> hello bob") && got[1].ends_with("> after the re-key"), "{b_out}");
    assert!(b_out.contains("encrypted session with alice@localhost"), "{b_out}");
    assert!(b_out.lines().any(|l| l.contains("alice@localhost ended the session")), "terminated: {b_out}");
}

/// A one-shot command's resource takes no session (issue 19): it announces no XEP-0116 feature
/// and declines requests, so a contact does not negotiate with a resource about to vanish.
#[test]
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
fn a_one_shot_command_takes_no_session() {
    let p = Prosody::start(&["alice", "bob"]);
    keys(&p, &["alice", "bob"]);
    trust(&p, "alice", "bob");
    trust(&p, "bob", "alice");
    // They see each other's presence: Alice sees Bob online.
    ok(&esession(&p, "alice", &["contact", "add", "bob@localhost"]));
    let list = ok(&esession(&p, "bob", &["contact", "list", "--wait", "1"]));
    assert!(list.contains("alice@localhost  asks to see your presence"), "{list}");
    ok(&esession(&p, "bob", &["contact", "approve", "alice@localhost"]));
    ok(&esession(&p, "alice", &["contact", "approve", "bob@localhost"]));
    let bob = Command::new(BIN)
        .args(["receive", "--wait", "5", "--jid", "bob@localhost/desk", "--server", &p.server(), "--data"])
        .arg(p.data("bob"))
        .env("ESESSION_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let o = esession(&p, "alice", &["send", "bob@localhost/desk", "hello bob"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("encrypted session"), "a session with a one-shot resource: {out}");
    let err = error_with(&o, 8);
    assert!(err.contains("takes no encrypted session now"), "{err}");
    let b_out = ok(&bob.wait_with_output().unwrap());
    assert!(!b_out.contains("encrypted session with alice") && !b_out.contains("hello bob"), "{b_out}");
}

/// `contact remove` of an address not in the roster (a mistyped one, or one removed already)
/// says so and removes nothing (issue 19); of a contact, it removes it.
#[test]
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
fn removing_an_address_not_in_the_contact_list_says_so() {
    let p = Prosody::start(&["alice", "bob"]);
    keys(&p, &["alice"]);
    let err = error_with(&esession(&p, "alice", &["contact", "remove", "bbo@localhost"]), 8);
    assert!(err.contains("bbo@localhost is not in your contact list: nothing was removed"), "{err}");
    ok(&esession(&p, "alice", &["contact", "add", "bob@localhost"]));
    let out = ok(&esession(&p, "alice", &["contact", "remove", "bob@localhost"]));
    assert!(out.contains("is removed from your contacts"), "{out}");
    let err = error_with(&esession(&p, "alice", &["contact", "remove", "bob@localhost"]), 8);
    assert!(err.contains("bob@localhost is not in your contact list"), "{err}");
}

/// A fresh directory for a test that needs no server, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("esession-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    /// `esession ARGS` with XDG_CONFIG_HOME and XDG_DATA_HOME inside this directory.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("XDG_CONFIG_HOME", self.0.join("config"))
            .env("XDG_DATA_HOME", self.0.join("data"))
            .env_remove("ESESSION_PASSWORD")
            .env_remove("ESESSION_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn read_only_commands_and_failed_logins_create_no_files() {
    let t = Scratch::new("nofiles");
    let data = t.0.join("data");
    let list = t.run(&["trust", "list", "--jid", "alice@example.org"]);
    assert!(ok(&list).starts_with("no trusted keys"));
    let show = t.run(&["trust", "show", "bob@example.org", "--jid", "alice@example.org"]);
    assert!(ok(&show).contains("no key known for bob@example.org"));
    assert!(error_with(&t.run(&["fingerprint", "--jid", "alice@example.org"]), 4).contains("keygen"));
    assert!(!data.exists(), "a read-only command created {}", data.display());
    // A login that fails (nothing listens on this port) leaves nothing behind either.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = format!("127.0.0.1:{port}");
    let o = t.run(&["receive", "--jid", "alice@example.org", "--password", "pw", "--server", &server]);
    assert!(error_with(&o, 6).contains("cannot reach the server"));
    assert!(!data.exists(), "a failed login created {}", data.display());
}

/// `fingerprint --pem FILE` says on standard error where the public key went (issue 19: it said
/// nothing), standard output keeps the fingerprint alone, and the status stays 0; with `-` the
/// key goes to standard output and nothing is said.
#[test]
fn fingerprint_pem_says_where_the_key_was_written() {
    let t = Scratch::new("pem");
    ok(&t.run(&["keygen", "--bits", "1024", "--jid", "alice@example.org"]));
    let file = t.0.join("alice.pub.pem");
    let o = t.run(&["fingerprint", "--pem", file.to_str().unwrap(), "--jid", "alice@example.org"]);
    let out = ok(&o);
    assert_eq!(out.lines().count(), 1, "the fingerprint alone: {out}");
    let err = String::from_utf8_lossy(&o.stderr);
    let shown = std::fs::canonicalize(&file).unwrap();
    assert!(err.contains(&format!("the public key was written to {}", shown.display())), "{err}");
    assert!(err.contains("esession trust verify alice@example.org"), "{err}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("BEGIN PUBLIC KEY"));
    let o = t.run(&["fingerprint", "--pem", "-", "--jid", "alice@example.org"]);
    assert!(ok(&o).contains("BEGIN PUBLIC KEY"));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// An argument that is not UTF-8 is a usage error (status 2), for the commands and for the
/// party: `std::env::args` panicked on it (status 101). So is an empty text to `send`.
#[cfg(unix)]
#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    let t = Scratch::new("utf8");
    let bad = std::ffi::OsStr::from_bytes(b"bad \xff arg");
    for args in [
        vec![std::ffi::OsStr::new("send"), std::ffi::OsStr::new("bob@example.com"), bad],
        vec![std::ffi::OsStr::new("party"), bad],
    ] {
        let o = Command::new(BIN)
            .args(&args)
            .env("XDG_CONFIG_HOME", t.0.join("config"))
            .env("XDG_DATA_HOME", t.0.join("data"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("UTF-8") && !err.contains("panicked"), "{err}");
    }
    // An empty text: nothing is sent, and the command does not say it sent something.
    let o = t.run(&["send", "bob@example.com", ""]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the text is empty"));
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = Scratch::new("private");
    ok(&t.run(&["keygen", "--bits", "1024", "--jid", "alice@example.org"]));
    let dir = t.0.join("data").join("esession").join("alice@example.org");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.join("esession.redb")), 0o600);
    assert_eq!(mode(&dir.join("seal.key")), 0o600);
    // Loosened by hand: made private again by the next command that writes.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("esession.redb"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = t.run(&["trust", "petname", "00", "x", "--jid", "alice@example.org"]);
    assert_eq!(o.status.code(), Some(4), "no such key");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("esession.redb")), 0o600);
}

#[cfg(unix)]
#[test]
fn the_config_file_is_used_only_when_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = Scratch::new("config");
    let cfg = t.0.join("config").join("esession");
    std::fs::create_dir_all(&cfg).unwrap();
    let file = cfg.join("config.toml");
    std::fs::write(&file, "jid = \"alice@example.org\"\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = error_with(&t.run(&["trust", "list"]), 3);
    assert!(e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The JID came from the file: the command runs.
    assert!(ok(&t.run(&["trust", "list"])).starts_with("no trusted keys"));
    // An unknown key is refused, with its line.
    std::fs::write(&file, "jid = \"alice@example.org\"\nservr = \"x\"\n").unwrap();
    let e = error_with(&t.run(&["trust", "list"]), 3);
    assert!(e.contains("config.toml:2") && e.contains("servr"), "{e}");
    // trust_on_first_use is read (on: see trust_on_first_use_pins_the_first_key).
    std::fs::write(&file, "trust_on_first_use = true\n").unwrap();
    ok(&t.run(&["trust", "list", "--jid", "alice@example.org"]));
}

/// `trust_on_first_use = true`: an offline message from a contact with no key yet is read (not
/// held), and that key is then trusted for the contact, pinned on first use and not verified
/// (issue 19: it read "verified"); without the setting it is held.
#[test]
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
fn trust_on_first_use_pins_the_first_key() {
    use std::os::unix::fs::PermissionsExt;
    let p = Prosody::start(&["alice", "bob", "carol", "dave"]);
    keys(&p, &["alice", "bob", "carol", "dave"]);
    trust(&p, "bob", "alice");
    trust(&p, "carol", "alice");
    trust(&p, "dave", "alice");
    ok(&esession(&p, "alice", &["offline", "publish"]));
    ok(&esession(&p, "bob", &["send", "alice@localhost", "from bob"]));
    let cfg = p.dir.join("alice-tofu.toml");
    std::fs::write(&cfg, "trust_on_first_use = true\n").unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with_tofu = |args: &[&str]| {
        let mut a = vec!["--config", cfg.to_str().unwrap()];
        a.extend_from_slice(args);
        esession(&p, "alice", &a)
    };
    let out = ok(&with_tofu(&["receive", "--wait", "0"]));
    let got = messages(&out);
    assert!(got.len() == 1 && got[0].ends_with(" from bob"), "{out}");
    // The pin is told, with the key's fingerprint, as the chat tells it (new-user trial).
    let bob_fp = ok(&esession(&p, "bob", &["fingerprint"])).trim().to_owned();
    assert!(
        out.contains(&format!("its key {bob_fp} was pinned on first use, not verified")),
        "{bob_fp}: {out}"
    );
    // A verified key's offline session names it in JSON (it read "fingerprint":null).
    ok(&esession(&p, "dave", &["send", "alice@localhost", "from dave, verified"]));
    trust(&p, "alice", "dave");
    let dave_fp = ok(&esession(&p, "dave", &["fingerprint"])).trim().to_owned();
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0", "--json"]));
    let session = out.lines().find(|l| l.contains(r#""event":"session""#)).unwrap_or_else(|| panic!("{out}"));
    let v: serde_json::Value = serde_json::from_str(session).unwrap();
    assert_eq!(v["fingerprint"].as_str(), Some(dave_fp.as_str()), "{session}");
    assert_eq!(v["verified"], true, "{session}");
    assert_eq!(v["pinned"], false, "{session}");
    let show = ok(&esession(&p, "alice", &["trust", "show", "bob@localhost"]));
    assert!(show.contains("pinned on first use, NOT verified  bob@localhost"), "{show}");
    assert!(show.contains("compare fingerprints with bob@localhost"), "{show}");
    assert!(show.contains("then `esession trust verify bob@localhost "), "{show}");
    // Without the setting, a contact with no key is held as before.
    ok(&esession(&p, "carol", &["send", "alice@localhost", "from carol"]));
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    assert!(messages(&out).is_empty() && out.contains("untrusted key"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    let k = Scratch::new("usage-key-file");
    // New-user trial: a key file that is not there is said to be missing (it read "no known
    // key has the fingerprint /nonexistent.pem").
    let e = error_with(
        &k.run(&["trust", "verify", "bob@example.org", "/nonexistent.pem", "--jid", "alice@example.org"]),
        2,
    );
    assert!(e.contains("/nonexistent.pem: no such file"), "{e}");
    let t = Scratch::new("usage");
    assert_eq!(t.run(&["send"]).status.code(), Some(2), "missing arguments");
    assert_eq!(t.run(&["frobnicate"]).status.code(), Some(2), "unknown command");
    let e = error_with(&t.run(&["send", "bob@@example.org", "hi", "--jid", "alice@example.org"]), 2);
    assert!(e.contains("not a valid JID"), "{e}");
    let e = error_with(&t.run(&["trust", "list", "--jid", "example.org"]), 2);
    assert!(e.contains("no user part"), "{e}");
    // No password, and no terminal to ask on.
    let e = error_with(&t.run(&["receive", "--jid", "alice@example.org", "--server", "127.0.0.1:9"]), 2);
    assert!(e.contains("password is needed"), "{e}");
    assert!(!t.0.join("data").exists());
}

#[test]
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
fn an_untrusted_offline_sender_is_held_then_trusted_and_read_once() {
    let p = Prosody::start(&["alice", "bob", "carol", "dave"]);
    keys(&p, &["alice", "bob", "carol", "dave"]);
    trust(&p, "bob", "alice");
    trust(&p, "carol", "alice");
    trust(&p, "dave", "alice");
    trust(&p, "alice", "bob");
    ok(&esession(&p, "alice", &["offline", "publish"]));
    ok(&esession(&p, "bob", &["send", "alice@localhost", "from bob"]));
    ok(&esession(&p, "carol", &["send", "alice@localhost", "from carol"]));
    ok(&esession(&p, "dave", &["send", "alice@localhost", "from dave"]));
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0", "--json"]));
    let events: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let bodies: Vec<&str> =
        events.iter().filter(|e| e["event"] == "message").map(|e| e["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["from bob"], "nothing of an untrusted sender is shown as a message: {out}");
    // Carol's message is held, with her key's fingerprint and the command that trusts it.
    let carol_fp = ok(&Command::new(BIN)
        .args(["fingerprint", "--data"])
        .arg(p.data("carol"))
        .args(["--jid", "carol@localhost"])
        .output()
        .unwrap())
    .trim()
    .to_owned();
    let compact: String = carol_fp.split_whitespace().collect();
    let held = events
        .iter()
        .find(|e| e["event"] == "held" && e["peer"].as_str().unwrap().starts_with("carol@localhost"))
        .unwrap_or_else(|| panic!("Carol's message vanished in silence: {out}"));
    assert_eq!(held["fingerprint"].as_str(), Some(carol_fp.as_str()), "{out}");
    let text = held["text"].as_str().unwrap();
    assert!(text.contains("untrusted key"), "{text}");
    assert!(text.contains(&format!("esession trust verify carol@localhost {compact}")), "{text}");
    assert!(events.iter().all(|e| e["time"].is_string()), "{out}");
    // In words, again (held until the decision), and `trust show` names it.
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    assert!(out.contains(&format!("from an untrusted key {carol_fp}")), "{out}");
    assert!(messages(&out).is_empty(), "{out}");
    let show = ok(&esession(&p, "alice", &["trust", "show", "carol@localhost"]));
    assert!(show.contains("NOT trusted: 1 offline message(s) held"), "{show}");
    // Alice compares fingerprints with Carol and trusts her key by its fingerprint: the held
    // message is shown then, once.
    let out = ok(&esession(&p, "alice", &["trust", "verify", "carol@localhost", &carol_fp]));
    assert!(out.contains("trusted for carol@localhost"), "{out}");
    let got = messages(&out);
    assert_eq!(got.len(), 1, "{out}");
    assert!(got[0].starts_with("<carol@localhost/") && got[0].ends_with(" from carol"), "{out}");
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    assert!(!out.contains("from carol"), "shown once: {out}");
    // Dave's is refused: dropped unread, never shown.
    let dave_fp = ok(&Command::new(BIN)
        .args(["fingerprint", "--data"])
        .arg(p.data("dave"))
        .args(["--jid", "dave@localhost"])
        .output()
        .unwrap())
    .trim()
    .to_owned();
    let out = ok(&esession(&p, "alice", &["trust", "refuse", "dave@localhost", &dave_fp]));
    assert!(out.contains("dropped 1"), "{out}");
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    assert!(!out.contains("dave"), "{out}");
    // Carol's key is trusted from now on: her next message arrives as any other.
    ok(&esession(&p, "alice", &["offline", "publish"]));
    ok(&esession(&p, "carol", &["send", "alice@localhost", "again"]));
    let out = ok(&esession(&p, "alice", &["receive", "--wait", "0"]));
    let got = messages(&out);
    assert!(got.iter().any(|l| l.starts_with("<carol@localhost/") && l.ends_with(" again")), "{out}");
    // Withdrawn: Bob's next message is refused, with a status a script can tell.
    ok(&esession(&p, "alice", &["offline", "withdraw"]));
    let e = error_with(&esession(&p, "bob", &["send", "alice@localhost", "late"]), 8);
    assert!(e.contains("no offline options"), "{e}");
}

/// A data directory made before JIDs were normalized (named `Alice@Example.ORG`, as the JID was
/// given) is the account's: the first command renames it to `alice@example.org` and says so
/// once on stderr; the account (its identity key) is the same. With two such directories,
/// none is chosen.
#[test]
fn an_earlier_unnormalized_data_directory_is_renamed_once() {
    let t = Scratch::new("earlier");
    let accounts = t.0.join("data").join("esession");
    let old = accounts.join("Alice@Example.ORG");
    let made =
        t.run(&["keygen", "--bits", "1024", "--jid", "alice@example.org", "--data", old.to_str().unwrap()]);
    let key = ok(&made).trim().strip_prefix("identity key: ").unwrap().to_owned();
    let first = t.run(&["fingerprint", "--jid", "Alice@Example.org/laptop"]);
    assert!(ok(&first).contains(&key), "the earlier account is used");
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Alice@Example.ORG") && err.contains("alice@example.org"), "{err}");
    assert!(!old.exists() && accounts.join("alice@example.org").join("esession.redb").exists());
    let second = t.run(&["fingerprint", "--jid", "alice@example.org"]);
    assert!(ok(&second).contains(&key));
    assert!(second.stderr.is_empty(), "said once: {}", String::from_utf8_lossy(&second.stderr));

    // Two earlier directories of one JID: neither is taken.
    let bob = ["BOB@example.org", "Bob@Example.org"].map(|n| accounts.join(n));
    for d in &bob {
        ok(&t.run(&["keygen", "--bits", "1024", "--jid", "bob@example.org", "--data", d.to_str().unwrap()]));
    }
    let o = t.run(&["fingerprint", "--jid", "bob@example.org"]);
    assert_eq!(o.status.code(), Some(4), "no account chosen: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("none is used"));
    assert!(bob.iter().all(|d| d.exists()) && !accounts.join("bob@example.org").exists());
}

/// Hostile review M4: the public key kept apart for `fingerprint` (identity.pub.pem) is not
/// sealed. It is written owner-only; `fingerprint` without the passphrase says that it reads
/// that copy; with the passphrase (or `--sealed`) it reads the sealed key, and a copy that holds
/// another key is written again from it, and that is said.
#[cfg(unix)]
#[test]
fn the_unsealed_public_key_is_checked_against_the_sealed_identity() {
    use std::os::unix::fs::PermissionsExt;
    let t = Scratch::new("pubcopy");
    let alice = t.0.join("alice");
    let mallory = t.0.join("mallory");
    let run = |dir: &std::path::Path, pass: Option<&str>, args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args).arg("--data").arg(dir).arg("--jid").arg("alice@example.org");
        c.env("XDG_CONFIG_HOME", t.0.join("config")).env_remove("ESESSION_PASSWORD").stdin(Stdio::null());
        match pass {
            Some(p) => c.env("ESESSION_PASSPHRASE", p),
            None => c.env_remove("ESESSION_PASSPHRASE"),
        };
        c.output().unwrap()
    };
    let real = ok(&run(&alice, Some("right"), &["keygen", "--bits", "1024"]));
    let real = real.trim().trim_start_matches("identity key: ").to_owned();
    let copy = alice.join("identity.pub.pem");
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    // Without the passphrase: the copy, and it says so.
    let o = run(&alice, None, &["fingerprint"]);
    assert_eq!(ok(&o).trim(), real);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the unsealed copy") && err.contains("--sealed"), "{err}");
    // Another key put in its place.
    ok(&run(&mallory, Some("other"), &["keygen", "--bits", "1024"]));
    std::fs::copy(mallory.join("identity.pub.pem"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let forged = ok(&run(&alice, None, &["fingerprint"])).trim().to_owned();
    assert_ne!(forged, real, "the copy is read without the passphrase");
    // With the passphrase: the sealed key, and the copy is written again (and said so).
    let o = run(&alice, Some("right"), &["fingerprint"]);
    assert_eq!(ok(&o).trim(), real);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did not hold the public key of the sealed identity key"), "{err}");
    assert_eq!(ok(&run(&alice, None, &["fingerprint"])).trim(), real, "the copy was rewritten");
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    // Any unlocking of the account does the same (here `trust list`).
    std::fs::copy(mallory.join("identity.pub.pem"), &copy).unwrap();
    let o = run(&alice, Some("right"), &["trust", "list"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("written again"), "{o:?}");
    assert_eq!(ok(&run(&alice, None, &["fingerprint"])).trim(), real);
    // `--sealed` without the passphrase and no terminal: it is needed, not the copy.
    let o = run(&alice, None, &["fingerprint", "--sealed"]);
    assert!(error_with(&o, 2).contains("passphrase"));
    // The key given to contacts (`--pem`) never comes from the copy: a planted copy is not
    // exported, and without the passphrase nothing is.
    std::fs::copy(mallory.join("identity.pub.pem"), &copy).unwrap();
    let o = run(&alice, None, &["fingerprint", "--pem", "-"]);
    assert!(error_with(&o, 2).contains("passphrase"), "{o:?}");
    let out = ok(&run(&alice, Some("right"), &["fingerprint", "--pem", "-"]));
    assert!(out.starts_with(&real), "{out}");
    let exported = out.split_once('\n').unwrap().1;
    let planted = std::fs::read_to_string(mallory.join("identity.pub.pem")).unwrap();
    assert_ne!(exported.trim(), planted.trim(), "the planted key was exported");
}
