//! What meshup shows people: the plan view, progress, the recap and statistics. The
//! commands compute; this module only renders.
pub mod console;
pub mod plan_view;
pub mod progress;
pub mod recap;
pub mod stats;

pub use plan_view::{render_host, render_plan, render_summary};
pub use progress::Progress;
pub use recap::{HostOutcome, Recap};
pub use stats::{StatsReport, peak_rss_kib};
