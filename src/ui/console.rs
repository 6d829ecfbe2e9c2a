//! What the terminal may show for this process: whether output is quiet. Set once by
//! the command line before a command runs; read where output is drawn (progress), the
//! way the colour choice is installed once as miette's report hook.
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress display, and commands print only errors and failures besides
/// the output they were asked for.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}
