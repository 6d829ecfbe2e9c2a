//! One progress line per host on stderr (only on a terminal); messages go through the
//! bars so they never tear them.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

/// Per-host progress lines.
pub struct Progress {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    enabled: bool,
    verbose: bool,
}

impl Progress {
    /// Progress lines for these hosts; hidden unless stderr is a terminal.
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a str>, verbose: bool) -> Progress {
        let enabled =
            std::io::stderr().is_terminal() && std::env::var_os("MESHUP_NO_PROGRESS").is_none();
        let multi = MultiProgress::with_draw_target(if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let hosts: Vec<&str> = hosts.into_iter().collect();
        let width = hosts.iter().map(|h| h.len()).max().unwrap_or(4);
        let style =
            ProgressStyle::with_template(&format!("{{spinner}} {{prefix:<{width}}} {{msg}}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let mut bars = BTreeMap::new();
        for host in hosts {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(host.to_string());
            bar.set_message("waiting");
            if enabled {
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            bars.insert(host.to_string(), bar);
        }
        Progress {
            multi,
            bars,
            enabled,
            verbose,
        }
    }

    /// Sets the phase shown for a host.
    pub fn set(&self, host: &str, message: impl Into<String>) {
        let message = message.into();
        if let Some(bar) = self.bars.get(host) {
            bar.set_message(message.clone());
        }
        if !self.enabled && self.verbose {
            eprintln!("{host}: {message}");
        }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: impl AsRef<str>) {
        if self.enabled {
            let _ = self.multi.println(line.as_ref());
        } else {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Ends a host's line with a final message.
    pub fn finish(&self, host: &str, message: impl Into<String>) {
        if let Some(bar) = self.bars.get(host) {
            bar.finish_with_message(message.into());
        }
    }

    /// Removes every line (before printing a recap).
    pub fn clear(&self) {
        for bar in self.bars.values() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
