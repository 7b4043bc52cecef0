//! Ctrl-C and SIGTERM: the first one cancels the running build (sandboxes are killed and steps
//! unwind, removing their scratch directories); a second one exits at once.
//!
//! The handler only sets a flag (the one thing a signal handler may safely do); a watcher
//! thread turns it into a cancellation. A handler rather than a blocked signal mask, because a
//! mask is inherited by the sandbox processes strata starts, while a handler is reset to the
//! default by `exec`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use strata_builder::scheduler::Cancel;

static RECEIVED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn note_signal(_: nix::libc::c_int) {
    RECEIVED.fetch_add(1, Ordering::SeqCst);
}

/// Cancels `cancel` on the first SIGINT/SIGTERM; exits with status 130 on the second.
pub fn on_interrupt(cancel: Cancel) {
    let action = SigAction::new(SigHandler::Handler(note_signal), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only increments an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            tracing::warn!("cannot handle {sig}: {e}");
        }
    }
    std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let n = RECEIVED.load(Ordering::SeqCst);
            if n > seen {
                if seen == 0 {
                    eprintln!("interrupted: stopping the build");
                    cancel.cancel();
                } else {
                    std::process::exit(130);
                }
                seen = n;
            }
        }
    });
}

/// Makes a write to a closed pipe end the process quietly, as it does for other Unix tools
/// (`strata inspect IMAGE | head`). Rust ignores SIGPIPE by default, which turns such a write
/// into an error (and `println!` into a panic). Only for commands that just print: a build keeps
/// the default, so it can unwind and clean up instead of dying mid-step.
pub fn quiet_on_closed_pipe() {
    // SAFETY: restoring the default disposition installs no handler.
    if let Err(e) = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        tracing::warn!("cannot reset SIGPIPE: {e}");
    }
}
