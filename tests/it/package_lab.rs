//! meshup installed the way tools are installed: `cargo install --locked --path .` into a
//! fresh root, and the Debian package of `tests/pkg/build-deb` installed with `dpkg -i` on
//! a lab host, where the binary runs, `man` finds its page and bash completes it. The
//! package build needs cargo-deb (`.ci/run` installs it); the lab test needs root
//! (`MESHUP_SKIP_LAB=1` skips it).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::support_lab::{Lab, Run, lab_command};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `tests/pkg/build-deb` and returns the package it built.
fn build_deb() -> PathBuf {
    let out = Command::new(root().join("tests/pkg/build-deb"))
        .stdin(Stdio::null())
        .output()
        .expect("run tests/pkg/build-deb");
    let run = Run::from(out);
    let path = PathBuf::from(run.expect_ok("tests/pkg/build-deb").trim());
    assert!(
        path.extension().is_some_and(|e| e == "deb") && path.is_file(),
        "build-deb printed {path:?}"
    );
    path
}

/// The files a package holds (`dpkg-deb -c`), as absolute paths.
fn package_files(deb: &Path) -> Vec<String> {
    let out = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb)
        .output()
        .expect("run dpkg-deb");
    let listing = Run::from(out);
    listing
        .expect_ok("dpkg-deb -c")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect()
}

#[test]
fn package_lab_cargo_install_locked_path_installs_a_working_meshup() {
    let dest = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    // Offline: CI reaches only the package registries, and the crates are already in the
    // cargo cache from building the tests.
    let out = Command::new(env!("CARGO"))
        .args(["install", "--locked", "--offline", "--path"])
        .arg(root())
        .arg("--root")
        .arg(dest.path())
        .stdin(Stdio::null())
        .output()
        .expect("run cargo install");
    Run::from(out).expect_ok("cargo install --locked --offline --path .");
    eprintln!("cargo install took {:?}", started.elapsed());
    let bin = dest.path().join("bin/meshup");
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run the installed meshup");
    let version = Run::from(out);
    let version = version.expect_ok("meshup --version");
    assert!(
        version.starts_with(&format!("meshup {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // The installed binary works: it validates the guide's inventory offline.
    let out = Command::new(&bin)
        .arg("check")
        .arg(root().join("inventory/guide.yaml"))
        .output()
        .expect("run the installed meshup check");
    Run::from(out).expect_ok("meshup check inventory/guide.yaml");
}

#[test]
fn package_lab_deb_installs_with_man_page_and_completions_on_a_lab_host() {
    require_lab!();
    let deb = build_deb();
    let files = package_files(&deb);
    for wanted in [
        "/usr/bin/meshup",
        "/usr/share/man/man1/meshup.1.gz",
        "/usr/share/bash-completion/completions/meshup",
        "/usr/share/zsh/vendor-completions/_meshup",
        "/usr/share/fish/vendor_completions.d/meshup.fish",
        "/usr/share/doc/meshup/README.md",
        "/usr/share/doc/meshup/copyright",
        "/usr/share/doc/meshup/LICENSE-MIT",
        "/usr/share/doc/meshup/LICENSE-APACHE",
    ] {
        assert!(
            files.iter().any(|f| f == wanted),
            "{wanted} not in {files:#?}"
        );
    }

    let lab = Lab::up_with("pk-deb", &["--public", "1", "--nat", "0"]);
    let host = lab.hosts()[0].name.clone();
    // The package goes in through the host's own stdin (nsenter), like an scp would.
    let copy = Command::new(lab_command())
        .args(["exec", lab.name(), &host, "--", "sh", "-c"])
        .arg("cat > /tmp/meshup.deb")
        .stdin(std::fs::File::open(&deb).expect("open the .deb"))
        .output()
        .expect("copy the .deb into the host");
    Run::from(copy).expect_ok("copy the .deb");
    lab.host_exec(&host, "dpkg -i /tmp/meshup.deb")
        .expect_ok("dpkg -i meshup.deb");
    // man-db is not in the lab base; the lab mirror serves it.
    lab.host_exec(
        &host,
        "command -v man || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends man-db; }",
    )
    .expect_ok("install man-db from the lab mirror");

    let version = lab.host_exec(&host, "meshup --version");
    assert!(
        version
            .expect_ok("meshup --version")
            .starts_with(&format!("meshup {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        version.stdout
    );
    let page = lab.host_exec(&host, "man -w meshup");
    assert_eq!(
        page.expect_ok("man -w meshup").trim(),
        "/usr/share/man/man1/meshup.1.gz"
    );
    // The page renders: its NAME section names the command.
    let rendered = lab.host_exec(&host, "MANWIDTH=80 man meshup 2>/dev/null | col -b");
    assert!(
        rendered.expect_ok("man meshup").contains("meshup"),
        "{}",
        rendered.stdout
    );
    // bash-completion loads a command's completion from this directory by its name: the
    // file defines the function that completes `meshup <TAB>` with the subcommands.
    let completion = lab.host_exec(
        &host,
        "bash -c '. /usr/share/bash-completion/completions/meshup; \
         COMP_WORDS=(meshup sch); COMP_CWORD=1; COMP_LINE=\"meshup sch\"; COMP_POINT=10; \
         f=$(complete -p meshup | sed \"s/.*-F \\([^ ]*\\) .*/\\1/\"); \"$f\" meshup sch meshup; \
         printf \"%s\\n\" \"${COMPREPLY[@]}\"'",
    );
    assert_eq!(
        completion.expect_ok("bash completion").trim(),
        "schema",
        "{}",
        completion.stderr
    );
}
