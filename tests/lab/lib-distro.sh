# shellcheck shell=bash disable=SC2015,SC2086,SC2016,SC2034,SC2012
# meshup lab: host kinds of other distro families (Fedora, Rocky 8, openSUSE, Arch).
# Sourced by tests/lab/lab. What is emulated: the userland (the Debian base's binaries) under
# that distro's real os-release. What is real: the package manager (Debian's builds of dnf,
# zypper, rpm and pacman), its configuration, its repository metadata (createrepo_c,
# repo-add) served by the lab mirror, and the transaction that installs the packages.
#
# Built once per machine under $LAB_CACHE/distro-<hash>/ (keyed by the base and by this file):
#   managers/      overlay layer over the base: dnf, zypper, rpm, pacman installed with apt
#   kinds/<kind>/  overlay layer over managers/: os-release, repo config, rpm/pacman database,
#                  the other front-ends hidden (whiteouts), so each host has its own manager only
#   repos/         served on $MIRROR_IP:$REPO_PORT: rpm-md repositories (createrepo_c) and a
#                  pacman repository (repo-add) with wireguard-tools and wireguard-go built from
#                  the lab mirror's Debian binaries, plus epel-release, elrepo-release and
#                  kmod-wireguard (an empty stand-in for ELRepo's module) for EL8.
# A host of kind K boots on lowerdir=kinds/K:managers:base.

DISTRO_KINDS="fedora rocky8 opensuse arch"
# Debian packages of the real package managers (one layer shared by every kind).
DISTRO_MANAGERS="dnf zypper rpm pacman-package-manager"
DISTRO_VERSION=1
REPO_PORT=8080
REPO_URL="http://$MIRROR_IP:$REPO_PORT"
OS_RELEASE_DIR="$LAB_DIR/../fixtures/os-release"

valid_kind() { [[ " debian $DISTRO_KINDS " == *" $1 "* ]] || die "unknown distro '$1' (debian $DISTRO_KINDS)"; }

distro_os_release() {
    case $1 in
        fedora) echo fedora-41.txt ;;
        rocky8) echo rocky-8.txt ;;
        opensuse) echo opensuse-leap-15.6.txt ;;
        arch) echo arch.txt ;;
    esac
}

distro_hash() {
    {
        base_hash
        echo "$DISTRO_VERSION $DISTRO_KINDS $DISTRO_MANAGERS $REPO_URL"
        declare -f distro_build distro_managers distro_kind distro_units distro_repos rpm_pkg arch_pkg stage_deb distro_os_release
        local k
        for k in $DISTRO_KINDS; do sha256sum "$OS_RELEASE_DIR/$(distro_os_release "$k")"; done
    } | sha256sum | cut -c1-16
}

# Machine tools that build the repositories (also in tests/packages.txt).
ensure_distro_packages() {
    local need=() p
    local -A bin=([rpmbuild]=rpm [createrepo_c]=createrepo-c [repo-add]=pacman-package-manager
        [bsdtar]=libarchive-tools [zstd]=zstd)
    for p in "${!bin[@]}"; do
        command -v "$p" >/dev/null 2>&1 || need+=("${bin[$p]}")
    done
    # repo-add sources makepkg's helpers.
    [ -f /usr/share/makepkg/util/compress.sh ] || need+=(makepkg)
    [ ${#need[@]} -eq 0 ] && return
    log "installing machine packages: ${need[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}" >/dev/null \
        || die "apt-get install ${need[*]} failed"
}

# Make sure the distro layers exist (under the cache lock); sets DISTRO.
ensure_distro() {
    local d
    d=$LAB_CACHE/distro-$(distro_hash)
    if ! [ -d "$d/repos" ]; then
        ensure_distro_packages
        exec 8>"$LAB_CACHE/.lock"
        flock 8
        if ! [ -d "$d/repos" ]; then
            rm -rf "$LAB_CACHE"/distro-*.tmp.*
            distro_build "$d"
        fi
        flock -u 8
        exec 8>&-
    fi
    DISTRO=$d
}

distro_build() {
    local final=$1 tmp k t0
    tmp="$final.tmp.$$"
    t0=$(now)
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "building the distro host kinds ($DISTRO_KINDS; once per machine, ~1 min)"
    distro_managers "$tmp"
    distro_repos "$tmp"
    for k in $DISTRO_KINDS; do distro_kind "$tmp" "$k"; done
    rm -rf "$tmp/work" "$tmp/release"
    mv "$tmp" "$final"
    local old
    for old in "$LAB_CACHE"/distro-*; do
        [ "$old" = "$final" ] && continue
        # Built less than a day ago: another worktree's (a revision of this file) may use it.
        [ -n "$(find "$old" -maxdepth 0 -mmin +1440)" ] || continue
        grep -qsx "DISTRO=$old" "$LAB_STATE"/*/lab.env || rm -rf "$old"
    done
    log "distro kinds ready in $(since "$t0")s: $final ($(du -sh "$final/managers" | cut -f1) managers layer)"
}

# The package managers, installed with apt from the machine's Debian mirror into an overlay
# upper layer over the base (in a private mount namespace; no service started).
distro_managers() {
    local tmp=$1 m r
    m=$(debian_mirror)
    r=$tmp/merged
    mkdir -p "$tmp/managers" "$tmp/work" "$r"
    unshare --mount --propagation private -- bash -ec '
        mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/managers,workdir=$2/work" "$3"
        cp /etc/resolv.conf "$3/etc/resolv.conf"
        echo "deb $4 bookworm main" > "$3/etc/apt/sources.list.d/lab-build.list"
        printf "#!/bin/sh\nexit 101\n" > "$3/usr/sbin/policy-rc.d"
        chmod 755 "$3/usr/sbin/policy-rc.d"
        mount -t proc proc "$3/proc"
        # Only the Debian mirror: the lab mirror in sources.list is not reachable from here.
        o="-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/lab-build.list -o Dir::Etc::sourceparts=-"
        chroot "$3" sh -ec "
            export DEBIAN_FRONTEND=noninteractive
            apt-get -q $o update
            apt-get -q -y $o --no-install-recommends install $5
            apt-get -q clean"
        umount "$3/proc"
        umount "$3"' _ "$BASE/rootfs" "$tmp" "$r" "$m" "$DISTRO_MANAGERS" >"$tmp/managers.log" 2>&1 \
        || { tail -n 30 "$tmp/managers.log" >&2; die "installing the package managers failed (log: $tmp/managers.log)"; }
    # (apt's "Can not write log" only means no /dev/pts in the chroot.)
    if grep '^[WE]:' "$tmp/managers.log" | grep -v 'Can not write log'; then die "apt reported errors (log: $tmp/managers.log)"; fi
    # Back to what the base has (the upper copies go; nothing of the build stays).
    local u=$tmp/managers
    rm -f "$u/etc/resolv.conf" "$u/etc/apt/sources.list.d/lab-build.list" "$u/usr/sbin/policy-rc.d"
    rm -rf "$u/var/lib/apt/lists" "$u/var/cache/apt" "$u/var/log/apt" "$u/var/log/dpkg.log" "$u/var/cache/debconf"/*-old
    rmdir "$r"
}

# One kind's layer: written straight into its upper directory (whiteouts are 0/0 character
# devices, as overlayfs makes them).
distro_kind() {
    local tmp=$1 kind=$2 u f hide dbpath
    u=$tmp/kinds/$kind
    mkdir -p "$u/usr/lib" "$u/usr/bin" "$u/etc"
    cp "$OS_RELEASE_DIR/$(distro_os_release "$kind")" "$u/usr/lib/os-release"
    # Debian's /etc/os-release is a symlink to ../usr/lib/os-release; Debian-only marker gone.
    mknod "$u/etc/debian_version" c 0 0
    case $kind in
        arch) hide="apt apt-get dnf zypper rpm" ;;
        opensuse) hide="apt apt-get dnf pacman" ;;
        *) hide="apt apt-get zypper pacman" ;;
    esac
    for f in $hide; do mknod "$u/usr/bin/$f" c 0 0; done
    case $kind in
        fedora | rocky8 | opensuse)
            # Debian's rpm keeps its database in ~/.rpmdb; these distros keep it system-wide.
            dbpath=/usr/lib/sysimage/rpm
            [ "$kind" = rocky8 ] && dbpath=/var/lib/rpm
            mkdir -p "$u/etc/rpm" "$u$dbpath"
            printf '%%_dbpath %s\n' "$dbpath" >"$u/etc/rpm/macros.dbpath"
            if [ "$dbpath" != /var/lib/rpm ]; then
                mkdir -p "$u/var/lib"
                ln -s ../../usr/lib/sysimage/rpm "$u/var/lib/rpm"
            fi
            rpm --dbpath "$u$dbpath" --initdb
            for f in "$tmp/release/${kind%8}"-release-*.rpm; do
                [ -e "$f" ] && rpm --dbpath "$u$dbpath" -i --justdb --nodeps "$f" 2>/dev/null
            done
            ;;
    esac
    case $kind in
        fedora | rocky8)
            mkdir -p "$u/etc/dnf" "$u/etc/yum.repos.d" "$u/etc/dnf/vars"
            cat >"$u/etc/dnf/dnf.conf" <<EOF
[main]
gpgcheck=0
installonly_limit=3
clean_requirements_on_remove=True
skip_if_unavailable=False
reposdir=/etc/yum.repos.d
EOF
            local repo=fedora name=Fedora
            [ "$kind" = rocky8 ] && repo=rocky8 name="Rocky Linux 8 - Extras"
            cat >"$u/etc/yum.repos.d/lab.repo" <<EOF
# meshup lab: the only repository of this host (served by the lab mirror).
[lab-$repo]
name=meshup lab: $name
baseurl=$REPO_URL/rpm/$repo/
enabled=1
gpgcheck=0
EOF
            # No background metadata refresh in the systemd flavour.
            mkdir -p "$u/etc/systemd/system"
            ln -s /dev/null "$u/etc/systemd/system/dnf-makecache.timer"
            ;;
        opensuse)
            mkdir -p "$u/etc/zypp/repos.d"
            cat >"$u/etc/zypp/repos.d/lab-oss.repo" <<EOF
[lab-oss]
name=meshup lab: openSUSE Leap 15.6 OSS
enabled=1
autorefresh=1
baseurl=$REPO_URL/rpm/opensuse/
type=rpm-md
gpgcheck=0
EOF
            ;;
        arch)
            mkdir -p "$u/var/lib/pacman/sync" "$u/var/lib/pacman/local" "$u/var/cache/pacman/pkg"
            echo 9 >"$u/var/lib/pacman/local/ALPM_DB_VERSION"
            cat >"$u/etc/pacman.conf" <<EOF
# meshup lab: the only repository of this host (served by the lab mirror).
[options]
RootDir = /
DBPath = /var/lib/pacman/
CacheDir = /var/cache/pacman/pkg/
LogFile = /var/log/pacman.log
HoldPkg = pacman glibc
Architecture = x86_64
SigLevel = Never
LocalFileSigLevel = Never

[lab]
Server = $REPO_URL/arch/\$repo/os/\$arch
EOF
            # A host that ran `pacman -Sy` once: the recipe installs without -y.
            cp "$tmp/repos/arch/lab/os/x86_64/lab.db.tar.gz" "$u/var/lib/pacman/sync/lab.db"
            ;;
    esac
    distro_units "$u" "$kind"
}

# The firewall loaders of each distro (systemd flavour): its units, with the files they
# load at boot, over the Debian base's (same merged-/usr path), disabled as after installing
# the package. Unit texts as the distros ship them (Fedora/EL nftables and iptables-services,
# Arch nftables and iptables, openSUSE nftables), run by the Debian userland's binaries;
# EL's iptables.init (a long init script) is a short stand-in doing what its start, stop
# and save do with the rules file.
distro_units() {
    local u=$1 kind=$2 d f fam nft=/usr/bin/nft
    d=$u/usr/lib/systemd/system
    mkdir -p "$d"
    case $kind in
        fedora | rocky8) nft=/sbin/nft ;;
        opensuse) nft=/usr/sbin/nft ;;
        # Arch keeps every binary in /usr/bin (its /usr/sbin is a link to it).
        arch) for f in nft iptables-restore ip6tables-restore; do ln -s "../sbin/$f" "$u/usr/bin/$f"; done ;;
    esac
    {
        printf '%s\n' '[Unit]' 'Description=Netfilter Tables' 'Documentation=man:nft(8)' \
            'Wants=network-pre.target' 'Before=network-pre.target' '' '[Service]' 'Type=oneshot'
        case $kind in
            fedora | rocky8)
                printf '%s\n' 'ProtectSystem=full' 'ProtectHome=true' \
                    "ExecStart=$nft -f /etc/sysconfig/nftables.conf" \
                    "ExecReload=$nft 'flush ruleset; include \"/etc/sysconfig/nftables.conf\";'"
                ;;
            *) printf '%s\n' "ExecStart=$nft -f /etc/nftables.conf" "ExecReload=$nft -f /etc/nftables.conf" ;;
        esac
        printf '%s\n' "ExecStop=$nft flush ruleset" 'RemainAfterExit=yes' '' '[Install]' 'WantedBy=multi-user.target'
    } >"$d/nftables.service"
    case $kind in
        fedora | rocky8)
            mkdir -p "$u/etc/sysconfig" "$u/etc/nftables" "$u/usr/libexec/iptables"
            printf '%s\n' '# Uncomment the include statement here to load the default config sample' \
                '# in /etc/nftables for nftables service.' '' '#include "/etc/nftables/main.nft"' '' \
                '# To customize, either edit the samples in /etc/nftables, append further' \
                '# commands to the end of this file or overwrite it after first service' \
                "# start by calling: 'nft list ruleset >/etc/sysconfig/nftables.conf'." \
                >"$u/etc/sysconfig/nftables.conf"
            for fam in iptables ip6tables; do
                printf '%s\n' '[Unit]' "Description=$([ $fam = iptables ] && echo IPv4 || echo IPv6) firewall with $fam" \
                    "AssertPathExists=/etc/sysconfig/$fam" 'Before=network-pre.target' 'Wants=network-pre.target' '' \
                    '[Service]' 'Type=oneshot' 'RemainAfterExit=yes' \
                    "ExecStart=/usr/libexec/iptables/$fam.init start" \
                    "ExecReload=/usr/libexec/iptables/$fam.init reload" \
                    "ExecStop=/usr/libexec/iptables/$fam.init stop" \
                    'Environment=BOOTUP=serial' 'Environment=CONSOLETYPE=serial' '' \
                    '[Install]' 'WantedBy=multi-user.target' >"$d/$fam.service"
                sed "s/@FAM@/$fam/g" >"$u/usr/libexec/iptables/$fam.init" <<'EOF'
#!/bin/sh
# meshup lab stand-in for iptables-services' @FAM@.init: start and reload restore
# /etc/sysconfig/@FAM@, stop flushes every table with the policies ACCEPT, save saves.
case "$1" in
start | reload | restart) exec @FAM@-restore /etc/sysconfig/@FAM@ ;;
stop)
	for t in $(@FAM@-save | sed -n 's/^\*//p'); do
		@FAM@ -t "$t" -F && @FAM@ -t "$t" -X || exit 1
		for c in $(@FAM@ -t "$t" -S | awk '$1 == "-P" { print $2 }'); do @FAM@ -t "$t" -P "$c" ACCEPT || exit 1; done
	done
	;;
save) @FAM@-save >/etc/sysconfig/@FAM@ ;;
*) echo "usage: $0 start|stop|reload|restart|save" >&2; exit 2 ;;
esac
EOF
                chmod 755 "$u/usr/libexec/iptables/$fam.init"
                printf '%s\n' '*filter' ':INPUT ACCEPT [0:0]' ':FORWARD ACCEPT [0:0]' ':OUTPUT ACCEPT [0:0]' 'COMMIT' \
                    >"$u/etc/sysconfig/$fam"
            done
            ;;
        arch)
            mkdir -p "$u/etc/iptables"
            for fam in iptables ip6tables; do
                printf '%s\n' '[Unit]' "Description=$([ $fam = iptables ] && echo IPv4 || echo IPv6) Packet Filtering Framework" \
                    'Before=network-pre.target' 'Wants=network-pre.target' '' '[Service]' 'Type=oneshot' \
                    "ExecStart=/usr/bin/$fam-restore /etc/iptables/$fam.rules" \
                    "ExecReload=/usr/bin/$fam-restore /etc/iptables/$fam.rules" \
                    'RemainAfterExit=yes' '' '[Install]' 'WantedBy=multi-user.target' >"$d/$fam.service"
                printf '%s\n' '*filter' ':INPUT ACCEPT [0:0]' ':FORWARD ACCEPT [0:0]' ':OUTPUT ACCEPT [0:0]' 'COMMIT' \
                    >"$u/etc/iptables/$fam.rules"
            done
            ;;
    esac
}

# Files of a Debian package worth shipping (binaries, units, man pages, completions) in a
# staging tree, with /lib moved under /usr/lib (Fedora, SUSE and Arch are merged-/usr).
stage_deb() {
    local deb=$1 stage=$2 x d
    x=$(mktemp -d)
    dpkg-deb -x "$deb" "$x"
    mkdir -p "$stage"
    [ -d "$x/usr/bin" ] && mkdir -p "$stage/usr" && cp -a "$x/usr/bin" "$stage/usr/"
    [ -d "$x/lib/systemd" ] && mkdir -p "$stage/usr/lib" && cp -a "$x/lib/systemd" "$stage/usr/lib/"
    for d in man bash-completion; do
        [ -d "$x/usr/share/$d" ] && mkdir -p "$stage/usr/share" && cp -a "$x/usr/share/$d" "$stage/usr/share/"
    done
    rm -rf "$x"
}

# rpm_pkg OUTDIR NAME VERSION RELEASE ARCH STAGE REQUIRES SUMMARY [PROVIDES]: an rpm of
# STAGE's files (PROVIDES: ;-separated).
rpm_pkg() {
    local out=$1 name=$2 ver=$3 rel=$4 arch=$5 stage=$6 req=$7 summary=$8 provides=${9:-} top spec r
    top=$(mktemp -d)
    spec=$top/$name.spec
    {
        echo "Name: $name"
        echo "Version: $ver"
        echo "Release: $rel"
        echo "Summary: $summary"
        echo "License: GPL-2.0-only"
        echo "URL: https://www.wireguard.com/"
        [ "$arch" = noarch ] && echo "BuildArch: noarch"
        # The userland is the lab's Debian one: no automatic library dependencies.
        echo "AutoReqProv: no"
        for r in $req; do echo "Requires: $r"; done
        if [ -n "$provides" ]; then tr ';' '\n' <<<"$provides" | sed 's/^/Provides: /'; fi
        echo "%define debug_package %{nil}"
        echo "%define __os_install_post %{nil}"
        echo "%define _build_id_links none"
        echo "%description"
        echo "$summary (meshup lab package)."
        echo "%install"
        echo "mkdir -p %{buildroot}"
        [ -n "$stage" ] && echo "cp -a $stage/. %{buildroot}/"
        echo "%files"
        [ -n "$stage" ] && (cd "$stage" && find . -type f -o -type l | sed 's/^\.//' | sort)
    } >"$spec"
    rpmbuild -bb --nodeps --quiet --define "_topdir $top" --target "$arch" "$spec" >"$top/build.log" 2>&1 \
        || { cat "$top/build.log" >&2; die "rpmbuild $name failed"; }
    find "$top/RPMS" -name '*.rpm' -exec cp {} "$out/" \;
    rm -rf "$top"
}

# arch_pkg OUTDIR NAME PKGVER PKGREL STAGE DEPENDS DESC: a pacman package (.PKGINFO + files).
arch_pkg() {
    local out=$1 name=$2 ver=$3 rel=$4 stage=$5 deps=$6 desc=$7 d size dep
    d=$(mktemp -d)
    cp -a "$stage/." "$d/"
    size=$(du -sb "$d" | cut -f1)
    {
        echo "pkgname = $name"
        echo "pkgbase = $name"
        echo "pkgver = $ver-$rel"
        echo "pkgdesc = $desc (meshup lab package)"
        echo "url = https://www.wireguard.com/"
        echo "builddate = 1700000000"
        echo "packager = meshup lab <lab@localhost>"
        echo "size = $size"
        echo "arch = x86_64"
        echo "license = GPL2"
        for dep in $deps; do echo "depend = $dep"; done
    } >"$d/.PKGINFO"
    (cd "$d" && bsdtar --zstd -cf "$out/$name-$ver-$rel-x86_64.pkg.tar.zst" .PKGINFO usr)
    rm -rf "$d"
}

# The repositories: rpm-md for dnf and zypper, a pacman repo, from the lab mirror's .debs.
distro_repos() {
    local tmp=$1 r s tv gv tver trel gver grel deb
    r=$tmp/repos s=$tmp/stage
    mkdir -p "$s" "$r/rpm/pkgs" "$r/arch/lab/os/x86_64"
    deb=$(ls "$BASE"/mirror/wireguard-tools_*.deb | head -n1)
    stage_deb "$deb" "$s/tools"
    tv=$(dpkg-deb -f "$deb" Version)
    deb=$(ls "$BASE"/mirror/wireguard-go_*.deb | head -n1)
    stage_deb "$deb" "$s/go"
    gv=$(dpkg-deb -f "$deb" Version)
    # 1.0.20210914-1+b1 -> version 1.0.20210914, release 1.b1 (no epoch in these packages).
    tver=${tv%-*} trel=$(echo "${tv##*-}" | tr -c 'A-Za-z0-9.\n' '.')
    gver=${gv%-*} grel=$(echo "${gv##*-}" | tr -c 'A-Za-z0-9.\n' '.')
    local p=$r/rpm/pkgs
    # wg-quick falls back to wireguard-go (the lab kernel has no WireGuard module): the lab's
    # wireguard-tools requires it, as the Debian hosts' shim package does.
    rpm_pkg "$p" wireguard-tools "$tver" "$trel.lab" x86_64 "$s/tools" "wireguard-go" "Fast, modern, secure VPN tunnel (tools)"
    rpm_pkg "$p" wireguard-go "$gver" "$grel.lab" x86_64 "$s/go" "" "Userspace WireGuard implementation in Go"
    rpm_pkg "$p" kmod-wireguard 1.0.20220627 "4.el8_8.elrepo.lab" noarch "" "" "WireGuard kernel module (stand-in: the lab kernel has none)"
    local name url
    for name in epel elrepo; do
        mkdir -p "$s/$name/etc/yum.repos.d"
        url=$REPO_URL/rpm/${name}8/
        printf '[%s]\nname=meshup lab: %s 8\nbaseurl=%s\nenabled=1\ngpgcheck=0\n' "$name" "$name" "$url" \
            >"$s/$name/etc/yum.repos.d/$name.repo"
        rpm_pkg "$p" "$name-release" 8 "lab" noarch "$s/$name" "" "$name repository configuration"
    done
    # One repository per distro, each holding what that distro's repositories hold.
    local repo pkgs
    for repo in fedora opensuse rocky8 epel8 elrepo8 empty; do
        case $repo in
            fedora | opensuse | epel8) pkgs="wireguard-tools-[0-9]* wireguard-go-[0-9]*" ;;
            rocky8) pkgs="epel-release-* elrepo-release-*" ;;
            elrepo8) pkgs="kmod-wireguard-*" ;;
            empty) pkgs="" ;;
        esac
        mkdir -p "$r/rpm/$repo"
        for f in $pkgs; do ln "$p"/$f "$r/rpm/$repo/"; done
        createrepo_c -q "$r/rpm/$repo" >/dev/null || die "createrepo_c $repo failed"
    done
    rm -rf "$p"
    # The release packages the distro's image has installed (dnf finds $releasever in the
    # rpm database through them); recorded in the kinds' databases, not served.
    mkdir -p "$tmp/release"
    rpm_pkg "$tmp/release" fedora-release 41 1 noarch "" "" "Fedora release files" \
        "system-release;system-release(releasever) = 41"
    rpm_pkg "$tmp/release" rocky-release 8.10 1.el8 noarch "" "" "Rocky Linux release files" \
        "system-release;system-release(releasever) = 8"
    local a=$r/arch/lab/os/x86_64
    arch_pkg "$a" wireguard-tools "$tver" 1 "$s/tools" "wireguard-go" "next generation secure network tunnel - tools for configuration"
    arch_pkg "$a" wireguard-go "$gver" 1 "$s/go" "" "Next generation secure network tunnel - userspace implementation in go"
    (cd "$a" && repo-add -q lab.db.tar.gz ./*.pkg.tar.zst) >/dev/null 2>&1 || die "repo-add failed"
    rm -rf "$s"
}
