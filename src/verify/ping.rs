//! Parser for `ping` output (iputils-ping; BusyBox's summary lines are read too).
use serde::Serialize;

/// Round-trip times in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rtt {
    /// Fastest reply.
    pub min: f64,
    /// Average.
    pub avg: f64,
    /// Slowest reply.
    pub max: f64,
}

/// An error ping reported instead of (or besides) replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PingError {
    /// The local stack refused a DF packet above the route/interface MTU.
    MessageTooLong {
        /// MTU ping reported, when it did.
        mtu: Option<u32>,
    },
    /// A router on the path answered "Frag needed and DF set".
    FragNeeded {
        /// Next-hop MTU it reported.
        mtu: Option<u32>,
    },
    /// WireGuard has no peer whose AllowedIPs cover the destination.
    NoPeerForDestination,
    /// No route or the destination is unreachable.
    Unreachable {
        /// The message as printed.
        message: String,
    },
    /// The ping binary does not know an option (e.g. BusyBox without `-M`).
    Unsupported {
        /// The message as printed.
        message: String,
    },
    /// Any other message.
    Other {
        /// The message as printed.
        message: String,
    },
}

/// The outcome of one ping run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingResult {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Replies received.
    pub received: u32,
    /// Loss in percent as ping printed it (100 when nothing was sent).
    pub loss_percent: f64,
    /// Round-trip times, when any reply came.
    pub rtt: Option<Rtt>,
    /// Errors ping reported.
    pub errors: Vec<PingError>,
    /// Exit status of ping (124 when the script found no status).
    pub exit: Option<i32>,
}

impl PingResult {
    /// At least one reply came back.
    pub fn ok(&self) -> bool {
        self.received > 0
    }
}

fn number_after(text: &str, key: &str) -> Option<u32> {
    let start = text.find(key)? + key.len();
    let digits: String = text[start..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn classify(line: &str) -> Option<PingError> {
    let lower = line.to_ascii_lowercase();
    if lower.contains("message too long") {
        Some(PingError::MessageTooLong {
            mtu: number_after(&lower, "mtu="),
        })
    } else if lower.contains("frag needed") || lower.contains("packet too big") {
        Some(PingError::FragNeeded {
            mtu: number_after(&lower, "mtu =").or_else(|| number_after(&lower, "mtu=")),
        })
    } else if lower.contains("required key not available") {
        Some(PingError::NoPeerForDestination)
    } else if lower.contains("unreachable") || lower.contains("no route to host") {
        Some(PingError::Unreachable {
            message: line.trim().to_owned(),
        })
    } else if lower.contains("invalid option")
        || lower.contains("unrecognized option")
        || lower.contains("usage:")
        || lower.contains("not found")
    {
        Some(PingError::Unsupported {
            message: line.trim().to_owned(),
        })
    } else if lower.starts_with("ping:") {
        Some(PingError::Other {
            message: line.trim().to_owned(),
        })
    } else {
        None
    }
}

/// Parses one ping run's output and exit status.
pub fn parse(text: &str, exit: Option<i32>) -> PingResult {
    let mut result = PingResult {
        transmitted: 0,
        received: 0,
        loss_percent: 100.0,
        rtt: None,
        errors: Vec::new(),
        exit,
    };
    for line in text.lines() {
        if line.contains("packets transmitted") {
            result.transmitted = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            result.received = line
                .split(',')
                .nth(1)
                .and_then(|part| part.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if let Some(loss) = line
                .split(',')
                .find(|p| p.contains("packet loss"))
                .and_then(|p| p.trim().split('%').next())
                .and_then(|n| n.parse().ok())
            {
                result.loss_percent = loss;
            }
        } else if line.starts_with("rtt ") || line.starts_with("round-trip ") {
            let values = line.split('=').nth(1).unwrap_or("").trim();
            let nums: Vec<f64> = values
                .split_whitespace()
                .next()
                .unwrap_or("")
                .split('/')
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [min, avg, max, ..] = nums[..] {
                result.rtt = Some(Rtt { min, avg, max });
            }
        } else if let Some(error) = classify(line)
            && !result.errors.contains(&error)
        {
            result.errors.push(error);
        }
    }
    result
}
