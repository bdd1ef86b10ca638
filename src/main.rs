//! The `intuitor` binary: parse, run, print the error chain, exit non-zero on failure.

use clap::Parser;

fn main() -> std::process::ExitCode {
    intuitor::runtime::tune_allocator();
    let cli = intuitor::cli::Cli::parse();
    match intuitor::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
