//! Command-line conventions: completions, man page, `--color`/NO_COLOR, `--quiet`,
//! `--version`.
use assert_cmd::Command;

use crate::support_core::root;

/// meshup with no colour setting from the environment of the test runner.
fn meshup() -> Command {
    let mut cmd = Command::cargo_bin("meshup").expect("binary built");
    cmd.current_dir(root())
        .env_remove("NO_COLOR")
        .env("COLUMNS", "100");
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let output = cmd.output().expect("runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const BROKEN: &str = "tests/fixtures/inventory/broken.yaml";
const ESC: char = '\u{1b}';

#[test]
fn completions_for_bash_zsh_and_fish_know_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run(meshup().args(["completions", shell]));
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        for word in ["apply", "verify", "prometheus", "limit"] {
            assert!(r.stdout.contains(word), "{shell} completion lacks {word}");
        }
    }
}

#[test]
fn man_prints_a_roff_page() {
    let r = run(meshup().arg("man"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(".TH meshup 1"), "{}", r.stdout);
    assert!(r.stdout.contains(".SH NAME"), "{}", r.stdout);
    assert!(r.stdout.contains("apply"), "{}", r.stdout);
}

#[test]
fn no_color_keeps_escapes_out_of_error_reports() {
    let r = run(meshup().env("NO_COLOR", "1").args(["check", BROKEN]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("broken.yaml:3:14"), "{}", r.stderr);
    assert!(!r.stderr.contains(ESC), "{}", r.stderr);
}

#[test]
fn color_always_colours_a_pipe_even_with_no_color() {
    for no_color in [None, Some("1")] {
        let mut cmd = meshup();
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let r = run(cmd.args(["--color", "always", "check", BROKEN]));
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.contains(&format!("{ESC}[")),
            "{no_color:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("broken.yaml:3:14"), "{}", r.stderr);
    }
}

#[test]
fn color_never_and_a_pipe_give_plain_reports() {
    for args in [&["--color", "never"][..], &[][..]] {
        let r = run(meshup().args(args).args(["check", BROKEN]));
        assert_eq!(r.code, 1);
        assert!(!r.stderr.contains(ESC), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn version_names_the_git_revision_when_built_from_git() {
    let r = run(meshup().arg("--version"));
    assert_eq!(r.code, 0);
    let line = r.stdout.trim_end();
    let version = env!("CARGO_PKG_VERSION");
    let rest = line
        .strip_prefix(&format!("meshup {version}"))
        .unwrap_or_else(|| panic!("{line}"));
    if !rest.is_empty() {
        let rev = rest
            .strip_prefix(" (")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            rev.len() >= 7 && rev.chars().all(|c| c.is_ascii_hexdigit()),
            "{line}"
        );
    }
    if root().join(".git").exists() {
        assert!(!rest.is_empty(), "built from git but no revision: {line}");
    }
}

#[test]
fn quiet_apply_needs_yes_and_quiet_conflicts_with_verbose() {
    let r = run(meshup().args(["apply", "--quiet", "inventory/guide.yaml"]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    let r = run(meshup().args(["-q", "-v", "check", "inventory/guide.yaml"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
}
