//! `esession`: the command-line program of the esession workspace.
//!
//! * `esession demo`: Alice and Bob in one process: negotiation, SAS, messages, re-key,
//!   termination, then an offline session (no server needed);
//! * account commands against a real XMPP server (`--jid`, the password asked for or given,
//!   `--server`, or the configuration file `$XDG_CONFIG_HOME/esession/config.toml`): `keygen`,
//!   `fingerprint`, `trust list|show|verify|untrust|petname`, `contact add|approve|deny|remove|list`,
//!   `chat PEER`, `send PEER TEXT`, `offline publish|withdraw`, `receive` (docs/xmpp.md; exit
//!   statuses in [`exit`]);
//! * `esession vectors check FILE...`: recompute and replay test vectors (the `esession-vectors`
//!   library; docs/vectors.md);
//! * `esession party --role alice|bob --stdio [options]`: one party of the interop line
//!   protocol (docs/party.md).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// `println!` that does not panic when standard output is gone (`esession ... | head`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod account;
mod chat;
mod config;
mod demo;
mod exit;
mod input;
mod party;
mod show;

#[derive(Parser, Debug)]
#[command(name = "esession", version, about = "XMPP Encrypted Sessions (XEP-0116, XEP-0187, XEP-0200)")]
struct Cli {
    #[command(flatten)]
    common: account::Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Alice and Bob in one process: negotiation, SAS, messages, re-key, termination, offline.
    Demo,
    /// Test vectors (format: vectors/README.md).
    Vectors {
        #[command(subcommand)]
        cmd: VectorsCmd,
    },
    /// One party of the interop line protocol (options: see docs/party.md).
    #[command(disable_help_flag = true)]
    Party {
        /// --role alice|bob --stdio [--profile xep|gajim] [--jid JID] [--peer JID] [--modp 5,14]
        /// [--crypt ...] [--hash ...] [--identity KEY.pem] [--trust PUB.pem] [--oss SECRET]
        /// [--store DIR]
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    #[command(flatten)]
    Account(account::AccountCmd),
}

#[derive(Subcommand, Debug)]
enum VectorsCmd {
    /// Recompute and replay every vector; one line per check, exit 1 on any failure.
    Check {
        /// Vector files.
        #[arg(required = true)]
        files: Vec<String>,
    },
}

/// `esession vectors check FILE...`: the library's lines, then the summary; exit 1 on any
/// failure.
fn check_vectors(files: &[String]) -> ExitCode {
    let mut report = esession_vectors::Report::new();
    for f in files {
        let mark = report.lines().len();
        esession_vectors::check_file(std::path::Path::new(f), &mut report);
        for line in &report.lines()[mark..] {
            println!("{line}");
        }
    }
    println!("{}", report.summary());
    if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn main() -> ExitCode {
    // The party's options are its own (ARCHITECTURE.md): they never meet the account options.
    // `args_os`: `std::env::args` panics on an argument that is not UTF-8 (clap refuses it
    // below, with a usage error).
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if raw.first().and_then(|a| a.to_str()) == Some("party") {
        let Some(args) = raw[1..].iter().map(|a| a.to_str()).collect::<Option<Vec<&str>>>() else {
            eprintln!("esession: party: an argument is not UTF-8");
            return ExitCode::from(2);
        };
        return party::main(&args);
    }
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Demo => demo::main(),
        Cmd::Vectors { cmd: VectorsCmd::Check { files } } => check_vectors(&files),
        Cmd::Party { args } => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            party::main(&args)
        }
        Cmd::Account(cmd) => account::main(cli.common, cmd),
    }
}
