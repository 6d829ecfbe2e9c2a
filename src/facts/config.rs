//! The `config` fact: the host's current `<interface>.conf`, redacted on the host.

use serde::Serialize;

/// The current config file with every secret replaced by a `<secret:...>` token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurrentConfig {
    /// The file exists and was read.
    pub present: bool,
    /// Redacted text (empty when absent). Compares as plain text with the rendered config.
    pub text: String,
}

impl CurrentConfig {
    /// Builds the fact from the `config` section. As a second line of defence, any
    /// `PrivateKey`/`PresharedKey` value that is not a `<secret:...>` token is replaced
    /// by `<secret:unknown>` here too, so a broken host-side redaction cannot leak a key
    /// further into meshup.
    pub fn parse(body: &str, present: bool) -> CurrentConfig {
        if !present {
            return CurrentConfig::default();
        }
        let mut text = String::with_capacity(body.len() + 1);
        for line in body.lines() {
            text.push_str(&redact_line(line));
            text.push('\n');
        }
        CurrentConfig {
            present: true,
            text,
        }
    }
}

fn redact_line(line: &str) -> String {
    let Some((key, value)) = line.split_once('=') else {
        return line.to_string();
    };
    let name = key.trim().to_ascii_lowercase();
    if name != "privatekey" && name != "presharedkey" {
        return line.to_string();
    }
    let value = value.trim();
    let is_token = value.starts_with("<secret:")
        && value.ends_with('>')
        && !value[8..value.len() - 1].contains(['<', '>', ' ']);
    if is_token {
        line.to_string()
    } else {
        format!("{} = <secret:unknown>", key.trim_end())
    }
}
