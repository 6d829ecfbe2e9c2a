//! Inventory errors: every problem found, each pointing at its place in the file.
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

/// Why an inventory could not be loaded. `Invalid` carries every problem at once, each as a
/// related diagnostic with the file, line and a caret under the offending value.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("cannot read inventory {}", path.display())]
    #[diagnostic(code(meshup::inventory::read))]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has problems (syntax or meaning).
    #[error("{file}: inventory is invalid ({} {})", problems.len(), if problems.len() == 1 { "problem" } else { "problems" })]
    #[diagnostic(code(meshup::inventory::invalid))]
    Invalid {
        /// The file name used in messages.
        file: String,
        /// Every problem found, in file order.
        #[related]
        problems: Vec<Problem>,
    },
}

impl InventoryError {
    /// The problems of an invalid inventory (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { problems, .. } => problems,
        }
    }
}

/// One problem in an inventory, located in its source file.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct Problem {
    message: String,
    #[source_code]
    source_code: NamedSource<Arc<str>>,
    #[label(collection)]
    labels: Vec<LabeledSpan>,
    #[help]
    help: Option<String>,
    line: usize,
    column: usize,
}

impl Problem {
    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 1-based line of the primary location.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column (in characters) of the primary location.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The help text, if any.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

/// A place in the inventory source: byte offset and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Byte offset of the start.
    pub offset: usize,
    /// Length in bytes (0 = a point).
    pub len: usize,
}

/// Collects problems against one source text.
pub(crate) struct Problems {
    source: NamedSource<Arc<str>>,
    text: Arc<str>,
    /// Byte offset where each line starts: a node's line is a binary search, not a scan
    /// of the file up to it (5,000 nodes made that quadratic).
    line_starts: Vec<usize>,
    file: String,
    list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn new(file: &str, text: &str) -> Self {
        let text: Arc<str> = Arc::from(text);
        Self {
            source: NamedSource::new(file, Arc::clone(&text)).with_language("yaml"),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            text,
            file: file.to_owned(),
            list: Vec::new(),
        }
    }

    /// Records a problem at `span` with a caret label.
    pub(crate) fn push(
        &mut self,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) {
        self.push_full(span, message, label, None, None);
    }

    /// Records a problem with an optional help text and an optional secondary location.
    pub(crate) fn push_full(
        &mut self,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
        secondary: Option<(Span, String)>,
    ) {
        let span = self.clamp(span);
        let (line, column) = self.line_column(span.offset);
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(label.into()),
            SourceSpan::new(span.offset.into(), span.len),
        )];
        if let Some((other, text)) = secondary {
            let other = self.clamp(other);
            labels.push(LabeledSpan::new_with_span(
                Some(text),
                SourceSpan::new(other.offset.into(), other.len),
            ));
        }
        self.list.push(Problem {
            message: message.into(),
            source_code: self.source.clone(),
            labels,
            help,
            line,
            column,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_column(offset).0
    }

    fn clamp(&self, span: Span) -> Span {
        let mut offset = span.offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let mut end = offset.saturating_add(span.len).min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        Span {
            offset,
            len: end - offset,
        }
    }

    fn line_column(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line.max(1), column)
    }

    pub(crate) fn into_error(mut self) -> InventoryError {
        self.list.sort_by_key(|p| (p.line, p.column));
        InventoryError::Invalid {
            file: self.file,
            problems: self.list,
        }
    }
}
