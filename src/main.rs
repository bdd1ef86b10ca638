//! The `intuitor` binary: parse, run, print the error chain, exit non-zero on failure.
//!
//! Exit codes (ripgrep's convention): 0 on success; 2 for a usage or configuration error (clap's
//! own code for bad arguments, and any [`ConfigError`] in the chain: a config file that cannot
//! be read or parsed, an unknown key, a bad value, a failed check); 1 for a runtime failure;
//! 128 + the signal's number for a training run stopped by SIGINT or SIGTERM (130, 143), after
//! its checkpoint.

use clap::Parser;
use intuitor::config::ConfigError;
use intuitor::train::interrupt::Interrupted;

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
            if let Some(stop) = e.downcast_ref::<Interrupted>() {
                return std::process::ExitCode::from(stop.exit_code());
            }
            let usage = e.chain().any(|cause| cause.is::<ConfigError>());
            std::process::ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
