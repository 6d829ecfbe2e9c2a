//! `meshup plan` and `meshup apply`: gather facts, compute a plan, converge hosts.
pub mod command;
pub mod plan;
pub mod progress;
pub mod script;
