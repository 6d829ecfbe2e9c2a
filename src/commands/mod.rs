//! One thin file per command over the shared runner layers.
pub mod import;
pub mod init;
pub mod schema;
