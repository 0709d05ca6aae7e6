//! `cargo xtask load [--quick] [--no-server]`: the load run of issue 21. Starts Prosody on
//! loopback with the project's own script (`e2e/server start prosody DIR alice bob`), builds the
//! load generator (`crates/esession-xmpp/examples/load.rs`) in release, runs it against the
//! server, and writes its section into docs/performance.md between
//! `<!-- BEGIN xtask load -->` and `<!-- END xtask load -->` (`--quick`: printed only). The
//! server is stopped whatever happens. A run that measured nothing (a figure missing, zero, or
//! not a number) fails. Not part of `cargo xtask test`.

use crate::{cargo, root, run};
use std::process::Command;

/// The figures a complete run must print (`FIG name value`), each a positive number.
const REQUIRED: &[&str] = &[
    "mem.session.100",
    "mem.pending.100",
    "negotiation.bot_ms.100",
    "negotiation.primitives_ms.100",
    "first_message_ms.100",
    "flood.factor.100",
    "flood.factor_cut.100",
];
const REQUIRED_SERVER: &[&str] = &[
    "server.first_message_ms",
    "server.enc_per_s.200",
    "server.clear_per_s.200",
    "server.enc_per_s.4096",
    "server.clear_per_s.4096",
];

/// Stops the server when dropped.
struct Server(std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(root().join("e2e/server")).arg("stop").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn run_load(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let no_server = args.iter().any(|a| a == "--no-server");
    let mut build = cargo();
    build.args(["build", "--release", "-p", "esession-xmpp", "--example", "load"]);
    run(build)?;
    let server = if no_server {
        None
    } else {
        crate::ensure_server("prosody")?;
        let dir = std::env::temp_dir().join(format!("esession-load-server-{}", std::process::id()));
        let out = Command::new(root().join("e2e/server"))
            .args(["start", "prosody"])
            .arg(&dir)
            .args(["alice", "bob"])
            .env("E2E_PASSWORD", "correct horse")
            .output()
            .map_err(|e| format!("cannot run e2e/server: {e}"))?;
        let guard = Server(dir);
        if !out.status.success() {
            return Err(format!("e2e/server start failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port: u16 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("e2e/server printed no port")?;
        Some((guard, port))
    };
    let mut generator = Command::new(root().join("target/release/examples/load"));
    if let Some((guard, port)) = &server {
        generator.arg("--port").arg(port.to_string());
        // Prosody's pid, for its CPU time per message.
        if let Ok(pid) = std::fs::read_to_string(guard.0.join("pid")) {
            generator.arg("--server-pid").arg(pid.trim());
        }
    }
    if quick {
        generator.arg("--quick");
    }
    eprintln!("xtask: running {generator:?}");
    let out = generator.output().map_err(|e| format!("cannot run the load generator: {e}"))?;
    drop(server);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        return Err(format!("the load generator failed: {}", out.status));
    }
    let figure = |name: &str| -> Option<f64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("FIG "))
            .find_map(|l| l.split_once(' ').filter(|(n, _)| *n == name).and_then(|(_, v)| v.parse().ok()))
    };
    let mut required: Vec<&str> = REQUIRED.to_vec();
    if !no_server {
        required.extend(REQUIRED_SERVER);
    }
    let missing: Vec<&str> =
        required.into_iter().filter(|n| !figure(n).is_some_and(|v| v.is_finite() && v > 0.0)).collect();
    if !missing.is_empty() {
        return Err(format!("the load run measured nothing for: {}", missing.join(", ")));
    }
    let section = match (text.find("BEGIN-SECTION\n"), text.find("END-SECTION")) {
        (Some(a), Some(b)) if a < b => &text[a + "BEGIN-SECTION\n".len()..b],
        _ => return Err("the load generator printed no section".into()),
    };
    if quick {
        eprintln!(
            "xtask: --quick: figures printed, docs/performance.md left as it is (a full run writes it)"
        );
        return Ok(());
    }
    crate::bench::write_between(
        &root().join("docs/performance.md"),
        "<!-- BEGIN xtask load -->",
        "<!-- END xtask load -->",
        section,
    )?;
    eprintln!("xtask: wrote docs/performance.md");
    Ok(())
}
