//! From raw YAML to a validated [`Inventory`], collecting every problem with its location.
//!
//! [`Validator`] walks the raw inventory once and records every problem it finds; each
//! section has its own file: `mesh:` (`mesh.rs`), `nodes:` one by one (`node.rs`), a
//! node's `ssh:` (`ssh.rs`), the checks across nodes (`cross_node.rs`) and `clients:`
//! (`clients.rs`).
mod acl;
mod clients;
mod cross_node;
mod exit;
mod layout;
mod mesh;
mod node;
mod ssh;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_saphyr::Location;

use crate::inventory::spanned::Spanned;

use super::Inventory;
use super::error::{InventoryError, Problems, Span};
use super::raw::RawInventory;

/// Largest inventory accepted, to keep parsing of hostile input bounded.
const MAX_INVENTORY_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn parse(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
    let file = path.display().to_string();
    let mut problems = Problems::new(&file, text);
    if text.len() > MAX_INVENTORY_BYTES {
        problems.push(
            Span::default(),
            format!("inventory is larger than {MAX_INVENTORY_BYTES} bytes"),
            "file starts here",
        );
        return Err(problems.into_error());
    }
    let raw: RawInventory = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            push_yaml_error(&mut problems, text, &err);
            return Err(problems.into_error());
        }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut validator = Validator {
        text,
        problems,
        dir,
    };
    let mesh = validator.mesh(&raw.mesh);
    let defaults = raw.ssh.unwrap_or_default();
    if let Some(host) = &defaults.host {
        let span = validator.span(host);
        validator.problems.push_full(
            span,
            "`host` cannot be a default: it differs per node",
            "set this under a node's `ssh:`",
            Some("a node's SSH host defaults to its name".into()),
            None,
        );
    }
    let nodes = validator.nodes(&raw.nodes, &mesh, &defaults);
    let mut mesh = mesh;
    mesh.topology = validator.topology(&raw.mesh.value, &nodes, &raw.nodes.value);
    let clients = validator.clients(raw.clients.as_ref(), &mesh, &nodes, &raw.nodes.value);
    mesh.acl = validator.acl(
        raw.mesh.value.firewall.as_ref(),
        mesh.firewall,
        &nodes,
        &raw.nodes.value,
        &clients,
    );
    if let Some(Some(acl)) = &mesh.acl {
        validator.ssh_over_the_mesh(acl, &mesh, &nodes, &raw.nodes.value);
    }
    match (mesh.complete(), validator.problems.is_empty()) {
        (Some(mesh), true) => Ok(Inventory {
            path: path.to_owned(),
            mesh,
            index: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), i))
                .collect(),
            nodes,
            clients,
        }),
        _ => Err(validator.problems.into_error()),
    }
}

/// Turns a serde-saphyr error (syntax, unknown key, wrong type) into a located problem.
pub(crate) fn push_yaml_error(problems: &mut Problems, text: &str, err: &serde_saphyr::Error) {
    let span = err
        .location()
        .map(|loc| location_span(text, &loc))
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        "the inventory is empty; it needs `mesh:` and `nodes:`".to_owned()
    } else {
        yaml_message(err)
    };
    problems.push(span, message, "here");
}

/// The message of a serde-saphyr error without its own snippet and position suffix
/// (we render the position ourselves).
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let full = err.without_snippet().to_string();
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    let trimmed = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let trimmed = trimmed.trim_end_matches(':').trim();
    // serde-saphyr tells its own caller how to allow duplicates; an operator needs to
    // know that the key is there twice.
    if let Some(key) = trimmed
        .strip_prefix("duplicate mapping key: ")
        .and_then(|rest| rest.split(',').next())
    {
        return format!("`{key}` is set twice in this mapping; keep one");
    }
    if trimmed.is_empty() {
        "invalid YAML".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Byte span of a serde-saphyr location, falling back to line/column when the parser did
/// not record byte offsets.
fn location_span(text: &str, loc: &Location) -> Span {
    let span = loc.span();
    if let (Some(offset), Some(len)) = (span.byte_offset(), span.byte_len()) {
        return Span {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            len: usize::try_from(len).unwrap_or(0),
        };
    }
    let line = usize::try_from(loc.line()).unwrap_or(0);
    if line == 0 {
        return Span::default();
    }
    let column = usize::try_from(loc.column()).unwrap_or(1).max(1);
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let offset = text[line_start.min(text.len())..]
        .char_indices()
        .nth(column - 1)
        .map_or(text.len(), |(i, _)| line_start + i);
    Span { offset, len: 0 }
}

/// Walks a raw inventory, turning values into newtypes and recording every problem.
struct Validator<'a> {
    text: &'a str,
    problems: Problems,
    dir: PathBuf,
}

impl Validator<'_> {
    fn span<T>(&self, spanned: &Spanned<T>) -> Span {
        location_span(self.text, &spanned.referenced)
    }

    fn error(&mut self, span: Span, message: impl Into<String>, label: &str) {
        self.problems.push(span, message, label);
    }

    /// Parses a spanned string with `FromStr`, recording a problem on failure.
    fn parse<T: FromStr<Err = String>>(
        &mut self,
        value: &Spanned<String>,
        label: &str,
    ) -> Option<T> {
        match value.value.parse() {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                let span = self.span(value);
                self.error(span, message, label);
                None
            }
        }
    }

    /// Checks an integer is within `range`, recording a problem otherwise.
    fn int_in(
        &mut self,
        value: &Spanned<i64>,
        range: std::ops::RangeInclusive<i64>,
        what: &str,
    ) -> Option<u16> {
        if range.contains(&value.value) {
            u16::try_from(value.value).ok()
        } else {
            let span = self.span(value);
            self.error(
                span,
                format!(
                    "{what} {} is out of range {}-{}",
                    value.value,
                    range.start(),
                    range.end()
                ),
                "out of range",
            );
            None
        }
    }
}
