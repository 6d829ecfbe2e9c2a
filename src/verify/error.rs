//! Errors of the verify core.
use thiserror::Error;

/// What can go wrong building an expectation or reading a probe's output.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Two nodes share a name.
    #[error("node {name} appears twice")]
    DuplicateNode {
        /// The repeated name.
        name: String,
    },
    /// A peer entry names a node that is not in the mesh (or the node itself).
    #[error("node {node} has a peer entry for unknown node {peer}")]
    UnknownPeer {
        /// The node carrying the entry.
        node: String,
        /// The unknown peer.
        peer: String,
    },
    /// The node asked for is not in the expectation.
    #[error("node {name} is not in the mesh")]
    NoSuchNode {
        /// The missing name.
        name: String,
    },
    /// The probe output does not start with the probe's begin marker.
    #[error("probe output has no begin marker (not a meshup verify probe output)")]
    NotProbeOutput,
}
