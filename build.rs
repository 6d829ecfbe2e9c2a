//! Puts the git revision into `meshup --version`: `MESHUP_VERSION` is `0.1.0 (abc1234)`
//! when built from a git checkout, `0.1.0` otherwise (a crate tarball, no git, a
//! repository git refuses to read).
use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let revision = git(&["rev-parse", "--short", "HEAD"]);

    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a
    // commit). Paths come from git because in a worktree `.git` is a file. Only existing
    // files are watched: cargo reruns on every build for a missing one.
    let mut watched = vec!["HEAD".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    watched.push("packed-refs".to_owned());
    for name in &watched {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            let path = PathBuf::from(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }

    let full = match revision {
        Some(rev) => format!("{version} ({rev})"),
        None => version,
    };
    println!("cargo:rustc-env=MESHUP_VERSION={full}");
}
