//! A scripted [`Session`] for unit tests: canned responses matched by command
//! substring, every call recorded.

use std::sync::Mutex;
use std::time::Duration;

use super::{BoxFuture, ExecOutput, Session, TransportError, validate_command};

/// One recorded call to a [`ScriptedSession`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedCall {
    /// The command as passed to `exec`.
    pub command: String,
    /// The stdin sent.
    pub stdin: Vec<u8>,
}

/// How a scripted response is selected.
enum Matcher {
    Contains(String),
    Predicate(Box<dyn Fn(&str) -> bool + Send + Sync>),
}

struct Rule {
    matcher: Matcher,
    response: Result<ExecOutput, fn(&str) -> TransportError>,
    /// Used at most once when true (for sequences: first call, second call...).
    once: bool,
    used: bool,
}

/// A fake host: rules are tried in the order added; the first rule whose matcher fits
/// the command answers. A command no rule matches fails with
/// [`TransportError::Unscripted`], so a test never passes by accident.
pub struct ScriptedSession {
    host: String,
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<Vec<ScriptedCall>>,
}

impl ScriptedSession {
    /// An empty script for `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            rules: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn push(
        self,
        matcher: Matcher,
        response: Result<ExecOutput, fn(&str) -> TransportError>,
        once: bool,
    ) -> Self {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Rule {
                matcher,
                response,
                once,
                used: false,
            });
        self
    }

    /// Answers commands containing `needle` with exit 0 and `stdout`.
    pub fn on(self, needle: &str, stdout: impl Into<Vec<u8>>) -> Self {
        self.respond(
            needle,
            ExecOutput {
                status: Some(0),
                stdout: stdout.into(),
                stderr: Vec::new(),
            },
        )
    }

    /// Answers commands containing `needle` with `output`.
    pub fn respond(self, needle: &str, output: ExecOutput) -> Self {
        self.push(Matcher::Contains(needle.to_string()), Ok(output), false)
    }

    /// Answers the next single command containing `needle` with `output` (later calls
    /// fall through to the following rules).
    pub fn respond_once(self, needle: &str, output: ExecOutput) -> Self {
        self.push(Matcher::Contains(needle.to_string()), Ok(output), true)
    }

    /// Answers commands accepted by `predicate` with `output`.
    pub fn respond_if(
        self,
        predicate: impl Fn(&str) -> bool + Send + Sync + 'static,
        output: ExecOutput,
    ) -> Self {
        self.push(Matcher::Predicate(Box::new(predicate)), Ok(output), false)
    }

    /// Fails commands containing `needle` with the error `make(host)` builds.
    pub fn fail(self, needle: &str, make: fn(&str) -> TransportError) -> Self {
        self.push(Matcher::Contains(needle.to_string()), Err(make), false)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<ScriptedCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn answer(&self, command: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        validate_command(&self.host, command)?;
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ScriptedCall {
                command: command.to_string(),
                stdin: stdin.to_vec(),
            });
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        for rule in rules.iter_mut() {
            if rule.once && rule.used {
                continue;
            }
            let hit = match &rule.matcher {
                Matcher::Contains(needle) => command.contains(needle.as_str()),
                Matcher::Predicate(p) => p(command),
            };
            if hit {
                rule.used = true;
                return match &rule.response {
                    Ok(out) => Ok(out.clone()),
                    Err(make) => Err(make(&self.host)),
                };
            }
        }
        Err(TransportError::Unscripted {
            host: self.host.clone(),
            command: command.to_string(),
        })
    }
}

impl Session for ScriptedSession {
    fn host(&self) -> &str {
        &self.host
    }

    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: &'a [u8],
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(async move { self.answer(command, stdin) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matches_records_and_refuses_unscripted() {
        let s = ScriptedSession::new("node-a")
            .respond_once(
                "wg show",
                ExecOutput {
                    status: Some(1),
                    stdout: vec![],
                    stderr: b"no device".to_vec(),
                },
            )
            .on("wg show", "wg0\n")
            .fail("boom", |host| TransportError::Disconnected {
                why: None,
                host: host.into(),
            });
        let session: &dyn Session = &s;
        let t = Duration::from_secs(1);
        let first = session
            .exec("wg show interfaces", b"", t)
            .await
            .expect("scripted");
        assert_eq!(first.status, Some(1));
        let second = session
            .exec("wg show interfaces", b"in", t)
            .await
            .expect("scripted");
        assert_eq!(second.stdout, b"wg0\n");
        assert!(matches!(
            session.exec("boom", b"", t).await,
            Err(TransportError::Disconnected { .. })
        ));
        assert!(matches!(
            session.exec("uname", b"", t).await,
            Err(TransportError::Unscripted { .. })
        ));
        let calls = s.calls();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[1].stdin, b"in");
    }
}
