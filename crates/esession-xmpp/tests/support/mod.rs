//! A Prosody on loopback for end-to-end tests: a free port, its own data directory, the
//! repository's config (`e2e/prosody.cfg.lua.in`), accounts registered with prosodyctl.
//!
//! The end-to-end tests are `#[ignore]`d: a plain `cargo test` reports them as ignored, and
//! `cargo xtask e2e` / `cargo xtask test` run them (`--ignored`). Run, they need Prosody:
//! without it they fail with the command that installs it. They never pass without running.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse";

pub struct Prosody {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

static N: AtomicU32 = AtomicU32::new(0);

fn have_prosody() -> bool {
    Command::new("prosodyctl").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

impl Prosody {
    /// Starts a server with `users` registered; fails the test when Prosody is not installed.
    pub fn start(users: &[&str]) -> Self {
        Self::start_with(users, false)
    }

    /// The same with STARTTLS required, on a self-signed certificate for `localhost`
    /// (`certs/localhost.crt`, made with openssl).
    pub fn start_with(users: &[&str], tls: bool) -> Self {
        assert!(
            have_prosody(),
            "this end-to-end test needs Prosody: `apt-get install prosody lua-unbound`, or run `cargo xtask e2e` (which installs it)"
        );
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("esession-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let template = include_str!("../../../../e2e/prosody.cfg.lua.in");
        let ssl = if tls {
            let st = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                ])
                .args([
                    "-addext",
                    "subjectAltName=DNS:localhost",
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                ])
                .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
                .arg(dir.join("certs/localhost.key"))
                .arg("-out")
                .arg(dir.join("certs/localhost.crt"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "openssl req");
            format!(
                "ssl = {{ key = \"{0}/certs/localhost.key\"; certificate = \"{0}/certs/localhost.crt\"; }}",
                dir.display()
            )
        } else {
            String::new()
        };
        let cfg = template
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@PORT@", &port.to_string())
            .replace("@DISABLED_TLS@", if tls { "" } else { "\"tls\"" })
            .replace("@REQUIRE_ENCRYPTION@", if tls { "true" } else { "false" })
            .replace("@SSL@", &ssl);
        std::fs::write(dir.join("prosody.cfg.lua"), cfg).unwrap();
        let mut p = Self { dir, port, child: None };
        for u in users {
            p.register(u);
        }
        p.run();
        p
    }

    fn config(&self) -> PathBuf {
        self.dir.join("prosody.cfg.lua")
    }

    pub fn register(&self, user: &str) {
        let st = Command::new("prosodyctl")
            .arg("--config")
            .arg(self.config())
            .args(["register", user, "localhost", PASSWORD])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "prosodyctl register {user}");
    }

    fn run(&mut self) {
        let child = Command::new("prosody")
            .arg("--config")
            .arg(self.config())
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "Prosody did not open port {}: see {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prosody.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: Prosody shuts down cleanly and flushes its storage.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let t = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.run();
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

impl Drop for Prosody {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Prosody log kept in {}", self.dir.display());
        }
    }
}

pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../esession-crypto/tests/vectors/pem").join(name);
    std::fs::read_to_string(p).unwrap()
}
