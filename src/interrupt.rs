//! Ctrl-C during apply: the first interrupt stops starting new work (no new host, no
//! next phase or wave) and lets the steps already running on hosts finish, so the run
//! ends with a recap and exit status 130; a second interrupt aborts at once. Hosts never
//! run on headless past their current step: a phase script that loses its SSH channel
//! dies at its next marker line (SIGPIPE), after the step in progress (a package
//! transaction runs to its end), and its lock goes with it.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the operator asked the run to stop.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    stopped: Arc<AtomicBool>,
}

/// The exit status of a run stopped by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

impl Interrupt {
    /// Listens for Ctrl-C on `runtime` from now on.
    pub fn install(runtime: &tokio::runtime::Handle) -> Interrupt {
        let interrupt = Interrupt::default();
        let stopped = Arc::clone(&interrupt.stopped);
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            stopped.store(true, Ordering::SeqCst);
            eprintln!(
                "\ninterrupted: no new host starts; waiting for the steps running now (Ctrl-C again aborts at once)"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\naborted");
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        });
        interrupt
    }

    /// The operator pressed Ctrl-C.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}
