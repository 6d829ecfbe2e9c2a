//! Test helpers: real OpenSSH sshd instances on loopback, started per test with their
//! own host keys and authorized_keys, killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshup::transport::{HostKeyPolicy, SshTarget};

/// Path of the sshd binary.
pub const SSHD: &str = "/usr/sbin/sshd";

/// Why real-sshd tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !Path::new(SSHD).exists() {
        return Some(format!(
            "{SSHD} not installed (apt-get install openssh-server)"
        ));
    }
    for tool in ["ssh-keygen", "ssh-agent", "ssh-add"] {
        if Command::new(tool).arg("-?").output().is_err() {
            return Some(format!(
                "{tool} not installed (apt-get install openssh-client)"
            ));
        }
    }
    None
}

/// Skips the current test (returns from it) with a printed reason.
#[macro_export]
macro_rules! require_sshd {
    () => {
        if let Some(reason) = $crate::support_sshd::skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// True when running as root (needed for other local users and sudo).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a command, panicking with its stderr on failure (test setup only).
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Generates an unencrypted key pair of `kind` (ed25519, ecdsa, rsa) at `path`.
pub fn keygen(path: &Path, kind: &str) {
    keygen_with_passphrase(path, kind, "");
}

/// Generates a key pair protected by `passphrase`.
pub fn keygen_with_passphrase(path: &Path, kind: &str, passphrase: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "meshup-test",
        "-f",
    ])
    .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    run(&mut cmd);
}

/// A free TCP port on `addr` (bound then released).
pub fn free_port(addr: &str) -> u16 {
    let l = TcpListener::bind((addr, 0)).expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Creates a local user with a usable (non-locked) account, idempotently.
pub fn ensure_user(name: &str, sudoers: Option<&str>) {
    if Command::new("id")
        .arg(name)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
    {
    } else {
        // A concurrent test may win the race; recheck instead of failing.
        let _ = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .output();
        run(Command::new("id").arg(name));
    }
    // "*" (no password, not locked): sshd with UsePAM no refuses locked accounts.
    run(Command::new("usermod").args(["-p", "*", name]));
    let path = format!("/etc/sudoers.d/{name}");
    match sudoers {
        Some(rule) => {
            std::fs::write(&path, format!("{rule}\n")).expect("write sudoers");
            run(Command::new("chmod").args(["0440", &path]));
        }
        None => {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A running sshd on loopback.
pub struct Sshd {
    /// Temp dir with the config, host key, authorized_keys and log.
    pub dir: tempfile::TempDir,
    /// Listen address.
    pub addr: String,
    /// Port.
    pub port: u16,
    /// The client key authorized for every user (ed25519, unencrypted).
    pub client_key: PathBuf,
    /// sshd's log (LogLevel DEBUG1).
    pub log: PathBuf,
    child: Child,
}

impl Sshd {
    /// Starts sshd on `addr` with an ed25519 host key; `extra` is appended to the config.
    pub fn start(addr: &str, extra: &str) -> Sshd {
        let dir = tempfile::tempdir().expect("tempdir");
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key, "ed25519");
        let client_key = dir.path().join("client_ed25519");
        keygen(&client_key, "ed25519");
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).expect("authorize key");
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = dir.path().join("sshd.log");
        let config = dir.path().join("sshd_config");
        for _attempt in 0..5 {
            let port = free_port(addr);
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress {addr}\nHostKey {}\nPidFile none\n\
                     AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                     AllowTcpForwarding yes\nLogLevel DEBUG1\nMaxStartups 100\n{extra}\n",
                    host_key.display(),
                    authorized.display()
                ),
            )
            .expect("write sshd_config");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken or bad config: retry with another port
                }
                // Our sshd says it listens (the port may also answer for another
                // test's sshd that took it first: then ours exits, and we retry).
                let listening = std::fs::read_to_string(&log)
                    .is_ok_and(|l| l.contains(&format!("Server listening on {addr} port {port}.")));
                if listening && std::net::TcpStream::connect((addr, port)).is_ok() {
                    return Sshd {
                        dir,
                        addr: addr.to_string(),
                        port,
                        client_key,
                        log,
                        child,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Adds a public key file to authorized_keys.
    pub fn authorize(&self, pubkey: &Path) {
        let mut keys = std::fs::read_to_string(self.dir.path().join("authorized_keys"))
            .expect("read authorized_keys");
        keys.push_str(&std::fs::read_to_string(pubkey).expect("read pubkey"));
        std::fs::write(self.dir.path().join("authorized_keys"), keys).expect("write");
    }

    /// The host's public key line (`ssh-ed25519 AAAA... comment`).
    pub fn host_public_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).expect("host pub")
    }

    /// sshd's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A target for `user` with only the client key, no agent, accept-new into
    /// `known_hosts`, and a short connect timeout.
    pub fn target(&self, user: &str, known_hosts: &Path) -> SshTarget {
        let mut t = SshTarget::new(self.addr.clone(), self.port, user);
        t.identity_files = vec![self.client_key.clone()];
        t.agent = None;
        t.known_hosts = vec![known_hosts.to_path_buf()];
        t.host_key_policy = HostKeyPolicy::AcceptNew;
        t.connect_timeout = Duration::from_secs(5);
        t
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real ssh-agent on a private socket, killed on drop.
pub struct Agent {
    /// The socket.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Agent {
    /// Starts ssh-agent and adds `key` to it.
    pub fn start_with(key: &Path) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket));
        Agent {
            socket,
            _dir: dir,
            child,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
