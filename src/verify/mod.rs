//! `meshup verify`: handshakes and a ping matrix across the mesh, with a diagnosis for
//! every failing pair in the guide's terms (Step 8 and Troubleshooting).
//!
//! Pure core: [`probe_script`] builds the read-only script the runner executes on each
//! host; [`probe::parse`] turns its output into a [`NodeProbe`]; [`evaluate`] joins the
//! probes with the [`Expectation`] into a [`Report`] of per-pair [`PairEvidence`] and
//! [`Diagnosis`] values, which renders as a matrix, JSON, Graphviz dot or Prometheus metrics.
pub mod acl_matrix;
pub mod command;
pub mod diagnosis;
pub mod error;
pub mod evaluate;
pub mod evidence;
pub mod exit;
pub mod expectation;
pub mod from_mesh;
mod live;
pub mod nat;
pub mod ping;
pub mod probe;
pub mod prometheus;
pub mod report;
pub mod script;
pub mod secrets;
pub mod sections;
pub mod tcp;

pub use diagnosis::Diagnosis;
pub use error::VerifyError;
pub use evaluate::{HostOutput, evaluate, evaluate_with_psks};
pub use evidence::{PairEvidence, PairStatus, PeerView};
pub use expectation::{
    Expectation, ExpectedNode, ExpectedPeer, FirewallEvidence, InterfaceName, NodeName, PairPath,
    PortState,
};
pub use probe::NodeProbe;
pub use report::Report;
pub use script::{probe_script, probe_script_with};
