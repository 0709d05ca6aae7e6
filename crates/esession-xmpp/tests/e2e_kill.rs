//! Issue 21, through a real server (Prosody, or ejabberd with `ESESSION_SERVER=ejabberd`): Alice's
//! process is killed with SIGKILL at random points of an offline return and started again until
//! the return is finished; every message Bob sent while she was away must reach her application
//! exactly once.
//!
//! Alice's process is a child process (this test binary again, running [`kill_worker`]): it logs
//! in as a user's `esession receive` does (the account's data directory, `Client::connect`),
//! prints `DELIVER id body` for each message the client tells, acknowledges it
//! (`Client::ack`), prints `ACKED id`, and leaves when nothing came for a few seconds. The
//! test kills it after a random number of deliveries, or after a random delay (its login, the
//! return's first steps), and counts what the application printed: the same id after its
//! acknowledgement, or the same body twice, is a duplicate; a body never printed is lost.
//!
//! Small by default (a few kills, hundreds of messages: part of `cargo xtask e2e`);
//! `ESESSION_KILL_MESSAGES` and `ESESSION_KILL_KILLS` make it larger (docs/security.md quotes
//! a run of 100 kills and thousands of messages, by hand). `ESESSION_KILL_SEED` picks other
//! kill points; `ESESSION_KILL_VERBOSE` tells each process; `ESESSION_KILL_KEEP=FILE` keeps
//! the stderr of all of Alice's processes there (the server's directory is removed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use esession_crypto::PrivateKey;
use esession_xmpp::{Account, BareJid, Client, Delivery, Event, Options, Sealing, parse_jid};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{PASSWORD, Server, fixture};

fn bare(s: &str) -> BareJid {
    parse_jid(s).unwrap().to_bare()
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Alice's and Bob's accounts, each trusting the other's key.
fn accounts(p: &Server) {
    let alice = PrivateKey::from_pkcs8_pem(&fixture("rsa.pem")).unwrap();
    let bob =
        PrivateKey::generate_rsa(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng), 2048).unwrap();
    for (user, mine, theirs, peer) in [("alice", &alice, &bob, "bob"), ("bob", &bob, &alice, "alice")] {
        let acct = Account::open(&p.data(user), Sealing::KeyFile).unwrap();
        acct.set_identity(mine, false).unwrap();
        acct.trust(&bare(&format!("{peer}@localhost")), theirs.public_key()).unwrap();
    }
}

async fn login(p: &Server, jid: &str) -> Client {
    let user = jid.split('@').next().unwrap();
    let acct = Account::open(&p.data(user), Sealing::KeyFile).unwrap();
    Client::connect(Options::new(jid, PASSWORD, &p.server()), acct).await.unwrap()
}

/// Alice and Bob befriend each other; Alice goes offline (her options published); Bob sends
/// `n` messages `m00000`.. to her bare JID, all in one offline session (the first is its
/// start), and leaves.
async fn bob_sends_while_alice_is_away(p: &Server, n: usize) {
    let mut alice = login(p, "alice@localhost").await;
    let mut bob = login(p, "bob@localhost").await;
    let (aj, bj) = (alice.jid().to_bare(), bob.jid().to_bare());
    alice.subscribe(&bj).await.unwrap();
    bob.wait_for(|e| matches!(e, Event::SubscriptionRequest { peer } if *peer == aj)).await.unwrap();
    bob.approve(&aj).await.unwrap();
    bob.subscribe(&aj).await.unwrap();
    alice.wait_for(|e| matches!(e, Event::SubscriptionRequest { peer } if *peer == bj)).await.unwrap();
    alice.approve(&bj).await.unwrap();
    let af = alice.jid().clone();
    bob.wait_for(|e| matches!(e, Event::Presence { peer, available: true } if *peer == af)).await.unwrap();
    alice.go_offline().await.unwrap();
    bob.wait_for(|e| matches!(e, Event::Presence { peer, available: false } if *peer == af)).await.unwrap();
    let to = parse_jid("alice@localhost").unwrap();
    for i in 0..n {
        assert_eq!(bob.send_text(&to, &format!("m{i:05}")).await.unwrap(), Delivery::Offline);
    }
    bob.disconnect().await.unwrap();
}

/// Alice's process, as a child of [`a_return_through_the_server_survives_random_kill_9`] (which
/// sets `ESESSION_KILL_DIR` and `ESESSION_KILL_SERVER`; alone, it does nothing).
#[tokio::test]
#[ignore = "a child process of a_return_through_the_server_survives_random_kill_9"]
async fn kill_worker() {
    use std::io::Write;
    let (Ok(dir), Ok(server)) = (std::env::var("ESESSION_KILL_DIR"), std::env::var("ESESSION_KILL_SERVER"))
    else {
        return;
    };
    // Each process's stderr follows the last one's in the same file (ESESSION_KILL_KEEP).
    eprintln!("WORKER {}", std::process::id());
    let acct = Account::open(Path::new(&dir), Sealing::KeyFile).unwrap();
    // A bare JID, as `esession receive` gives it: the account binds its own resource, the
    // same in every process (`Account::resource`; see docs/security.md on another).
    // (ESESSION_KILL_NEW_RESOURCE: a new resource in every process instead, to compare.)
    let jid = match std::env::var_os("ESESSION_KILL_NEW_RESOURCE") {
        Some(_) => format!("alice@localhost/r{}", std::process::id()),
        None => "alice@localhost".to_owned(),
    };
    let opts = Options::new(&jid, PASSWORD, &server);
    let mut out = std::io::stdout();
    // A server busy storing offline again what a killed stream left may not let us in within
    // the timeout: told, and the test starts another process (as a user would run the command
    // again).
    let mut alice = match Client::connect(opts, acct).await {
        Ok(c) => c,
        Err(e) => {
            writeln!(out, "\nLOGIN {e}").unwrap();
            out.flush().unwrap();
            return;
        }
    };
    writeln!(out, "\nONLINE").unwrap();
    out.flush().unwrap();
    loop {
        // Quiet for long enough: a server that stores a long return offline again (Prosody, when
        // this process replaced a stream that died with thousands unacknowledged) is silent
        // meanwhile.
        let e = match tokio::time::timeout(Duration::from_secs(12), alice.next_event()).await {
            Err(_) => break,
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                writeln!(out, "\nERROR {e}").unwrap();
                continue;
            }
        };
        match &e {
            Event::Message { id: Some(id), .. } => {
                let body = e.body().unwrap_or_default();
                writeln!(out, "\nDELIVER {id} {body}").unwrap();
                out.flush().unwrap();
                if std::env::var("ESESSION_KILL_STALL").is_ok_and(|b| b == body) {
                    // The application is slow with this one: meanwhile tokio-xmpp reads on,
                    // and answers the server's <r/> (the test kills this process now).
                    writeln!(out, "\nSTALL").unwrap();
                    out.flush().unwrap();
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                alice.ack(id).unwrap();
                writeln!(out, "\nACKED {id}").unwrap();
            }
            // What the application is told about a loss (never content).
            Event::Failed { failure, .. } => writeln!(out, "\nFAILED {failure}").unwrap(),
            _ => {}
        }
        out.flush().unwrap();
    }
    // A server still busy may not close the stream in time: told, not a failure of the return.
    if let Err(e) = alice.disconnect().await {
        writeln!(out, "\nERROR leaving: {e}").unwrap();
    }
    writeln!(out, "\nQUIET").unwrap();
    out.flush().unwrap();
}

/// What the application printed over all of Alice's processes.
#[derive(Default)]
struct Tally {
    bodies: HashMap<String, String>,
    acked: HashSet<String>,
    duplicates: Vec<String>,
    failures: Vec<String>,
    errors: Vec<String>,
    /// Logins that failed (a busy server), each followed by another process.
    logins: Vec<String>,
}

/// One process of Alice: killed after `kill_after` deliveries, or after `delay`, or left to
/// finish. Returns (killed, deliveries).
fn one_process(
    p: &Server,
    tally: &mut Tally,
    kill_after: Option<usize>,
    delay: Option<Duration>,
    stall: Option<&str>,
) -> (bool, usize) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    if let Some(body) = stall {
        child.env("ESESSION_KILL_STALL", body);
    }
    let mut child = child
        .args(["kill_worker", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("ESESSION_KILL_DIR", p.data("alice"))
        .env("ESESSION_KILL_SERVER", p.server())
        .stdout(std::process::Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new().create(true).append(true).open(p.dir.join("alice.stderr")).unwrap(),
        )
        .spawn()
        .unwrap();
    let pid = child.id();
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kill = {
        let killed = killed.clone();
        move || {
            if !killed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // SIGKILL: no destructor runs, nothing in flight is committed or flushed.
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    };
    if let Some(d) = delay {
        let kill = kill.clone();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            kill();
        });
    }
    let mut delivered = 0;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("DELIVER ") {
            let (id, body) = rest.split_once(' ').unwrap();
            if tally.acked.contains(id) {
                tally.duplicates.push(format!("{body} (id {id} after its acknowledgement)"));
            }
            match tally.bodies.insert(body.to_owned(), id.to_owned()) {
                Some(old) if old != id => tally.duplicates.push(format!("{body} (ids {old} and {id})")),
                _ => {}
            }
            delivered += 1;
            if kill_after == Some(delivered) {
                kill();
            }
        } else if let Some(id) = line.strip_prefix("ACKED ") {
            tally.acked.insert(id.to_owned());
        } else if line == "STALL" {
            // Long enough for the rest of the return and the server's <r/> to reach it.
            std::thread::sleep(Duration::from_secs(2));
            kill();
        } else if let Some(f) = line.strip_prefix("FAILED ") {
            tally.failures.push(f.to_owned());
        } else if let Some(e) = line.strip_prefix("LOGIN ") {
            tally.logins.push(e.to_owned());
            delivered = usize::MAX;
        } else if let Some(e) = line.strip_prefix("ERROR ") {
            tally.errors.push(e.to_owned());
        }
    }
    let status = child.wait().unwrap();
    let was_killed = killed.load(std::sync::atomic::Ordering::SeqCst) && !status.success();
    if !was_killed && !status.success() {
        let all = std::fs::read_to_string(p.dir.join("alice.stderr")).unwrap_or_default();
        // This process's (the file holds every process's, each after its WORKER line).
        let err = all.rfind("\nWORKER ").map_or(all.as_str(), |at| &all[at..]);
        let tail: String = err
            .lines()
            .filter(|l| !l.trim_start().starts_with("at "))
            .take(12)
            .collect::<Vec<_>>()
            .join("\n");
        panic!("Alice's process failed: {status}:\n{tail}");
    }
    (was_killed, delivered)
}

#[test]
#[ignore = "end-to-end against a server: run by `cargo xtask e2e` and `cargo xtask test`"]
fn a_return_through_the_server_survives_random_kill_9() {
    let n = env_num("ESESSION_KILL_MESSAGES", 300);
    let want_kills = env_num("ESESSION_KILL_KILLS", 6);
    let p = Server::start(&["alice", "bob"]);
    accounts(&p);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sent = Instant::now();
    rt.block_on(bob_sends_while_alice_is_away(&p, n));
    drop(rt);
    eprintln!("{}: {n} messages stored in {:.1} s", p.kind, sent.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut x: u64 = std::env::var("ESESSION_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Spread the kills over about half the return, n / (2 want_kills) deliveries apart on
    // average, at random
    // (the last kill: while the application is slow with the eighth message before the end;
    // tokio-xmpp has read the rest and answered the server's <r/> meanwhile: without
    // `AckGate`, what it counted and the application had not handled was lost).
    let spread = (n / want_kills.max(1)).max(2) as u64;
    let stall = format!("m{:05}", n.saturating_sub(8));
    let (mut kills, mut runs, mut empty) = (0, 0, 0);
    while tally.bodies.len() < n && empty < 3 {
        runs += 1;
        let r = next();
        let (after, delay) = if kills + 1 >= want_kills {
            (None, None)
        } else if r % 4 == 0 {
            // Somewhere in the login and the first steps of the return.
            (None, Some(Duration::from_millis((r >> 8) % 700)))
        } else {
            (Some(1 + ((r >> 8) % spread) as usize), None)
        };
        let failed_before = tally.failures.len();
        let stalled = (kills + 1 == want_kills).then_some(stall.as_str());
        let (killed, delivered) = one_process(&p, &mut tally, after, delay, stalled);
        if std::env::var_os("ESESSION_KILL_VERBOSE").is_some() {
            eprintln!(
                "process {runs}: kill after {after:?} / {delay:?}: killed {killed}, {delivered} delivered, \
                 {} distinct so far, told {:?}",
                tally.bodies.len(),
                &tally.failures[failed_before..tally.failures.len().min(failed_before + 3)]
            );
        }
        kills += usize::from(killed);
        if delivered == usize::MAX {
            // The login failed: not a quiet end of the return.
            assert!(tally.logins.len() < 30, "logins failing: {:?}", tally.logins);
            std::thread::sleep(Duration::from_secs(2));
            continue;
        }
        empty = if delivered == 0 && !killed { empty + 1 } else { 0 };
        assert!(runs < 10 * want_kills + 50, "no progress");
    }
    if let Some(keep) = std::env::var_os("ESESSION_KILL_KEEP") {
        let _ = std::fs::copy(p.dir.join("alice.stderr"), keep);
    }
    let lost: Vec<String> =
        (0..n).map(|i| format!("m{i:05}")).filter(|b| !tally.bodies.contains_key(b)).collect();
    eprintln!(
        "{}: {n} messages, {runs} processes, {kills} killed, {:.1} s: {} lost, {} duplicated; \
         logins failed: {:?}; failures told: {:?}; errors: {:?}",
        p.kind,
        started.elapsed().as_secs_f64(),
        lost.len(),
        tally.duplicates.len(),
        tally.logins,
        {
            let mut kinds: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
            for f in &tally.failures {
                *kinds.entry(f.as_str()).or_default() += 1;
            }
            kinds
        },
        tally.errors,
    );
    assert!(tally.duplicates.is_empty(), "delivered twice: {:?}", tally.duplicates);
    assert!(lost.is_empty(), "lost {} of {n}: {:?}", lost.len(), &lost[..lost.len().min(20)]);
    assert!(kills >= want_kills, "only {kills} kills");
}
