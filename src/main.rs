//! The `microvision` binary: maps errors to messages and exit codes (see README).

use clap::Parser;

fn main() {
    let cli = microvision::cli::Cli::parse();
    if let Err(e) = microvision::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
