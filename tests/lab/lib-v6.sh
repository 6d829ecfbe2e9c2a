# meshup lab: an IPv6 underlay for public hosts (--dual, --v6-only). Sourced by
# tests/lab/lab; see tests/lab/README.md "IPv6 underlay".
# shellcheck shell=bash disable=SC2153
#
# The internet router routes 2001:db8::/32 (documentation prefix) inside the lab's
# namespaces only: the public hosts named get 2001:db8:100::N/128 (N: the host's position in
# the scenario), the workstation $WS6_IP and the mirror $MIRROR6_IP (the package mirror is
# served there too). Every point-to-point link carries fe80::1 on the router's side, the
# next hop of the hosts' default route. A --v6-only host loses its IPv4 address and route:
# SSH, apt and WireGuard reach it over IPv6 only.

WS6_IP=2001:db8:ff::10
MIRROR6_IP=2001:db8:ff::80
GW6_IP=fe80::1

declare -A V6_MODE=() # host -> dual | only

# --v6-only A,B and --dual C: public hosts only.
apply_v6() {
    local mode h
    for mode in only dual; do
        local spec=$1
        [ "$mode" = dual ] && spec=$2
        for h in ${spec//,/ }; do
            [ "$(host_role "$h")" = public ] || die "--v6-only/--dual: '$h' is not a public host of this scenario"
            [ -z "${V6_MODE[$h]:-}" ] || die "--v6-only/--dual: '$h' named twice"
            V6_MODE[$h]=$mode
        done
    done
}

# The IPv6 address of host $1 (empty when it has none).
pub6_ip() {
    [ -n "${V6_MODE[$1]:-}" ] || return 0
    local i=0 line name
    for line in "${HOSTS[@]}"; do
        i=$((i + 1))
        read -r name _ <<<"$line"
        [ "$name" = "$1" ] && { echo "2001:db8:100::$i"; return; }
    done
}

# After net_setup: IPv6 on the router's links to the workstation, the mirror and the hosts
# named; --v6-only hosts lose their IPv4 address and route.
v6_net_setup() {
    [ ${#V6_MODE[@]} -gt 0 ] || return 0
    local inet i=0 line name pub h a
    inet=$(ns inet)
    ip netns exec "$inet" sysctl -qw net.ipv6.conf.all.forwarding=1
    for n in ws mirror; do
        a=$WS6_IP
        [ $n = mirror ] && a=$MIRROR6_IP
        ip -n "$inet" -batch - <<EOF
addr add $GW6_IP/64 dev $n nodad
route add $a/128 dev $n
EOF
        ip -n "$(ns $n)" -batch - <<EOF
addr add $a/128 dev eth0 nodad
route add default via $GW6_IP dev eth0
EOF
    done
    for line in "${HOSTS[@]}"; do
        i=$((i + 1))
        read -r name _ pub _ <<<"$line"
        [ -n "${V6_MODE[$name]:-}" ] || continue
        h=$(ns "h.$name")
        ip -n "$inet" -batch - <<EOF
addr add $GW6_IP/64 dev p$i nodad
route add $(pub6_ip "$name")/128 dev p$i
EOF
        ip -n "$h" -batch - <<EOF
addr add $(pub6_ip "$name")/128 dev eth0 nodad
route add default via $GW6_IP dev eth0
EOF
        if [ "${V6_MODE[$name]}" = only ]; then
            ip -n "$h" route del default via "$GW_IP" dev eth0
            ip -n "$h" addr del "$pub/32" dev eth0
        fi
    done
}

# The package mirror on its IPv6 address too (busybox httpd binds one address per process).
v6_start_mirror() {
    [ ${#V6_MODE[@]} -gt 0 ] || return 0
    setsid ip netns exec "$(ns mirror)" busybox httpd -f -p "[$MIRROR6_IP]:80" -h "$BASE/mirror" \
        </dev/null >>"$STATE/mirror.log" 2>&1 &
    echo $! >"$STATE/mirror6.pid"
}

# A --v6-only host's apt reads the mirror at its IPv6 address (upper layer $2).
v6_prepare_host() {
    [ "${V6_MODE[$1]:-}" = only ] || return 0
    mkdir -p "$2/etc/apt"
    sed "s|http://$MIRROR_IP/|http://[$MIRROR6_IP]/|" "$LAB_DIR/rootfs/etc/apt/sources.list" >"$2/etc/apt/sources.list"
}
