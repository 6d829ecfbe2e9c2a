#!/bin/sh
# Lab networks of the meshup Vagrant lab: the part of a VM that a cloud
# provider would hand you (addresses, routes, and on the router, NAT).
#
#   lab-net.sh install LINE...   write LINEs to /etc/meshup-lab/net.conf, install
#                                this script as a boot-time systemd unit, apply
#   lab-net.sh apply [CONF]      apply a configuration (idempotent; run at boot)
#
# Configuration lines (MAC as 12 hex digits, with or without colons):
#   addr MAC CIDR            put CIDR on the NIC with that MAC and bring it up
#   route DEST dev MAC       on-link route to DEST through that NIC
#   route DEST via GATEWAY   route to DEST through GATEWAY
#   nat LAN_CIDR MAC         router: forward LAN_CIDR (arriving on MAC) to any other
#                            NIC with masquerade; forward nothing new inbound
#
# The lab NICs are marked unmanaged for NetworkManager and systemd-networkd,
# so neither fights over them; the management NIC is left as the box set it.
set -eu

CONF_DIR=/etc/meshup-lab
CONF=$CONF_DIR/net.conf
BIN=/usr/local/sbin/meshup-lab-net
UNIT=/etc/systemd/system/meshup-lab-net.service

die() {
    echo "lab-net: $*" >&2
    exit 1
}

# 024d5500010a or 02:4d:55:00:01:0a -> 02:4d:55:00:01:0a
normalize_mac() {
    hex=$(printf '%s' "$1" | tr -d ':' | tr 'A-F' 'a-f')
    case $hex in
        [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
        *) die "not a MAC address: $1" ;;
    esac
    printf '%s\n' "$hex" | sed 's/\(..\)/\1:/g; s/:$//'
}

# Name of the NIC with that MAC, waiting up to 30 s for it to appear.
iface_of() {
    mac=$(normalize_mac "$1")
    tries=0
    while :; do
        for dev in /sys/class/net/*; do
            [ -r "$dev/address" ] || continue
            if [ "$(cat "$dev/address")" = "$mac" ]; then
                basename "$dev"
                return 0
            fi
        done
        tries=$((tries + 1))
        [ "$tries" -le 30 ] || die "no network interface with MAC $mac"
        sleep 1
    done
}

apply_nat() {
    lan_cidr=$1
    lan_if=$2
    command -v nft >/dev/null 2>&1 || die "nft not found (the router needs nftables)"
    sysctl -q -w net.ipv4.ip_forward=1
    # One table of our own, replaced as a whole: nothing else in the ruleset
    # is touched, and re-running gives the same ruleset.
    nft -f - <<EOF
table ip meshup_lab_router
delete table ip meshup_lab_router
table ip meshup_lab_router {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "$lan_if" ip saddr $lan_cidr accept
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr $lan_cidr oifname != "$lan_if" masquerade
    }
}
EOF
}

apply_conf() {
    conf=$1
    [ -r "$conf" ] || die "cannot read $conf"
    # Addresses first, so gateways are on-link when routes are added.
    for pass in addr route nat; do
        while read -r kind a b c; do
            [ "$kind" = "$pass" ] || continue
            case $kind in
                addr)
                    dev=$(iface_of "$a")
                    ip link set dev "$dev" up
                    ip -4 address replace "$b" dev "$dev"
                    ;;
                route)
                    case $b in
                        dev) ip -4 route replace "$a" dev "$(iface_of "$c")" scope link ;;
                        via) ip -4 route replace "$a" via "$c" ;;
                        *) die "bad route line: route $a $b $c" ;;
                    esac
                    ;;
                nat) apply_nat "$a" "$(iface_of "$b")" ;;
            esac
        done <"$conf"
    done
    # Reject unknown line kinds instead of silently skipping them.
    while read -r kind _; do
        case $kind in
            addr | route | nat | '' | '#'*) ;;
            *) die "unknown line kind in $conf: $kind" ;;
        esac
    done <"$conf"
}

# Keep NetworkManager and systemd-networkd off the lab NICs.
mark_unmanaged() {
    macs=""
    while read -r kind a _; do
        [ "$kind" = addr ] || continue
        macs="$macs $(normalize_mac "$a")"
    done <"$CONF"
    if [ -d /etc/NetworkManager/conf.d ] || command -v NetworkManager >/dev/null 2>&1; then
        mkdir -p /etc/NetworkManager/conf.d
        list=""
        for mac in $macs; do list="${list:+$list;}mac:$mac"; done
        printf '[keyfile]\nunmanaged-devices=%s\n' "$list" \
            >/etc/NetworkManager/conf.d/90-meshup-lab.conf
        if systemctl is-active --quiet NetworkManager; then
            nmcli general reload conf >/dev/null 2>&1 || systemctl reload NetworkManager || true
            for mac in $macs; do
                dev=$(iface_of "$mac")
                nmcli device set "$dev" managed no >/dev/null 2>&1 || true
            done
        fi
    fi
    if [ -d /etc/systemd/network ] || systemctl is-enabled --quiet systemd-networkd 2>/dev/null; then
        mkdir -p /etc/systemd/network
        for mac in $macs; do
            # 05- sorts before netplan's 10-* and distro catch-alls: first match wins.
            printf '[Match]\nMACAddress=%s\n\n[Link]\nUnmanaged=yes\n' "$mac" \
                >"/etc/systemd/network/05-meshup-lab-$(printf '%s' "$mac" | tr -d ':').network"
        done
        if systemctl is-active --quiet systemd-networkd; then
            networkctl reload >/dev/null 2>&1 || systemctl restart systemd-networkd
        fi
    fi
}

install_unit() {
    install -m 0755 "$0" "$BIN"
    cat >"$UNIT" <<EOF
[Unit]
Description=meshup lab networks (addresses and routes a cloud provider would give)
Wants=network-pre.target
After=network-pre.target systemd-udev-trigger.service NetworkManager.service systemd-networkd.service
Before=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$BIN apply $CONF

[Install]
WantedBy=multi-user.target
EOF
    systemctl daemon-reload
    systemctl enable meshup-lab-net.service >/dev/null 2>&1
}

case ${1:-} in
    install)
        shift
        [ "$(id -u)" = 0 ] || die "must run as root"
        mkdir -p "$CONF_DIR"
        : >"$CONF.new"
        for line in "$@"; do printf '%s\n' "$line" >>"$CONF.new"; done
        mv "$CONF.new" "$CONF"
        if grep -q '^nat ' "$CONF" && ! command -v nft >/dev/null 2>&1; then
            # Only the router gets a package: it is lab plumbing, not a mesh node.
            if command -v apt-get >/dev/null 2>&1; then
                export DEBIAN_FRONTEND=noninteractive
                apt-get update -q >/dev/null
                apt-get install -y -q nftables >/dev/null
            else
                die "the router needs nftables and this is not an apt system"
            fi
        fi
        mark_unmanaged
        install_unit
        systemctl restart meshup-lab-net.service
        echo "lab-net: applied $(grep -c . "$CONF") lines from $CONF"
        ip -4 -brief address show | sed 's/^/lab-net:   /'
        ;;
    apply)
        apply_conf "${2:-$CONF}"
        ;;
    *)
        die "usage: $0 install LINE... | apply [CONF]"
        ;;
esac
