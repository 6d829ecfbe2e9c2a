# meshup lab: the lab's DNS (a real dnsmasq in the mirror namespace, authoritative for
# lab.test) and host renumbering. Sourced by tests/lab/lab; see tests/lab/README.md "DNS".
# shellcheck shell=bash disable=SC2015

DNS_ZONE=lab.test

# The lab's resolver: dnsmasq (Debian's dnsmasq-base: the binary only, no service on the
# machine) on $MIRROR_IP:53 inside the mirror namespace, answering from $STATE/dns/hosts
# (re-read on SIGHUP) and NXDOMAIN for any other name under $DNS_ZONE; it has no upstream,
# so names outside the zone are refused. Every public host gets HOST.$DNS_ZONE.
dns_hosts_file() { echo "$STATE/dns/hosts"; }

dns_start() {
    local f line name role pub
    mkdir -p "$STATE/dns"
    chmod 755 "$STATE/dns"
    f=$(dns_hosts_file)
    : >"$f"
    for line in "${HOSTS[@]}"; do
        read -r name role pub _ <<<"$line"
        [ "$role" = nat ] || printf '%s %s.%s\n' "$pub" "$name" "$DNS_ZONE" >>"$f"
    done
    chmod 644 "$f"
    setsid ip netns exec "$(ns mirror)" dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --no-resolv --no-hosts --no-poll --bind-interfaces --listen-address="$MIRROR_IP" \
        --port=53 --user=nobody --group=nogroup --local="/$DNS_ZONE/" --domain-needed \
        --addn-hosts="$f" --local-ttl=0 --log-facility=- --pid-file= \
        </dev/null >>"$STATE/dns/dnsmasq.log" 2>&1 &
    echo $! >"$STATE/dns/dnsmasq.pid"
    # The workstation namespace resolves through it too: `ip netns exec` binds
    # /etc/netns/<ns>/resolv.conf over /etc/resolv.conf for its commands only (the
    # machine's own /etc/resolv.conf is never touched).
    mkdir -p "/etc/netns/$(ns ws)"
    dns_resolv_conf >"/etc/netns/$(ns ws)/resolv.conf"
    for _ in $(seq 1 100); do
        [ -n "$(ip netns exec "$(ns mirror)" ss -Hlun "sport = :53")" ] && return 0
        kill -0 "$(cat "$STATE/dns/dnsmasq.pid")" 2>/dev/null || break
        sleep 0.1
    done
    die "the lab's dnsmasq did not start (see $STATE/dns/dnsmasq.log)"
}

# /etc/resolv.conf of every host and of the workstation (no search domain: a single-label
# name such as a node's must not resolve to its public address through the zone).
dns_resolv_conf() { printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$MIRROR_IP"; }

# The workstation's resolv.conf lives outside the state dir: removed with the lab.
dns_down() { rm -rf "/etc/netns/ml.$1.ws"; }

# dns_wait FQDN ADDR: until FQDN resolves in the workstation namespace to ADDR (ADDR `-`:
# until it no longer resolves), 10 s at most: dnsmasq re-reads its file asynchronously.
dns_wait() {
    local fqdn=$1 want=$2 got
    for _ in $(seq 1 100); do
        got=$(ip netns exec "$(ns ws)" getent ahosts "$fqdn" 2>/dev/null | awk '{print $1; exit}' || true)
        if [ "$want" = - ]; then
            [ -z "$got" ] && return 0
        elif [ "$got" = "$want" ]; then
            return 0
        fi
        sleep 0.1
    done
    die "DNS: $fqdn does not resolve to ${want:-anything} (see $STATE/dns/dnsmasq.log)"
}

dns_valid_fqdn() {
    [[ $1 =~ ^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$ ]] && [ ${#1} -le 253 ] ||
        die "'$1' is not a lowercase fully qualified name (e.g. node-b.$DNS_ZONE)"
}

dns_reload() {
    local pid
    pid=$(cat "$STATE/dns/dnsmasq.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -HUP "$pid" 2>/dev/null || die "the lab's dnsmasq is not running"
}

# dns NAME set FQDN ADDR | del FQDN | list
cmd_dns() {
    [ $# -ge 2 ] || die "usage: lab dns NAME set FQDN ADDR | del FQDN | list"
    load_lab "$1"
    local op=$2 f tmp
    shift 2
    f=$(dns_hosts_file)
    [ -f "$f" ] || die "lab '$LAB' serves no DNS (brought up before the lab had it)"
    case $op in
        list) cat "$f" ;;
        set | del)
            if [ "$op" = set ]; then
                [ $# -eq 2 ] || die "usage: lab dns NAME set FQDN ADDR"
                [[ $2 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || [[ $2 =~ ^[0-9a-fA-F:]+:[0-9a-fA-F:.]*$ ]] ||
                    die "'$2' is not an IP address"
            else
                [ $# -eq 1 ] || die "usage: lab dns NAME del FQDN"
            fi
            dns_valid_fqdn "$1"
            tmp=$f.new
            awk -v n="$1" '$2 != n' "$f" >"$tmp"
            [ "$op" = set ] && printf '%s %s\n' "$2" "$1" >>"$tmp"
            chmod 644 "$tmp"
            mv "$tmp" "$f"
            dns_reload
            if [ "$op" = set ]; then dns_wait "$1" "$2"; else dns_wait "$1" -; fi
            echo "$1: ${2:-deleted}"
            ;;
        *) die "usage: lab dns NAME set FQDN ADDR | del FQDN | list" ;;
    esac
}

# renumber NAME HOST NEWADDR: public HOST gets NEWADDR instead of its public address, as
# after an ISP renumbering or a re-created cloud VM: its link's address, the internet
# router's route and the host's source address all move; nothing reaches the old address
# any more except SSH, which the internet router forwards from OLD:22 to NEWADDR:22 (the
# lab's management path, so the inventory's ssh.host and known_hosts stay valid). DNS is
# not changed: `lab dns NAME set HOST.lab.test NEWADDR` does that.
cmd_renumber() {
    [ $# -eq 3 ] || die "usage: lab renumber NAME HOST NEWADDR"
    load_lab "$1"
    local h=$2 new=$3 hn old dev inet
    [[ " $HOST_NAMES " == *" $h "* ]] || die "lab '$LAB' has no host '$h' (hosts: $HOST_NAMES)"
    [[ $new =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "'$new' is not an IPv4 address"
    hn=$(ns "h.$h")
    inet=$(ns inet)
    old=$(ip -n "$hn" -4 -o addr show dev eth0 scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')
    [ -n "$old" ] || die "host '$h' has no address on eth0"
    dev=$(ip -n "$inet" -4 route show "$old/32" | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}')
    [ -n "$dev" ] || die "'$h' is not a public host of lab '$LAB' (no route to $old in the internet router)"
    [ -z "$(ip -n "$inet" -4 route show "$new/32")" ] || die "$new is already in use in lab '$LAB'"
    ip -n "$hn" -batch - <<EOF
addr add $new/32 dev eth0
addr del $old/32 dev eth0
route replace default via $GW_IP dev eth0 onlink
EOF
    ip -n "$inet" -batch - <<EOF
route add $new/32 dev $dev
route del $old/32 dev $dev
EOF
    nsx inet nft -f - <<EOF
table ip lab_renumber {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $old tcp dport 22 dnat to $new
    }
}
EOF
    # Flows of the old address (UDP included) are forgotten, as the old link is gone.
    nsx inet conntrack -D -d "$old" >/dev/null 2>&1 || true
    nsx inet conntrack -D -s "$old" >/dev/null 2>&1 || true
    echo "$h: renumbered to $new (was $old; SSH to $old:22 is forwarded to $new:22)"
}
