//! Transport against real sshd instances on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshup::fanout;
use meshup::shell;
use meshup::transport::{
    Become, HostKeyPolicy, JumpHost, Session, SshSession, Stats, TransportError,
};

use crate::require_sshd;
use crate::support_sshd::{Agent, Sshd, ensure_user, is_root, keygen, keygen_with_passphrase};

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn root_exec_preserves_status_output_and_large_streams() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let stats = Arc::new(Stats::new());
    let s = SshSession::connect(&sshd.target("root", &kh), &stats)
        .await
        .expect("connect");

    let out = s
        .exec("printf 'out\\0bin\\n'; printf 'err\\n' >&2; exit 7", b"", T)
        .await
        .expect("exec");
    assert_eq!(out.status, Some(7));
    assert_eq!(out.stdout, b"out\0bin\n");
    assert_eq!(out.stderr, b"err\n");

    // 8 MiB of output, exactly.
    let out = s
        .exec("head -c 8388608 /dev/zero | tr '\\0' 'x'", b"", T)
        .await
        .expect("exec");
    assert!(out.success());
    assert_eq!(out.stdout.len(), 8 * 1024 * 1024);
    assert!(out.stdout.iter().all(|b| *b == b'x'));

    // 3 MiB of binary stdin echoed back byte for byte, with stderr interleaved.
    let upload: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let out = s
        .exec("cat; echo done >&2", &upload, T)
        .await
        .expect("exec");
    assert_eq!(out.status, Some(0));
    assert!(out.stdout == upload, "stdin round trip differs");
    assert_eq!(out.stderr, b"done\n");

    // Atomic write through stdin.
    let path = sshd.dir.path().join("written.conf");
    let cmd = shell::atomic_write_command(path.to_str().expect("utf8"), 0o600).expect("cmd");
    let out = s.exec(&cmd, b"[Interface]\n", T).await.expect("exec");
    assert!(out.success(), "{out:?}");
    assert_eq!(std::fs::read(&path).expect("read"), b"[Interface]\n");

    // One connection for all of it.
    let st = stats.host("127.0.0.1");
    assert_eq!(st.connections, 1);
    assert_eq!(st.execs, 4);
}

#[tokio::test]
async fn key_types_ed25519_ecdsa_rsa_sha2() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "PubkeyAcceptedAlgorithms -ssh-rsa");
    let kh = sshd.dir.path().join("known_hosts");
    let stats = Arc::new(Stats::new());
    for kind in ["ecdsa", "rsa", "ed25519"] {
        let key = sshd.dir.path().join(format!("id_{kind}"));
        keygen(&key, kind);
        sshd.authorize(&key.with_extension("pub"));
        let mut t = sshd.target("root", &kh);
        t.identity_files = vec![sshd.dir.path().join("missing_key"), key];
        let s = SshSession::connect(&t, &stats)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let out = s.exec("echo ok", b"", T).await.expect("exec");
        assert_eq!(out.stdout, b"ok\n");
    }
}

#[tokio::test]
async fn agent_auth_with_a_real_ssh_agent() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let agent_key = sshd.dir.path().join("agent_key");
    keygen(&agent_key, "ed25519");
    sshd.authorize(&agent_key.with_extension("pub"));
    let agent = Agent::start_with(&agent_key);
    let mut t = sshd.target("root", &kh);
    t.identity_files = vec![]; // only the agent can authenticate
    t.agent = Some(agent.socket.clone());
    let s = SshSession::connect(&t, &Arc::new(Stats::new()))
        .await
        .expect("agent auth");
    assert_eq!(
        s.exec("echo via-agent", b"", T).await.expect("exec").stdout,
        b"via-agent\n"
    );

    // Without the agent and without files: a clear refusal.
    t.agent = None;
    let err = SshSession::connect(&t, &Arc::new(Stats::new()))
        .await
        .expect_err("no key");
    assert!(matches!(err, TransportError::AuthFailed { .. }), "{err}");
}

#[tokio::test]
async fn encrypted_key_without_terminal_fails_clearly() {
    require_sshd!();
    meshup::transport::set_interactive(false);
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let key = sshd.dir.path().join("id_locked");
    keygen_with_passphrase(&key, "ed25519", "correct horse");
    sshd.authorize(&key.with_extension("pub"));
    let mut t = sshd.target("root", &kh);
    t.identity_files = vec![key.clone()];
    let err = SshSession::connect(&t, &Arc::new(Stats::new()))
        .await
        .expect_err("encrypted");
    let msg = err.to_string();
    assert!(
        msg.contains("encrypted") && msg.contains("id_locked"),
        "{msg}"
    );
    assert!(!msg.contains("correct horse"));
}

#[tokio::test]
async fn known_hosts_accept_new_then_match_then_changed_is_refused() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("inventory_known_hosts");
    let stats = Arc::new(Stats::new());

    // Strict and unknown: refused, nothing written.
    let mut strict = sshd.target("root", &kh);
    strict.host_key_policy = HostKeyPolicy::Strict;
    let err = SshSession::connect(&strict, &stats)
        .await
        .expect_err("strict unknown");
    assert!(
        matches!(err, TransportError::HostKeyUnknown { .. }),
        "{err}"
    );
    assert!(!kh.exists());

    // accept-new learns the key.
    let t = sshd.target("root", &kh);
    SshSession::connect(&t, &stats)
        .await
        .expect("first connect");
    let recorded = std::fs::read_to_string(&kh).expect("known_hosts written");
    let host_key = sshd.host_public_key();
    let key_b64 = host_key.split_whitespace().nth(1).expect("key field");
    assert_eq!(recorded.lines().count(), 1);
    assert!(recorded.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 {key_b64}", sshd.port)));

    // Second run matches (also in strict mode), nothing appended.
    SshSession::connect(&t, &stats)
        .await
        .expect("second connect");
    SshSession::connect(&strict, &stats)
        .await
        .expect("strict known");
    assert_eq!(std::fs::read_to_string(&kh).expect("read"), recorded);

    // The host's key changes: refused, naming file and line.
    let other = sshd.dir.path().join("other_host_key");
    keygen(&other, "ed25519");
    let other_b64 = std::fs::read_to_string(other.with_extension("pub")).expect("pub");
    let other_b64 = other_b64
        .split_whitespace()
        .nth(1)
        .expect("key field")
        .to_string();
    std::fs::write(
        &kh,
        format!(
            "# managed\n[127.0.0.1]:{} ssh-ed25519 {other_b64}\n",
            sshd.port
        ),
    )
    .expect("write");
    for policy in [HostKeyPolicy::AcceptNew, HostKeyPolicy::Strict] {
        let mut t = sshd.target("root", &kh);
        t.host_key_policy = policy;
        let err = SshSession::connect(&t, &stats)
            .await
            .expect_err("changed key");
        let msg = err.to_string();
        assert!(
            matches!(err, TransportError::HostKeyChanged { line: 2, .. }),
            "{msg}"
        );
        assert!(msg.contains("CHANGED"), "{msg}");
        assert!(msg.contains(&format!("{}:2", kh.display())), "{msg}");
    }
    // Not overwritten.
    assert!(
        std::fs::read_to_string(&kh)
            .expect("read")
            .contains(&other_b64)
    );

    // Insecure connects with a warning and records nothing.
    let mut insecure = sshd.target("root", &kh);
    insecure.host_key_policy = HostKeyPolicy::Insecure;
    SshSession::connect(&insecure, &stats)
        .await
        .expect("insecure connects");
    assert!(
        !std::fs::read_to_string(&kh)
            .expect("read")
            .contains(key_b64)
    );
}

#[tokio::test]
async fn sudo_user_with_nopasswd_and_without() {
    require_sshd!();
    if !is_root() {
        eprintln!("SKIPPED: creating the mu-sudo / mu-nopw users needs root");
        return;
    }
    ensure_user("mu-sudo", Some("mu-sudo ALL=(ALL) NOPASSWD: ALL"));
    ensure_user("mu-nopw", Some("mu-nopw ALL=(ALL) ALL"));
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let stats = Arc::new(Stats::new());

    let t = sshd.target("mu-sudo", &kh);
    assert_eq!(t.become_, Become::Sudo);
    let s = SshSession::connect(&t, &stats)
        .await
        .expect("connect mu-sudo");
    let out = s
        .exec("id -un; echo \"$1\"; cat", b"stdin-through-sudo", T)
        .await
        .expect("exec");
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, b"root\n\nstdin-through-sudo");

    let t = sshd.target("mu-nopw", &kh);
    let s = SshSession::connect(&t, &stats)
        .await
        .expect("connect mu-nopw");
    let started = Instant::now();
    let err = s
        .exec("id -u", b"", T)
        .await
        .expect_err("sudo needs a password");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "sudo -n must not hang"
    );
    let msg = err.to_string();
    assert!(
        matches!(err, TransportError::SudoNeedsPassword { .. })
            && msg.contains("NOPASSWD")
            && msg.contains("mu-nopw")
            && msg.contains("root"),
        "{msg}"
    );
}

#[tokio::test]
async fn proxy_jump_through_one_sshd_to_another() {
    require_sshd!();
    let jump = Sshd::start("127.0.0.1", "");
    let target = Sshd::start("127.0.0.2", "");
    jump.authorize(&target.client_key.with_extension("pub"));
    let kh = target.dir.path().join("known_hosts");
    let stats = Arc::new(Stats::new());
    let mut t = target.target("root", &kh);
    t.name = "node-behind-jump".into();
    t.jumps = vec![JumpHost {
        name: "bastion".into(),
        host: jump.addr.clone(),
        port: jump.port,
        user: "root".into(),
        identity_files: vec![jump.client_key.clone()],
        identities_only: false,
    }];
    let s = SshSession::connect(&t, &stats)
        .await
        .expect("connect through jump");
    let out = s
        .exec("echo \"$SSH_CONNECTION\"", b"", T)
        .await
        .expect("exec");
    let conn = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        conn.contains(&format!("127.0.0.2 {}", target.port)),
        "{conn}"
    );

    // Both host keys were checked and learned.
    let recorded = std::fs::read_to_string(&kh).expect("known_hosts");
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{}", jump.port)),
        "{recorded}"
    );
    assert!(
        recorded.contains(&format!("[127.0.0.2]:{}", target.port)),
        "{recorded}"
    );
    // The jump sshd really forwarded it.
    let log = jump.log_text();
    assert!(
        log.contains("direct-tcpip") && log.contains(&format!("127.0.0.2 port {}", target.port)),
        "jump log lacks the forwarding:\n{log}"
    );
    assert_eq!(stats.host("bastion").connections, 1);
    assert_eq!(stats.host("node-behind-jump").connections, 1);

    // A changed key on the jump host is refused, named as the jump's.
    std::fs::write(
        &kh,
        recorded.replace(&format!("[127.0.0.1]:{}", jump.port), "[127.0.0.1]:1"),
    )
    .expect("write");
    let other = target.dir.path().join("other");
    keygen(&other, "ed25519");
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).expect("pub");
    let mut kh_text = std::fs::read_to_string(&kh).expect("read");
    kh_text.push_str(&format!("[127.0.0.1]:{} {}", jump.port, other_pub));
    std::fs::write(&kh, kh_text).expect("write");
    let err = SshSession::connect(&t, &stats)
        .await
        .expect_err("jump key changed");
    assert!(
        matches!(&err, TransportError::Jump { source, .. } if matches!(**source, TransportError::HostKeyChanged { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_hosts_time_out_while_others_succeed() {
    require_sshd!();
    let good = Sshd::start("127.0.0.1", "");
    let kh = good.dir.path().join("known_hosts");
    // A host that accepts TCP and then says nothing (the worst kind of hang).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    // A closed port: refused at once.
    let closed_port = crate::support_sshd::free_port("127.0.0.1");

    let mut targets = Vec::new();
    for (name, port) in [
        ("good-1", good.port),
        ("silent", silent_port),
        ("closed", closed_port),
        ("good-2", good.port),
    ] {
        let mut t = good.target("root", &kh);
        t.name = name.into();
        t.port = port;
        t.connect_timeout = Duration::from_secs(2);
        targets.push(t);
    }
    let stats = Arc::new(Stats::new());
    let started = Instant::now();
    let outcomes = fanout::run(targets, fanout::DEFAULT_PARALLEL, |t| {
        let stats = Arc::clone(&stats);
        async move {
            let s = SshSession::connect(&t, &stats).await?;
            s.exec("hostname >/dev/null && echo up", b"", T).await
        }
    })
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(!fanout::all_ok(&outcomes));
    let names: Vec<&str> = outcomes.iter().map(|(t, _)| t.name.as_str()).collect();
    assert_eq!(names, ["good-1", "silent", "closed", "good-2"]);
    assert_eq!(outcomes[0].1.as_ref().expect("good-1").stdout, b"up\n");
    assert_eq!(outcomes[3].1.as_ref().expect("good-2").stdout, b"up\n");
    let silent_err = outcomes[1].1.as_ref().expect_err("silent");
    assert!(
        matches!(silent_err, TransportError::ConnectTimeout { secs: 2, .. }),
        "{silent_err}"
    );
    assert!(silent_err.to_string().contains("timed out after 2s"));
    let closed_err = outcomes[2].1.as_ref().expect_err("closed");
    assert!(
        matches!(closed_err, TransportError::Connect { .. }),
        "{closed_err}"
    );
    assert!(silent_err.is_unreachable() && closed_err.is_unreachable());
}

#[tokio::test]
async fn command_timeout_does_not_hang_and_session_survives() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let s = SshSession::connect(&sshd.target("root", &kh), &Arc::new(Stats::new()))
        .await
        .expect("connect");
    let started = Instant::now();
    let err = s
        .exec("sleep 30", b"", Duration::from_secs(1))
        .await
        .expect_err("times out");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(
        matches!(err, TransportError::CommandTimeout { secs: 1, .. }),
        "{err}"
    );
    let out = s
        .exec("echo still-here", b"", T)
        .await
        .expect("reuse after timeout");
    assert_eq!(out.stdout, b"still-here\n");
}

#[tokio::test]
async fn hostile_values_reach_the_host_as_literal_data() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let s = SshSession::connect(&sshd.target("root", &kh), &Arc::new(Stats::new()))
        .await
        .expect("connect");
    let canary = sshd.dir.path().join("pwned");
    let canary_s = canary.display().to_string();
    let hostile = [
        "two words".to_string(),
        "it's \"quoted\"".to_string(),
        format!("$(touch {canary_s})"),
        format!("`touch {canary_s}`"),
        format!("x; touch {canary_s}"),
        format!("a\nb\ntouch {canary_s}"),
        "$HOME ${PATH} \\n *".to_string(),
        "--help".to_string(),
        String::new(),
    ];
    for value in &hostile {
        let cmd = format!("printf '%s' {}", shell::quote(value));
        let out = s.exec(&cmd, b"", T).await.expect("exec");
        assert!(out.success(), "{value:?}: {out:?}");
        assert_eq!(out.stdout, value.as_bytes(), "value {value:?}");
    }
    // Also through sudo's extra `sh -c` layer, when the sudo user exists.
    if is_root() {
        ensure_user("mu-sudo", Some("mu-sudo ALL=(ALL) NOPASSWD: ALL"));
        let s = SshSession::connect(&sshd.target("mu-sudo", &kh), &Arc::new(Stats::new()))
            .await
            .expect("connect sudo user");
        for value in &hostile {
            let cmd = format!("printf '%s' {}", shell::quote(value));
            let out = s.exec(&cmd, b"", T).await.expect("exec");
            assert_eq!(out.stdout, value.as_bytes(), "via sudo {value:?}");
        }
    }
    // A hostile file name through the atomic writer.
    let path = sshd.dir.path().join("we ird;$(x)'n\"ame");
    let cmd = shell::atomic_write_command(path.to_str().expect("utf8"), 0o644).expect("cmd");
    assert!(s.exec(&cmd, b"data", T).await.expect("exec").success());
    assert_eq!(std::fs::read(&path).expect("read"), b"data");
    assert!(!canary.exists(), "a hostile value was executed");
    // A NUL byte is refused before anything is sent.
    let err = s.exec("echo a\0b", b"", T).await.expect_err("nul");
    assert!(matches!(err, TransportError::InvalidCommand { .. }));
}

#[tokio::test]
async fn one_connection_serves_concurrent_commands() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let stats = Arc::new(Stats::new());
    let session: Box<dyn Session> = Box::new(
        SshSession::connect(&sshd.target("root", &kh), &stats)
            .await
            .expect("connect"),
    );
    let session = &session;
    let outcomes = fanout::run((0..8u32).collect(), 8, |i| async move {
        session.exec(&format!("sleep 0.2; echo {i}"), b"", T).await
    })
    .await;
    for (i, result) in &outcomes {
        assert_eq!(
            result.as_ref().expect("exec").stdout,
            format!("{i}\n").into_bytes()
        );
    }
    assert_eq!(session.host(), "127.0.0.1");
    assert_eq!(stats.host("127.0.0.1").connections, 1);
    assert_eq!(stats.host("127.0.0.1").execs, 8);
}

#[tokio::test]
async fn a_watched_exec_streams_lines_and_sends_the_rest_of_stdin_when_asked() {
    require_sshd!();
    let sshd = Sshd::start("127.0.0.1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let stats = Arc::new(Stats::new());
    let s = SshSession::connect(&sshd.target("root", &kh), &stats)
        .await
        .expect("connect");
    // The command says it is ready, then waits for a line on its input: the rest of
    // stdin is sent only once the watcher saw "ready" (before the command ended).
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = std::sync::Mutex::new(Some(tx));
    let line = |l: &str| {
        seen.lock().unwrap().push(l.to_string());
        if l == "ready"
            && let Some(tx) = tx.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    };
    let watch = meshup::transport::Watch {
        line: &line,
        rest: Box::pin(async move {
            rx.await.expect("ready seen");
            b"go 42\n".to_vec()
        }),
    };
    let out = s
        .exec_watched(
            "read -r first; echo \"got $first\"; echo ready; read -r word n; echo \"$word $n\"; cat",
            b"hello\n",
            watch,
            T,
        )
        .await
        .expect("exec");
    assert!(out.success(), "{out:?}");
    assert_eq!(
        out.stdout, b"got hello\nready\ngo 42\n",
        "cat saw EOF after the rest"
    );
    assert_eq!(*seen.lock().unwrap(), ["got hello", "ready", "go 42"]);

    // A command that ends without ever saying it is ready: the exec ends with it, the
    // rest (never resolving) is not waited for.
    let watch = meshup::transport::Watch {
        line: &|_: &str| {},
        rest: Box::pin(std::future::pending()),
    };
    let started = Instant::now();
    let out = s
        .exec_watched("echo failed >&2; exit 3", b"", watch, T)
        .await
        .expect("exec");
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stderr, b"failed\n");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Collects everything logged, at every level, `log` records of russh included.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn secrets_never_reach_the_logs_even_at_trace_level() {
    require_sshd!();
    let capture = Capture::default();
    let writer = capture.clone();
    let installed = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .try_init()
        .is_ok();
    if !installed {
        eprintln!("SKIPPED: another test already installed the global log subscriber");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let sshd = Sshd::start("127.0.0.1", "");
        let kh = sshd.dir.path().join("known_hosts");
        let s = SshSession::connect(&sshd.target("root", &kh), &Arc::new(Stats::new()))
            .await
            .expect("connect");
        let secret = meshup::secret::Secret::from("PSK-SECRET-4f1c9a");
        tracing::info!(psk = ?secret, "about to upload");
        let out = s
            .exec(
                "cat > /dev/null; echo OUTPUT-SECRET-77b2",
                secret.expose(),
                T,
            )
            .await
            .expect("exec");
        assert!(out.success());
    });
    let logged =
        String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(logged.contains("about to upload"), "capture works");
    assert!(logged.contains("(redacted)"));
    assert!(
        logged.lines().count() > 20,
        "trace logs of russh were captured:\n{logged}"
    );
    assert!(!logged.contains("PSK-SECRET-4f1c9a"), "stdin secret logged");
    assert!(
        !logged.contains("OUTPUT-SECRET-77b2"),
        "command output logged"
    );
}

/// Child half of `encrypted_key_asks_passphrase_once_on_a_tty`: runs inside a pty made
/// by `script`, connects twice with an encrypted key. Does nothing unless started by
/// the parent test (it is `#[ignore]`d for normal runs).
#[tokio::test]
#[ignore = "child process of encrypted_key_asks_passphrase_once_on_a_tty"]
async fn tty_child_connects_twice_with_encrypted_key() {
    let (Ok(port), Ok(key), Ok(kh)) = (
        std::env::var("MESHUP_TTY_PORT"),
        std::env::var("MESHUP_TTY_KEY"),
        std::env::var("MESHUP_TTY_KH"),
    ) else {
        eprintln!("SKIPPED: only meaningful as a child of the tty test");
        return;
    };
    meshup::transport::set_interactive(true);
    let port: u16 = port.parse().expect("port");
    let stats = Arc::new(Stats::new());
    for _ in 0..2 {
        let mut t = meshup::transport::SshTarget::new("127.0.0.1", port, "root");
        t.identity_files = vec![key.clone().into()];
        t.agent = None;
        t.known_hosts = vec![kh.clone().into()];
        let s = SshSession::connect(&t, &stats)
            .await
            .expect("connect with decrypted key");
        assert!(s.exec("true", b"", T).await.expect("exec").success());
    }
    println!("CHILD-CONNECTED-TWICE");
}

#[test]
fn encrypted_key_asks_passphrase_once_on_a_tty() {
    require_sshd!();
    use std::io::{Read, Write};
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: `script` (util-linux) is needed to get a pty");
        return;
    }
    let sshd = Sshd::start("127.0.0.1", "");
    let key = sshd.dir.path().join("id_tty");
    keygen_with_passphrase(&key, "ed25519", "open sesame");
    sshd.authorize(&key.with_extension("pub"));
    let exe = std::env::current_exe().expect("test binary");
    let child_cmd = format!(
        "{} --ignored --exact transport::tty_child_connects_twice_with_encrypted_key --nocapture",
        shell::quote(exe.to_str().expect("utf8 path"))
    );
    let mut child = std::process::Command::new("script")
        .args(["-qefc", &child_cmd, "/dev/null"])
        .env("MESHUP_TTY_PORT", sshd.port.to_string())
        .env("MESHUP_TTY_KEY", &key)
        .env("MESHUP_TTY_KH", sshd.dir.path().join("known_hosts"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => seen.extend_from_slice(&chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let text = String::from_utf8_lossy(&seen);
        if !answered && text.contains("Enter passphrase for key") {
            // Give the child a moment to turn echo off, then type.
            std::thread::sleep(Duration::from_millis(300));
            stdin.write_all(b"open sesame\n").expect("type passphrase");
            stdin.flush().expect("flush");
            answered = true;
        }
    }
    let status = child.wait().expect("wait");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(status.success(), "child failed:\n{text}");
    assert!(text.contains("CHILD-CONNECTED-TWICE"), "{text}");
    assert_eq!(
        text.matches("Enter passphrase for key").count(),
        1,
        "{text}"
    );
    assert!(
        !text.contains("open sesame"),
        "passphrase was echoed:\n{text}"
    );
}

/// SSH over IPv6 (issue #28): an ssh_config `HostName` that is an IPv6 address connects,
/// the key is learned under `[addr]:port` as OpenSSH records it (its own `ssh-keygen -F`
/// finds it), and a strict second connection by the bare address matches it.
#[tokio::test]
async fn ipv6_hostname_from_ssh_config_connects_and_known_hosts_uses_openssh_form() {
    require_sshd!();
    let sshd = Sshd::start("::1", "");
    let kh = sshd.dir.path().join("known_hosts");
    let config = sshd.dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host v6box\n    HostName ::1\n    Port {}\n    User root\n    IdentityFile {}\n    IdentitiesOnly yes\n",
            sshd.port,
            sshd.client_key.display()
        ),
    )
    .expect("write ssh_config");
    let spec = meshup::transport::TargetSpec {
        known_hosts: Some(kh.clone()),
        host_key_policy: HostKeyPolicy::AcceptNew,
        ssh_config: Some(config),
        connect_timeout: Some(Duration::from_secs(5)),
        ..meshup::transport::TargetSpec::new("v6box")
    };
    let mut target = spec.resolve().expect("resolve the alias");
    assert_eq!(target.host, "::1");
    assert_eq!(target.display(), format!("root@[::1]:{}", sshd.port));
    target.agent = None;
    let stats = Arc::new(Stats::new());
    let s = SshSession::connect(&target, &stats)
        .await
        .expect("connect over IPv6");
    let out = s.exec("echo over-v6", b"", T).await.expect("exec");
    assert_eq!(out.stdout, b"over-v6\n");

    let name = format!("[::1]:{}", sshd.port);
    let recorded = std::fs::read_to_string(&kh).expect("known_hosts written");
    assert!(
        recorded.starts_with(&format!("{name} ssh-ed25519 ")),
        "{recorded}"
    );
    let found = std::process::Command::new("ssh-keygen")
        .args(["-F", &name, "-f"])
        .arg(&kh)
        .output()
        .expect("run ssh-keygen -F");
    assert!(
        found.status.success(),
        "OpenSSH does not find {name} in\n{recorded}"
    );

    let mut strict = sshd.target("root", &kh);
    strict.host_key_policy = HostKeyPolicy::Strict;
    SshSession::connect(&strict, &stats)
        .await
        .expect("strict connect by the bare address");
}
