//! The `microvision` binary: maps errors to messages and exit codes (see README).

use clap::Parser;

fn main() {
    // Die quietly on a closed pipe (`microvision models | head`), like other Unix tools, instead
    // of panicking on the next print.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = microvision::cli::Cli::parse();
    if let Err(e) = microvision::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
