//! The `init` and `wireguard` facts: service manager and WireGuard support.

use serde::Serialize;

use super::sections::{key_values, value, yes_no};

/// Which init system runs the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InitSystem {
    /// systemd is PID 1 and running (`/run/systemd/system` exists).
    pub systemd: bool,
    /// OpenRC has booted the system (`/run/openrc` exists).
    pub openrc: bool,
    /// SysV init is PID 1: its control FIFO (`/run/initctl` or `/dev/initctl`) exists,
    /// which neither systemd, OpenRC-on-busybox-init nor runit creates (Devuan's default).
    pub sysvinit: bool,
    /// Name of PID 1 (`/proc/1/comm`), for messages.
    pub pid1: Option<String>,
}

impl InitSystem {
    /// Parses `systemd=yes|no`, `openrc=yes|no`, `sysvinit=yes|no`, `pid1=NAME` lines
    /// (`sysvinit` missing, as from older gather scripts, means no).
    pub fn parse(body: &str) -> InitSystem {
        let kv = key_values(body);
        InitSystem {
            systemd: yes_no(value(&kv, "systemd")).unwrap_or(false),
            openrc: yes_no(value(&kv, "openrc")).unwrap_or(false),
            sysvinit: yes_no(value(&kv, "sysvinit")).unwrap_or(false),
            pid1: value(&kv, "pid1")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
        }
    }
}

/// What the host offers to run WireGuard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WireguardSupport {
    /// The kernel module is loaded (`/sys/module/wireguard`; also true when built in).
    pub module_loaded: bool,
    /// `modprobe -n wireguard` succeeds; `None` when modprobe is missing.
    pub module_available: Option<bool>,
    /// First line of `wg --version`, when wireguard-tools is installed.
    pub wg_version: Option<String>,
    /// First line of `wireguard-go --version`, when installed.
    pub wireguard_go_version: Option<String>,
    /// `/dev/net/tun` exists (needed by wireguard-go).
    pub tun: bool,
}

impl WireguardSupport {
    /// Parses the `wireguard` section's `key=value` lines.
    pub fn parse(body: &str) -> WireguardSupport {
        let kv = key_values(body);
        let text = |key| {
            value(&kv, key)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        WireguardSupport {
            module_loaded: yes_no(value(&kv, "module_loaded")).unwrap_or(false),
            module_available: yes_no(value(&kv, "module_available")),
            wg_version: text("wg_version"),
            wireguard_go_version: text("wireguard_go_version"),
            tun: yes_no(value(&kv, "tun")).unwrap_or(false),
        }
    }

    /// The kernel can create WireGuard interfaces (loaded or loadable).
    pub fn kernel_support(&self) -> bool {
        self.module_loaded || self.module_available == Some(true)
    }

    /// Some implementation can run: the kernel module, or wireguard-go with a tun device.
    pub fn can_run(&self) -> bool {
        self.kernel_support() || (self.wireguard_go_version.is_some() && self.tun)
    }

    /// The wireguard-tools version number (`1.0.20210914`), if installed.
    pub fn tools_version(&self) -> Option<&str> {
        let line = self.wg_version.as_deref()?;
        line.split_whitespace()
            .find_map(|word| word.strip_prefix('v'))
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    }
}
