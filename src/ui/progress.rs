//! Progress on stderr, one type for every command. Hosts report events through a
//! channel to one UI thread that owns the indicatif bars, so no two tasks ever draw at
//! once and log lines printed through it never tear the bars. Bars are drawn only on a
//! terminal and without `--quiet`; with `-v` and no bars, events are printed as plain
//! lines.
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Above this many hosts, one summary bar replaces the per-host lines.
const MAX_HOST_LINES: usize = 20;

enum Event {
    Set(String, String),
    Finish(String, String),
    Println(String),
    Clear(mpsc::Sender<()>),
}

/// Progress of a run over many hosts.
pub struct Progress {
    tx: mpsc::Sender<Event>,
    ui: Option<JoinHandle<()>>,
}

struct Ui {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    summary: Option<ProgressBar>,
    enabled: bool,
    verbose: bool,
}

impl Ui {
    fn new(hosts: Vec<String>, verbose: bool) -> Ui {
        let enabled = std::io::stderr().is_terminal()
            && std::env::var_os("MESHUP_NO_PROGRESS").is_none()
            && !super::console::quiet();
        let multi = MultiProgress::with_draw_target(if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let mut bars = BTreeMap::new();
        let mut summary = None;
        if hosts.len() > MAX_HOST_LINES {
            let bar = multi.add(ProgressBar::new(hosts.len() as u64));
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {msg} {pos}/{len} hosts {elapsed}")
            {
                bar.set_style(style);
            }
            if enabled {
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            summary = Some(bar);
        } else {
            let width = hosts.iter().map(String::len).max().unwrap_or(4);
            let style =
                ProgressStyle::with_template(&format!("{{spinner}} {{prefix:<{width}}} {{msg}}"))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for host in hosts {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(host.clone());
                bar.set_message("waiting");
                if enabled {
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
                bars.insert(host, bar);
            }
        }
        Ui {
            multi,
            bars,
            summary,
            enabled,
            verbose,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Set(host, message) => {
                if let Some(bar) = self.bars.get(&host) {
                    bar.set_message(message.clone());
                } else if let Some(bar) = &self.summary {
                    bar.set_message(message.clone());
                }
                if !self.enabled && self.verbose {
                    eprintln!("{host}: {message}");
                }
            }
            Event::Finish(host, message) => {
                if let Some(bar) = self.bars.get(&host) {
                    bar.finish_with_message(message.clone());
                } else if let Some(bar) = &self.summary {
                    bar.inc(1);
                }
                if !self.enabled && self.verbose {
                    eprintln!("{host}: {message}");
                }
            }
            Event::Println(line) => {
                if self.enabled {
                    let _ = self.multi.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
            Event::Clear(ack) => {
                for bar in self.bars.values().chain(self.summary.iter()) {
                    bar.finish_and_clear();
                }
                let _ = self.multi.clear();
                let _ = ack.send(());
            }
        }
    }
}

impl Progress {
    /// Progress for these hosts; drawn only when stderr is a terminal.
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a str>, verbose: bool) -> Progress {
        let hosts: Vec<String> = hosts.into_iter().map(str::to_string).collect();
        let (tx, rx) = mpsc::channel::<Event>();
        let ui = std::thread::Builder::new()
            .name("meshup-progress".into())
            .spawn(move || {
                let mut ui = Ui::new(hosts, verbose);
                for event in rx {
                    ui.handle(event);
                }
            })
            .ok();
        Progress { tx, ui }
    }

    /// Sets the phase shown for a host.
    pub fn set(&self, host: &str, message: impl Into<String>) {
        let _ = self.tx.send(Event::Set(host.to_string(), message.into()));
    }

    /// Ends a host's line with a final message.
    pub fn finish(&self, host: &str, message: impl Into<String>) {
        let _ = self
            .tx
            .send(Event::Finish(host.to_string(), message.into()));
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: impl Into<String>) {
        let _ = self.tx.send(Event::Println(line.into()));
    }

    /// Removes every line and waits until they are gone (before printing a report).
    pub fn clear(&self) {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Event::Clear(ack)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
        // Closing the channel ends the UI thread.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(ui) = self.ui.take() {
            let _ = ui.join();
        }
    }
}
