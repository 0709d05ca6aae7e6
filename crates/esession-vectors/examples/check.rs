//! `cargo run -p esession-vectors --example check -- FILE...`: the checker without the CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let report = esession_vectors::check_files(&files);
    println!("{report}");
    if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
