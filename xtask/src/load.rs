//! `cargo xtask load [--quick] [--no-server]`: the load run of issue 21. Starts Prosody on
//! loopback with the project's own script (`e2e/server start prosody DIR alice bob`), builds the
//! load generator (`crates/esession-xmpp/examples/load.rs`) in release, runs it against the
//! server, then the run through the server again against ejabberd (installed by the script
//! when missing, as for the end-to-end tests), and writes its section into docs/performance.md between
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
    "client.enc_us.200",
    "client.clear_us.200",
    "client.enc_us.4096",
    "client.clear_us.4096",
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
    let server = if no_server { None } else { Some(start_server("prosody")?) };
    let mut generator = Command::new(root().join("target/release/examples/load"));
    if let Some((guard, port)) = &server {
        server_args(&mut generator, guard, *port);
    }
    if quick {
        generator.arg("--quick");
    }
    let mut required: Vec<&str> = REQUIRED.to_vec();
    if !no_server {
        required.extend(REQUIRED_SERVER);
    }
    let mut section = generate(generator, &required)?;
    drop(server);
    // ejabberd, the second reference server: the run through the server again.
    if !no_server {
        let (guard, port) = start_server("ejabberd")?;
        let mut second = Command::new(root().join("target/release/examples/load"));
        second.args(["--server-only", "ejabberd"]);
        server_args(&mut second, &guard, port);
        if quick {
            second.arg("--quick");
        }
        section.push_str(&generate(second, REQUIRED_SERVER)?);
    }
    let section = section.as_str();
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

/// Starts `kind` on loopback with the project's script, with the accounts alice and bob: the
/// guard that stops it, and its client port.
fn start_server(kind: &str) -> Result<(Server, u16), String> {
    crate::ensure_server(kind)?;
    let dir = std::env::temp_dir().join(format!("esession-load-{kind}-{}", std::process::id()));
    let out = Command::new(root().join("e2e/server"))
        .args(["start", kind])
        .arg(&dir)
        .args(["alice", "bob"])
        .env("E2E_PASSWORD", "correct horse")
        .output()
        .map_err(|e| format!("cannot run e2e/server: {e}"))?;
    let guard = Server(dir);
    if !out.status.success() {
        return Err(format!("e2e/server start {kind} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port: u16 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("e2e/server printed no port")?;
    Ok((guard, port))
}

/// `--port` and, when the server's process is found, `--server-pid` (its CPU time per message):
/// Prosody's pid file, or the Erlang VM whose command line names ejabberd's directory.
fn server_args(generator: &mut Command, guard: &Server, port: u16) {
    generator.arg("--port").arg(port.to_string());
    let pid = std::fs::read_to_string(guard.0.join("pid")).ok().map(|p| p.trim().to_owned()).or_else(|| {
        let dir = guard.0.to_string_lossy().into_owned();
        std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd);
            (name.parse::<u32>().is_ok() && cmd.contains("beam") && cmd.contains(&dir)).then_some(name)
        })
    });
    match pid {
        Some(pid) => {
            generator.arg("--server-pid").arg(pid);
        }
        None => eprintln!("xtask: the server's process was not found: its CPU column reads 0"),
    }
}

/// Runs the load generator: its section for docs/performance.md, after checking that every
/// figure in `required` was measured (a positive number).
fn generate(mut generator: Command, required: &[&str]) -> Result<String, String> {
    eprintln!("xtask: running {generator:?}");
    let out = generator.output().map_err(|e| format!("cannot run the load generator: {e}"))?;
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
    let missing: Vec<&str> =
        required.iter().copied().filter(|n| !figure(n).is_some_and(|v| v.is_finite() && v > 0.0)).collect();
    if !missing.is_empty() {
        return Err(format!("the load run measured nothing for: {}", missing.join(", ")));
    }
    match (text.find("BEGIN-SECTION\n"), text.find("END-SECTION")) {
        (Some(a), Some(b)) if a < b => Ok(text[a + "BEGIN-SECTION\n".len()..b].to_owned()),
        _ => Err("the load generator printed no section".into()),
    }
}
