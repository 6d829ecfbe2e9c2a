//! One apply run's claim on meshup's lock on each host. Apply's gather takes the lock
//! and keeps it for the whole run (see `mu_hold` in `scripts/gather.sh`): the holder
//! writes the run's id and who started it into the lock file, so the run's own phase
//! scripts know the lock is theirs and a second run can name the first before it shows
//! a plan.

/// The run's id and its origin, both safe to put into a remote shell by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLock {
    id: String,
    by: String,
}

impl RunLock {
    /// A new run: a random id and `user@host` of the workstation.
    pub fn new() -> RunLock {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(user_of_this_process);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_default();
        RunLock::with(rand::random(), &format!("{}@{}", user.trim(), host.trim()))
    }

    /// A run with a given id (tests) and origin; `by` keeps only `A-Z a-z 0-9 . _ - @`
    /// (anything else becomes `_`) and at most 64 characters.
    pub fn with(id: u64, by: &str) -> RunLock {
        let by = by
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        RunLock {
            id: format!("{id:016x}"),
            by,
        }
    }

    /// The run's id: 16 hex digits.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Who started the run: `user@host` of the workstation.
    pub fn by(&self) -> &str {
        &self.by
    }
}

/// The name of the user this process runs as, from `/etc/passwd` (`uid N` without one).
fn user_of_this_process() -> String {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return String::new();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid{uid}"))
}

impl Default for RunLock {
    fn default() -> RunLock {
        RunLock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_keeps_only_shell_safe_characters() {
        let run = RunLock::with(0xab, "al ice@work$(reboot)station");
        assert_eq!(run.id(), "00000000000000ab");
        assert_eq!(run.by(), "al_ice@work__reboot_station");
        assert_eq!(RunLock::with(1, &"x".repeat(100)).by().len(), 64);
        assert_ne!(RunLock::new().id(), RunLock::new().id());
    }
}
