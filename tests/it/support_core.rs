//! Helpers shared by the core tests (inventory, topology, check).
use std::path::PathBuf;

use meshup::address::{self, AddressLock};
use meshup::inventory::{Inventory, InventoryError, NodeName};
use meshup::topology::Mesh;

/// Repository root (where `inventory/` and `tests/fixtures/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses inventory text named `test.yaml`.
pub fn parse(text: &str) -> Result<Inventory, InventoryError> {
    Inventory::from_str(text, "test.yaml")
}

/// Parses inventory text that must be valid.
pub fn valid(text: &str) -> Inventory {
    match parse(text) {
        Ok(inventory) => inventory,
        Err(err) => panic!("expected a valid inventory, got:\n{}", render_error(&err)),
    }
}

/// The (line, message) of every problem of an invalid inventory.
pub fn problems(text: &str) -> Vec<(usize, String)> {
    match parse(text) {
        Ok(_) => panic!("expected an invalid inventory:\n{text}"),
        Err(err) => err
            .problems()
            .iter()
            .map(|p| (p.line(), p.message().to_owned()))
            .collect(),
    }
}

/// Builds the mesh of valid inventory text with a fresh (empty) address lock.
pub fn mesh(text: &str) -> Mesh {
    let inventory = valid(text);
    let (allocation, _) =
        address::allocate(&inventory, &AddressLock::default()).expect("addresses allocate");
    Mesh::build(&inventory, &allocation)
}

/// Node name literal.
pub fn name(text: &str) -> NodeName {
    text.parse().expect("valid node name")
}

/// An error rendered as the CLI shows it, without colours and at a fixed width.
pub fn render_error(err: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, err)
        .expect("rendering to a String succeeds");
    out
}
