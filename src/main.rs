//! meshup: the binary only turns a result into an exit code.
fn main() -> std::process::ExitCode {
    meshup::cli::main()
}
