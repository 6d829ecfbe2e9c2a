# shellcheck shell=bash disable=SC2015,SC2086,SC2016,SC2034
# meshup lab: hosts booted by another init than systemd (`up --init HOST=sysvinit|openrc`).
# Sourced by tests/lab/lab. What is real: the init (Debian's sysvinit-core `/sbin/init` as
# PID 1 of the host's PID namespace, reading /etc/inittab; with OpenRC, Debian's openrc
# package runs the runlevels), the init scripts Debian's packages ship (ssh, cron, ufw,
# netfilter-persistent, procps' sysctl, ...), their enablement (update-rc.d / rc-update) and
# their order, and Debian's cron daemon (meshup's watchdog runs from /etc/cron.d there).
#
# Built once per machine under $LAB_CACHE/init-<hash>/ (keyed by the base and by this file):
#   sysvinit/   overlay layer over the base: sysvinit-core (replaces systemd-sysv), cron
#   openrc/     overlay layer over the base: sysvinit-core, openrc (replaces sysv-rc), cron
# A host with init I boots on lowerdir=init-<hash>/I:base, through hostboot's `init` mode
# (the light flavour's namespaces and mounts, then `exec /sbin/init`).

INIT_KINDS="sysvinit openrc"
INIT_VERSION=1

valid_init() { [[ " $INIT_KINDS " == *" $1 "* ]] || die "unknown init '$1' ($INIT_KINDS)"; }

init_packages() {
    case $1 in
        sysvinit) echo "sysvinit-core cron" ;;
        openrc) echo "sysvinit-core openrc cron" ;;
    esac
}

init_hash() {
    {
        base_hash
        echo "$INIT_VERSION $INIT_KINDS"
        declare -f init_layer init_packages apt_into_root
    } | sha256sum | cut -c1-16
}

# Make sure the init layers exist; sets INITS.
ensure_inits() {
    INITS=$LAB_CACHE/init-$(init_hash)
    cache_ensure "$INITS" init_build
}

init_build() {
    local tmp=$1 k t0
    t0=$(now)
    log "building the init layers ($INIT_KINDS; once per machine, ~1 min)"
    for k in $INIT_KINDS; do init_layer "$tmp" "$k"; done
    rm -rf "$tmp/work"
    log "init layers built in $(since "$t0")s"
}

# One init's layer: its packages installed with apt from the machine's Debian mirror into an
# overlay upper layer over the base (private mount namespace, no service started), then the
# lab's own boot pieces: no gettys (a host has no terminals), the first-boot script (host
# keys) as an init script that runs before ssh.
init_layer() {
    local tmp=$1 kind=$2 r u
    r=$tmp/merged
    u=$tmp/$kind
    mkdir -p "$u" "$tmp/work" "$r"
    mkdir -p "$u/etc/init.d"
    cat >"$u/etc/init.d/lab-firstboot" <<'EOF'
#!/bin/sh
### BEGIN INIT INFO
# Provides:          lab-firstboot
# Required-Start:    $local_fs
# Required-Stop:
# X-Start-Before:    ssh
# Default-Start:     2 3 4 5
# Default-Stop:
# Short-Description: meshup lab first boot (SSH host keys, machine-id)
### END INIT INFO
case "$1" in
start) exec /usr/local/sbin/lab-firstboot ;;
stop | restart | force-reload | status) exit 0 ;;
*) echo "usage: $0 start" >&2; exit 3 ;;
esac
EOF
    chmod 755 "$u/etc/init.d/lab-firstboot"
    apt_into_root "$r" "$tmp/$kind.log" "$(init_packages "$kind")" \
        "lowerdir=$BASE/rootfs,upperdir=$u,workdir=$tmp/work" "update-rc.d lab-firstboot defaults"
    rm -f "$u/etc/resolv.conf" "$u/etc/apt/sources.list.d/lab-build.list" "$u/usr/sbin/policy-rc.d"
    rm -rf "$u/var/lib/apt/lists" "$u/var/cache/apt" "$u/var/log/apt" "$u/var/log/dpkg.log" "$u/var/cache/debconf"/*-old
    # OpenRC's `cgroups` (sysinit) would mount cgroup hierarchies of its own, among them a
    # v1 `name=openrc` hierarchy that is the machine's (one kernel): the lab owns the hosts'
    # cgroups, so OpenRC does not touch them.
    if [ "$kind" = openrc ]; then
        rm -f "$u/etc/runlevels/sysinit/cgroups"
        printf '\n# meshup lab: the lab owns the host cgroups.\nrc_controller_cgroups="NO"\n' >>"$u/etc/rc.conf"
    fi
    # A host has no terminals: no gettys respawning on missing ttys.
    sed -i -E 's/^([0-9]+:[0-9]+:respawn:\/sbin\/getty)/#\1/' "$u/etc/inittab"
    rm -rf "$tmp/work"
    mkdir -p "$tmp/work"
    rmdir "$r"
}
