//! The `intuitor` binary: parse, run, print the error chain, exit non-zero on failure.

use clap::Parser;

fn main() -> std::process::ExitCode {
    intuitor::runtime::tune_allocator();
    intuitor::runtime::pin_thread_count();
    let cli = intuitor::cli::Cli::parse();
    match intuitor::runtime::in_thread_pool(|| intuitor::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // candle errors append a backtrace when RUST_BACKTRACE is set; the user gets the
            // message only.
            let text = format!("{e:#}");
            let message = text.split("\n   0: ").next().unwrap_or_default();
            eprintln!("error: {}", message.trim_end());
            std::process::ExitCode::FAILURE
        }
    }
}
