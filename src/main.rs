//! The `microvision` binary: maps errors to messages and exit codes (docs/run-directory.md).

use clap::Parser;

fn main() {
    // Die quietly on a closed pipe (`microvision models | head`), like other Unix tools, instead
    // of panicking on the next print.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    microvision::device::tune_allocator();
    let cli = microvision::cli::Cli::parse();
    // tch turns LibTorch exceptions (out of memory, a shape a layer cannot take) into panics.
    // They are not bugs of ours: report them as errors (exit 1) without a backtrace, and keep
    // the default report, backtrace included, for every other panic.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if microvision::cli::torch_message(info.payload()).is_none() {
            default_hook(info);
        }
    }));
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| microvision::cli::run(cli))) {
        Ok(result) => result,
        Err(payload) => match microvision::cli::torch_message(payload.as_ref()) {
            Some(msg) => Err(microvision::Error::Runtime(format!(
                "libtorch: {msg} (if this is an out-of-memory error, lower data.batch_size)"
            ))),
            None => std::panic::resume_unwind(payload),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
