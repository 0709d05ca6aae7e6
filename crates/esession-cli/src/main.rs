//! `esession`: the command-line program of the esession workspace.
//!
//! Commands available in this build:
//!
//! * `esession vectors check FILE...`: recompute and replay test vectors (docs/vectors.md);
//! * `esession demo`: Alice and Bob in one process: negotiation, SAS, messages, re-key,
//!   termination, then an offline session;
//! * `esession party --role alice|bob --stdio`: one party of the interop line protocol.

use std::process::ExitCode;

mod demo;
mod offline;
mod party;
mod replay;
mod vectors;

const USAGE: &str = "usage:
  esession vectors check FILE...   check test vector files (exit 1 on any failure)
  esession demo                    run the built-in demonstration
  esession party --role alice|bob --stdio [options]   one party driven by lines on stdin";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["vectors", "check", files @ ..] if !files.is_empty() => vectors::main(files),
        ["demo"] => demo::main(),
        ["party", rest @ ..] => party::main(rest),
        ["--help" | "-h" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
