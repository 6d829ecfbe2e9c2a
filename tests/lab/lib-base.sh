# shellcheck shell=bash disable=SC2015,SC2086,SC2116,SC2010,SC2034
# meshup lab: the shared read-only Debian 12 base rootfs and the lab's package mirror.
# Sourced by tests/lab/lab. Built once per machine under $LAB_CACHE/base-<hash>/, keyed by a
# hash of the package lists and of the files copied into the rootfs, so a second `up` reuses it.

# Packages in the base rootfs (WireGuard is deliberately absent: meshup installs it).
BASE_PACKAGES="libpam-systemd openssh-server openssh-client iproute2 iputils-ping nftables iptables ufw sudo
systemd systemd-sysv dbus procps firewalld tini less ca-certificates"
# Packages the lab mirror serves, with every dependency missing from the base
# (iptables-persistent: the Debian loader that restores iptables rules at boot, installed by
# the tests that reboot a host with iptables rules; man-db: `man` for the test that installs
# meshup's .deb; network-manager: Debian's NetworkManager for tests/it/nm_lab.rs).
MIRROR_PACKAGES="wireguard-tools wireguard-go tree iptables-persistent man-db network-manager"
# Downloaded without dependency resolution (their kernel-module dependency is met by the
# lab's shim package, see make_shim_deb).
MIRROR_EXTRA="wireguard"
BASE_VERSION=3

# The Debian mirror configured on this machine (first deb.debian.org-like URI of the
# Debian sources), overridable with MESHUP_LAB_DEBIAN_MIRROR.
debian_mirror() {
    if [ -n "${MESHUP_LAB_DEBIAN_MIRROR:-}" ]; then echo "$MESHUP_LAB_DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -E '/debian/?$' | head -n1)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' \
        | grep -E '/debian/?$' | head -n1)
    echo "${uri:-http://deb.debian.org/debian}"
}

base_hash() {
    {
        echo "$BASE_VERSION $BASE_PACKAGES $MIRROR_PACKAGES $MIRROR_EXTRA"
        (cd "$LAB_DIR/rootfs" && find . -type f | sort | xargs sha256sum)
        declare -f base_build make_shim_deb
    } | sha256sum | cut -c1-16
}

base_dir() { echo "$LAB_CACHE/base-$(base_hash)"; }

# A tiny package standing in for the kernel image's `Provides: wireguard-modules`: the lab
# kernel has no WireGuard module, wg-quick falls back to wireguard-go, and the `wireguard`
# metapackage (what the guide installs) stays installable.
make_shim_deb() {
    local out=$1 d
    d=$(mktemp -d)
    mkdir -p "$d/DEBIAN"
    cat > "$d/DEBIAN/control" <<EOF
Package: lab-wireguard-modules
Version: 1.0.0
Architecture: all
Maintainer: meshup lab <lab@localhost>
Provides: wireguard-modules (= 1.0.0)
Depends: wireguard-go
Description: meshup lab stand-in for the kernel's WireGuard module
 The lab kernel has no WireGuard module; wg-quick uses wireguard-go instead.
EOF
    dpkg-deb --root-owner-group -b "$d" "$out/lab-wireguard-modules_1.0.0_all.deb" >/dev/null
    rm -rf "$d"
}

base_build() {
    local final=$1 tmp mirror
    tmp="$final.tmp.$$"
    mirror=$(debian_mirror)
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "building base rootfs from $mirror (once per machine, ~2 min)"
    # minbase with debootstrap, then the rest with apt (debootstrap's resolver does not follow
    # virtual packages such as polkitd -> default-logind).
    debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" \
        > "$tmp/debootstrap.log" 2>&1 || { tail -n 30 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log: $tmp/debootstrap.log)"; }
    local r=$tmp/rootfs
    # Package installs run with the machine's network and resolver, in a private mount
    # namespace (its /proc mount vanishes with it), with no service started.
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    echo "deb $mirror bookworm main" > "$r/etc/apt/sources.list"
    printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    unshare --mount --propagation private -- chroot "$r" sh -ec "
        mount -t proc proc /proc
        export DEBIAN_FRONTEND=noninteractive
        apt-get -q update > /update.log 2>&1
        apt-get -q -y --no-install-recommends install $(echo $BASE_PACKAGES)
        apt-get -q clean
        apt-get -q -y --download-only --no-install-recommends install $MIRROR_PACKAGES
        cd /var/cache/apt/archives && apt-get -q download $MIRROR_EXTRA
        umount /proc" > "$tmp/install.log" 2>&1 || { tail -n 30 "$tmp/install.log" >&2; die "package install in the base failed (log: $tmp/install.log)"; }
    # apt-get update with an unreachable source exits 0 with W: lines.
    mv "$r/update.log" "$tmp/update.log"
    if grep -q '^[WE]:' "$tmp/update.log"; then grep '^[WE]:' "$tmp/update.log" >&2; die "apt-get update in the base reported errors"; fi
    rm -f "$r/usr/sbin/policy-rc.d"
    mkdir -p "$tmp/mirror"
    mv "$r"/var/cache/apt/archives/*.deb "$tmp/mirror/"
    make_shim_deb "$tmp/mirror"
    (cd "$tmp/mirror" && dpkg-scanpackages -m . /dev/null > Packages 2>/dev/null && gzip -9k Packages)
    # debootstrap copied this machine's resolver: lab hosts have no DNS.
    rm -f "$r/etc/resolv.conf"
    : > "$r/etc/resolv.conf"
    # Hosts point at the lab mirror only; no Debian lists left behind.
    chroot "$r" apt-get -q clean
    rm -rf "$r"/var/lib/apt/lists/*
    mkdir -p "$r/var/lib/apt/lists/partial"
    cp -a "$LAB_DIR/rootfs/." "$r/"
    # Users: admin (passwordless sudo), nopw (sudo that asks for a password it cannot get).
    chroot "$r" useradd -m -s /bin/bash admin
    chroot "$r" useradd -m -s /bin/bash nopw
    chroot "$r" usermod -p '*' admin
    chroot "$r" usermod -p '*' nopw
    # systemd flavour: firewalld installed but off, no apt timers fighting meshup for the
    # dpkg lock, first boot makes the host keys.
    chroot "$r" systemctl disable firewalld.service >/dev/null 2>&1 || true
    chroot "$r" systemctl enable lab-firstboot.service ssh.service >/dev/null 2>&1
    for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
             systemd-networkd.service systemd-networkd-wait-online.service getty@tty1.service; do
        chroot "$r" systemctl mask "$u" >/dev/null 2>&1 || true
    done
    # Nothing secret or host-specific in the base.
    rm -f "$r"/etc/ssh/ssh_host_*
    : > "$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id"
    echo lab > "$r/etc/hostname"
    mv "$tmp" "$final"
    # Older bases nobody uses any more and not built in the last day (worktrees of other
    # revisions of this file share the cache: they would build theirs again and again).
    local old
    for old in "$LAB_CACHE"/base-*; do
        [ "$old" = "$final" ] && continue
        [ -n "$(find "$old" -maxdepth 0 -mmin +1440)" ] || continue
        grep -qsx "BASE=$old" "$LAB_STATE"/*/lab.env || rm -rf "$old"
    done
    log "base ready: $final ($(du -sh "$final/rootfs" | cut -f1) rootfs, $(ls "$final/mirror" | grep -c '\.deb$') mirror packages)"
}

# Make sure the base exists (build it under a lock: parallel tests share it).
ensure_base() {
    local d
    if [ -n "${MESHUP_LAB_BASE:-}" ]; then
        [ -d "$MESHUP_LAB_BASE/rootfs" ] || die "MESHUP_LAB_BASE=$MESHUP_LAB_BASE has no rootfs"
        BASE=$MESHUP_LAB_BASE
        return
    fi
    d=$(base_dir)
    [ -d "$d/rootfs" ] && { BASE=$d; return; }
    mkdir -p "$LAB_CACHE"
    exec 8>"$LAB_CACHE/.lock"
    flock 8
    if ! [ -d "$d/rootfs" ]; then
        rm -rf "$LAB_CACHE"/base-*.tmp.*
        base_build "$d"
    fi
    flock -u 8
    exec 8>&-
    BASE=$d
}

# Builds the cache directory $1 once per machine with `$2 TMP` (TMP then renamed to $1), under
# the cache lock: parallel labs share the cache, a crashed build's leftovers go. Older
# directories of the same kind that no lab uses and that were not built in the last day go
# too (worktrees of other revisions share the cache: they would build theirs again and again).
cache_ensure() {
    local d=$1 build=$2 tmp old
    [ -d "$d" ] && return 0
    mkdir -p "$LAB_CACHE"
    exec 8>"$LAB_CACHE/.lock"
    flock 8
    if ! [ -d "$d" ]; then
        rm -rf "${d%-*}"-*.tmp.*
        tmp="$d.tmp.$$"
        mkdir -p "$tmp"
        "$build" "$tmp"
        mv "$tmp" "$d"
        for old in "${d%-*}"-*; do
            [ "$old" = "$d" ] && continue
            [ -n "$(find "$old" -maxdepth 0 -mmin +1440)" ] || continue
            grep -qs "=$old\$" "$LAB_STATE"/*/lab.env || rm -rf "$old"
        done
    fi
    flock -u 8
    exec 8>&-
}

# Installs Debian packages $3 with apt from the machine's Debian mirror into the root tree $1
# (an overlay of $4's options mounted on it first, when given), in a private mount namespace
# with /proc and /dev, no service started; then runs `$5` in it. apt's output goes to $2.
# What the install needed (resolver, source list, policy-rc.d) stays: the caller removes it
# where it landed (the root, or the overlay's upper directory).
# shellcheck disable=SC2016 # the script's $1... are its own, in the new mount namespace
apt_into_root() {
    unshare --mount --propagation private -- bash -ec '
        [ -z "$4" ] || mount -t overlay overlay -o "$4" "$1"
        cp /etc/resolv.conf "$1/etc/resolv.conf"
        echo "deb $2 bookworm main" > "$1/etc/apt/sources.list.d/lab-build.list"
        printf "#!/bin/sh\nexit 101\n" > "$1/usr/sbin/policy-rc.d"
        chmod 755 "$1/usr/sbin/policy-rc.d"
        mount -t proc proc "$1/proc"
        mount --bind /dev "$1/dev"
        o="-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/lab-build.list -o Dir::Etc::sourceparts=-"
        chroot "$1" sh -ec "
            export DEBIAN_FRONTEND=noninteractive
            apt-get -q $o update
            apt-get -q -y $o --no-install-recommends --allow-remove-essential install $3
            apt-get -q clean
            $5"
        umount "$1/dev" "$1/proc"
        [ -z "$4" ] || umount "$1"' _ "$1" "$(debian_mirror)" "$3" "${4:-}" "${5:-}" >"$2" 2>&1 \
        || { tail -n 30 "$2" >&2; die "installing $3 failed (log: $2)"; }
    # (apt's "Can not write log" only means no /dev/pts in the chroot.)
    if grep '^[WE]:' "$2" | grep -v 'Can not write log'; then die "apt reported errors (log: $2)"; fi
}
