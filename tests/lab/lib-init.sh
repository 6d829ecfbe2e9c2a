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
        declare -f init_build init_layer init_packages
    } | sha256sum | cut -c1-16
}

# Make sure the init layers exist (under the cache lock); sets INITS.
ensure_inits() {
    local d
    d=$LAB_CACHE/init-$(init_hash)
    if ! [ -d "$d/openrc" ]; then
        exec 8>"$LAB_CACHE/.lock"
        flock 8
        if ! [ -d "$d/openrc" ]; then
            rm -rf "$LAB_CACHE"/init-*.tmp.*
            init_build "$d"
        fi
        flock -u 8
        exec 8>&-
    fi
    INITS=$d
}

init_build() {
    local final=$1 tmp k t0
    tmp="$final.tmp.$$"
    t0=$(now)
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "building the init layers ($INIT_KINDS; once per machine, ~1 min)"
    for k in $INIT_KINDS; do init_layer "$tmp" "$k"; done
    rm -rf "$tmp/work"
    mv "$tmp" "$final"
    local old
    for old in "$LAB_CACHE"/init-*; do
        [ "$old" = "$final" ] && continue
        [ -n "$(find "$old" -maxdepth 0 -mmin +1440)" ] || continue
        grep -qsx "INITS=$old" "$LAB_STATE"/*/lab.env || rm -rf "$old"
    done
    log "init layers ready in $(since "$t0")s: $final"
}

# One init's layer: its packages installed with apt from the machine's Debian mirror into an
# overlay upper layer over the base (private mount namespace, no service started), then the
# lab's own boot pieces: no gettys (a host has no terminals), the first-boot script (host
# keys) as an init script that runs before ssh.
init_layer() {
    local tmp=$1 kind=$2 m r u
    m=$(debian_mirror)
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
    unshare --mount --propagation private -- bash -ec '
        mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/$6,workdir=$2/work" "$3"
        cp /etc/resolv.conf "$3/etc/resolv.conf"
        echo "deb $4 bookworm main" > "$3/etc/apt/sources.list.d/lab-build.list"
        printf "#!/bin/sh\nexit 101\n" > "$3/usr/sbin/policy-rc.d"
        chmod 755 "$3/usr/sbin/policy-rc.d"
        mount -t proc proc "$3/proc"
        o="-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/lab-build.list -o Dir::Etc::sourceparts=-"
        chroot "$3" sh -ec "
            export DEBIAN_FRONTEND=noninteractive
            apt-get -q $o update
            apt-get -q -y $o --no-install-recommends --allow-remove-essential install $5
            apt-get -q clean
            update-rc.d lab-firstboot defaults"
        umount "$3/proc"
        umount "$3"' _ "$BASE/rootfs" "$tmp" "$r" "$m" "$(init_packages "$kind")" "$kind" >"$tmp/$kind.log" 2>&1 \
        || { tail -n 30 "$tmp/$kind.log" >&2; die "installing $kind failed (log: $tmp/$kind.log)"; }
    if grep '^[WE]:' "$tmp/$kind.log" | grep -v 'Can not write log'; then die "apt reported errors (log: $tmp/$kind.log)"; fi
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
