#!/usr/bin/env bash
# Runs provision/lab-net.sh `apply` with the configurations the Vagrantfile
# generates, in network namespaces that stand in for the five VMs (veths with
# the Vagrantfile's MACs, a bridge namespace for each lab network), and checks
# the lab's promises: public nodes reach each other across the two /24s, the
# NAT node reaches them with the router's WAN address as source, and nothing
# gets in to the NAT node from the internet side.
#
# Needs root, iproute2, nftables, ping, ruby. Touches nothing outside the
# namespaces it creates (prefix mvl-), and deletes them on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
script=$here/provision/lab-net.sh
work=$(mktemp -d)
nodes=(node-a node-b node-d router node-c)
pass=0
fail=0

cleanup() {
    for ns in "${nodes[@]}" sw-internet sw-lan; do
        ip netns delete "mvl-$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

check() {
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "ok   $what"
        pass=$((pass + 1))
    else
        echo "FAIL $what"
        fail=$((fail + 1))
    fi
}

# The Vagrantfile's machines: name, then "network mac" pairs, on stdout; and
# each machine's lab-net configuration in $work/<name>.conf.
ruby -e '
  module Vagrant
    def self.require_version(*) end
    def self.configure(*) end
  end
  load ARGV[0]
  MACHINES.each do |name, spec|
    File.write(File.join(ARGV[1], "#{name}.conf"), lab_net_lines(spec).join("\n") + "\n")
    puts ([name] + spec[:nics].map { |net, mac, _| "#{net}=#{mac}" }).join(" ")
  end
' "$here/Vagrantfile" "$work" >"$work/nics"

for sw in internet lan; do
    ip netns add "mvl-sw-$sw"
    ip -n "mvl-sw-$sw" link add br0 type bridge
    ip -n "mvl-sw-$sw" link set br0 up
done

i=0
while read -r name rest; do
    ip netns add "mvl-$name"
    ip -n "mvl-$name" link set lo up
    for pair in $rest; do
        net=${pair%%=*}
        mac=$(sed 's/\(..\)/\1:/g; s/:$//' <<<"${pair#*=}")
        i=$((i + 1))
        ip link add "mvl$i" netns "mvl-$name" address "$mac" type veth \
            peer name "p$i" netns "mvl-sw-$net"
        ip -n "mvl-sw-$net" link set "p$i" master br0 up
    done
done <"$work/nics"

for name in "${nodes[@]}"; do
    check "lab-net apply on $name" ip netns exec "mvl-$name" sh "$script" apply "$work/$name.conf"
done
for name in "${nodes[@]}"; do
    check "lab-net apply again on $name (idempotent)" ip netns exec "mvl-$name" sh "$script" apply "$work/$name.conf"
done

in_ns() { ip netns exec "mvl-$1" "${@:2}"; }

check "node-a has 203.0.113.10/24" bash -c "ip -n mvl-node-a -4 -o addr | grep -q ' 203.0.113.10/24 '"
check "node-a reaches node-b across the /24s" in_ns node-a ping -c1 -W2 198.51.100.20
check "node-b reaches node-d" in_ns node-b ping -c1 -W2 203.0.113.40
check "node-c reaches the router" in_ns node-c ping -c1 -W2 192.168.50.254

# Count, on node-a, the echo requests by source address.
in_ns node-a nft -f - <<'NFT'
table ip probe {
    chain input {
        type filter hook input priority 0;
        ip saddr 203.0.113.254 icmp type echo-request counter
        ip saddr 192.168.50.30 icmp type echo-request counter
    }
}
NFT
check "node-c reaches node-a through the router" in_ns node-c ping -c2 -W2 203.0.113.10
check "node-c reaches node-b through the router" in_ns node-c ping -c1 -W2 198.51.100.20
counters=$(in_ns node-a nft list table ip probe)
check "node-a saw node-c as 203.0.113.254 (masqueraded)" grep -q 'saddr 203.0.113.254 .*packets 2 ' <<<"$counters"
check "node-a never saw node-c's LAN address" grep -q 'saddr 192.168.50.30 .*packets 0 ' <<<"$counters"

# An internet host that even knows a route to the LAN gets nothing through.
in_ns node-a ip route add 192.168.50.0/24 via 203.0.113.254
check "node-a cannot open anything towards node-c (router forwards nothing inbound)" \
    bash -c '! ip netns exec mvl-node-a ping -c1 -W2 192.168.50.30'

check "lab-net rejects an unknown line kind" bash -c "
    printf 'bogus 1 2\n' >'$work/bad.conf'
    ! ip netns exec mvl-node-a sh '$script' apply '$work/bad.conf'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
