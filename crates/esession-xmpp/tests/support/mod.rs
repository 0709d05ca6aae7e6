//! An XMPP server on loopback for end-to-end tests, started by the project's own script
//! (`e2e/server`: Prosody or ejabberd from Debian's packages, a free port, its own data
//! directory, accounts registered). `ESESSION_SERVER=ejabberd` selects ejabberd (default:
//! Prosody); `cargo xtask e2e` runs the tests against both.
//!
//! The end-to-end tests are `#[ignore]`d: a plain `cargo test` reports them as ignored, and
//! `cargo xtask e2e` / `cargo xtask test` run them (`--ignored`). Run, they need the server:
//! without it they fail with the command that installs it. They never pass without running.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const PASSWORD: &str = "correct horse";

/// A server started by `e2e/server`, stopped (and its directory removed) on drop.
pub struct Server {
    pub dir: PathBuf,
    pub port: u16,
    /// The direct-TLS port (XEP-0368), opened with TLS ([`Server::start_with`]).
    pub tls_port: Option<u16>,
    pub kind: String,
}

/// The tests' historical name: the server is Prosody unless `ESESSION_SERVER` says otherwise.
pub type Prosody = Server;

static N: AtomicU32 = AtomicU32::new(0);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/server")
}

fn server_cmd(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .env("E2E_PASSWORD", PASSWORD)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
    assert!(
        out.status.success(),
        "e2e/server {}: {}(install the server with `e2e/server install KIND`, or run `cargo xtask e2e`)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Server {
    /// Starts the server `ESESSION_SERVER` names (Prosody by default) with `users` registered;
    /// fails the test when it is not installed.
    pub fn start(users: &[&str]) -> Self {
        Self::start_with(users, false)
    }

    /// The same with STARTTLS required, on a self-signed certificate for `localhost`
    /// (`certs/localhost.crt`, made with openssl), and a direct-TLS port ([`Server::tls_port`]).
    pub fn start_with(users: &[&str], tls: bool) -> Self {
        let kind = std::env::var("ESESSION_SERVER").unwrap_or_else(|_| "prosody".into());
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("esession-e2e-{}-{n}", std::process::id()));
        let d = dir.to_str().unwrap().to_owned();
        let mut args = vec!["start", kind.as_str(), d.as_str()];
        if tls {
            args.push("--tls");
        }
        args.extend(users);
        let port =
            server_cmd(&args).lines().last().unwrap_or("").parse().expect("e2e/server printed no port");
        let tls_port = std::fs::read_to_string(dir.join("tls_port")).ok().map(|p| p.trim().parse().unwrap());
        assert_eq!(tls_port.is_some(), tls, "e2e/server --tls opens a direct-TLS port, and only then");
        Self { dir, port, tls_port, kind }
    }

    pub fn register(&self, user: &str) {
        server_cmd(&["register", self.dir.to_str().unwrap(), user]);
    }

    /// Stops the server and starts it again on the same port and data.
    pub fn restart(&mut self) {
        server_cmd(&["restart", self.dir.to_str().unwrap()]);
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A fresh data directory for one account.
    pub fn data(&self, user: &str) -> PathBuf {
        let d = self.dir.join("accounts").join(user);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", self.dir.to_str().unwrap_or("")]).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("{} data and log kept in {}", self.kind, self.dir.display());
        }
    }
}

pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../esession-crypto/tests/vectors/pem").join(name);
    std::fs::read_to_string(p).unwrap()
}
