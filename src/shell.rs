//! Quoting of values put into remote shell commands, and command wrappers.
//!
//! Every value that reaches a remote command goes through [`quote`]; commands are
//! POSIX `sh` (dash, bash, busybox ash all agree on single-quote rules).

use thiserror::Error;

/// A value that cannot be put into a remote command.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShellError {
    /// NUL cannot be passed through a shell command line.
    #[error("{what} contains a NUL byte, which cannot be passed to a remote shell")]
    Nul {
        /// What the value is (for the message).
        what: String,
    },
    /// A remote path must be absolute and free of line breaks.
    #[error("remote path {path:?} must be absolute and contain no newline")]
    BadPath {
        /// The offending path.
        path: String,
    },
    /// File modes are octal and at most 0o7777.
    #[error("file mode {mode:o} is out of range (at most 7777 octal)")]
    BadMode {
        /// The offending mode.
        mode: u32,
    },
}

/// Quotes `value` for POSIX `sh` so that it reaches the command as one literal word.
///
/// Uses shlex; a value with a NUL byte (which no shell command line can carry) is
/// quoted with the NUL kept, and the session refuses such a command before sending it
/// (see [`crate::transport::TransportError::InvalidCommand`]). Use [`try_quote`] to
/// reject it here.
pub fn quote(value: &str) -> String {
    match shlex::try_quote(value) {
        Ok(quoted) => quoted.into_owned(),
        Err(_) => format!("'{}'", value.replace('\'', "'\\''")),
    }
}

/// Quotes `value` like [`quote`], refusing a value that contains NUL.
pub fn try_quote(value: &str, what: &str) -> Result<String, ShellError> {
    shlex::try_quote(value)
        .map(|quoted| quoted.into_owned())
        .map_err(|_| ShellError::Nul {
            what: what.to_string(),
        })
}

/// Joins words into one command line, quoting each.
pub fn join<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// Wraps `command` to run as root through `sudo -n` (never prompts for a password:
/// a sudo that needs one fails at once with "a password is required").
pub fn sudo(command: &str) -> String {
    format!("sudo -n -- sh -c {}", quote(command))
}

/// The message `sudo -n` prints when it would have to ask for a password.
pub const SUDO_NEEDS_PASSWORD: &str = "a password is required";

/// Builds a remote command that atomically writes its stdin to `path` with `mode`:
/// the data goes to a temporary file in the same directory (created under umask 077),
/// gets its mode, then is renamed over `path`. On failure the temporary file is removed
/// and `path` is left untouched.
pub fn atomic_write_command(path: &str, mode: u32) -> Result<String, ShellError> {
    if !path.starts_with('/') || path.contains('\n') || path.contains('\r') || path.ends_with('/') {
        return Err(ShellError::BadPath {
            path: path.to_string(),
        });
    }
    if mode > 0o7777 {
        return Err(ShellError::BadMode { mode });
    }
    let target = try_quote(path, "remote path")?;
    Ok(format!(
        "umask 077 && tmp={target}.meshup-tmp.$$ && \
         {{ cat > \"$tmp\" && chmod {mode:04o} \"$tmp\" && mv -f \"$tmp\" {target}; }} \
         || {{ rc=$?; rm -f \"$tmp\"; exit $rc; }}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh_echo_args(script: &str) -> Vec<u8> {
        // printf each argument on its own line, terminated by a marker, so we see the
        // exact words the shell produced.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s|' {script}"))
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn hostile_values_are_one_literal_word() {
        let cases = [
            "plain",
            "with space",
            "it's",
            "\"double\"",
            "$(touch /tmp/meshup-pwned)",
            "`id`",
            "a; rm -rf /",
            "line1\nline2",
            "tab\there",
            "back\\slash",
            "*",
            "~root",
            "$HOME",
            "!event",
            "",
            "-n",
            "{a,b}",
            "a|b&c>d<e",
            "ünïcødé",
        ];
        for value in cases {
            let got = sh_echo_args(&quote(value));
            assert_eq!(got, format!("{value}|").into_bytes(), "value {value:?}");
        }
        assert!(!std::path::Path::new("/tmp/meshup-pwned").exists());
    }

    #[test]
    fn join_keeps_word_boundaries() {
        let got = sh_echo_args(&join(["a b", "c'd", ";"]));
        assert_eq!(got, b"a b|c'd|;|");
    }

    #[test]
    fn try_quote_refuses_nul() {
        assert_eq!(
            try_quote("a\0b", "peer name"),
            Err(ShellError::Nul {
                what: "peer name".into()
            })
        );
    }

    #[test]
    fn sudo_wraps_whole_command() {
        let wrapped = sudo("echo 'x'; id");
        let words = shlex::split(&wrapped).expect("parses");
        assert_eq!(words, ["sudo", "-n", "--", "sh", "-c", "echo 'x'; id"]);
    }

    #[test]
    fn atomic_write_validates_input() {
        assert!(matches!(
            atomic_write_command("relative/path", 0o600),
            Err(ShellError::BadPath { .. })
        ));
        assert!(matches!(
            atomic_write_command("/etc/x\nrm", 0o600),
            Err(ShellError::BadPath { .. })
        ));
        assert!(matches!(
            atomic_write_command("/etc/x", 0o10000),
            Err(ShellError::BadMode { .. })
        ));
    }

    #[test]
    fn atomic_write_writes_and_replaces_locally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("we ird'$(x).conf");
        let path_str = path.to_str().expect("utf8 path");
        for content in [&b"first\n"[..], &b"second"[..]] {
            let cmd = atomic_write_command(path_str, 0o640).expect("valid");
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("sh");
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(content)
                .expect("write");
            assert!(child.wait().expect("wait").success());
            assert_eq!(std::fs::read(&path).expect("read"), content);
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("readdir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("meshup-tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn atomic_write_failure_leaves_target_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-dir").join("file");
        let cmd = atomic_write_command(path.to_str().expect("utf8"), 0o600).expect("valid");
        let status = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("sh");
        assert!(!status.success());
        assert!(!path.exists());
    }
}
