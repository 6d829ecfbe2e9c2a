# meshup's routing for one mesh interface: the exit route of a node that sends its
# internet traffic through an exit node, and what a transit node does to forwarded
# traffic (MSS clamping; masquerade on an exit node). meshup writes it to
# <config dir>/meshup-route-<interface>.sh after a header of values; the interface's
# PostUp runs `up` (at boot), its PreDown `down`; apply runs `up check` and `down`.
#
# Values (the header): IF the interface; TABLE the routing table and fwmark of the exit
# route (51820, as wg-quick picks for a 0.0.0.0/0 peer); CLAMP 1 to clamp the MSS of
# forwarded TCP, MTU the interface's (empty: read from it); MASQ4, MASQ6 the mesh
# networks an exit node masquerades out of its uplink (empty: none); EXIT4 the exit's
# mesh address when the default route goes through it (empty: it does not), EXIT6 1 for
# IPv6 too; FORWARD 1 on a transit node (Docker's DOCKER-USER chain, where it exists,
# accepts what is forwarded to and from the interface: Docker rewrites FORWARD when it
# restarts, never that chain); MARKER the comment on iptables rules.
#
# The exit route is wg-quick's (an fwmark on WireGuard's own packets, `not fwmark`
# into TABLE, main with suppress_prefixlength 0 first, so the mesh's own routes win), so
# a boot by wg-quick and a live apply end in the same state, plus one rule per address
# of the host's other interfaces (`from ADDR lookup main`, proto 77) ahead of them: what
# is sent from those addresses (the SSH session meshup runs over, anything answering on
# the uplink) and the reverse-path check of what arrives there keep the host's own route.
# Status lines (`status`): clamp, masq, exit4, exit6, each present; docker-gap when a
# DOCKER-USER chain lacks meshup's rules.
# shellcheck shell=sh disable=SC2154,SC2153
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
NFT_TABLE="meshup-$IF-transit"
# What is forwarded out of the interface is clamped to its route's MTU; what comes in
# from it to the interface's own MTU (the replies go back through it), less the IPv4
# (40) or IPv6 (60) headers. MTU empty: the interface's current one.
[ -n "${MTU-}" ] || MTU=$(cat "/sys/class/net/$IF/mtu" 2>/dev/null || echo 1420)
MSS4=$((MTU - 40))
MSS6=$((MTU - 60))
GUARD_PROTO=77

use_nft() { command -v nft >/dev/null 2>&1 && nft list tables >/dev/null 2>&1; }

# The nft script of the transit table: clamping and masquerade, or nothing.
nft_body() {
	printf 'table inet %s {\n' "$NFT_TABLE"
	if [ "$CLAMP" = 1 ]; then
		printf '\tchain forward {\n\t\ttype filter hook forward priority mangle; policy accept;\n'
		printf '\t\toifname "%s" tcp flags syn / syn,rst tcp option maxseg size set rt mtu comment "%s"\n' "$IF" "$MARKER"
		printf '\t\tiifname "%s" meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size > %s tcp option maxseg size set %s comment "%s"\n' "$IF" "$MSS4" "$MSS4" "$MARKER"
		printf '\t\tiifname "%s" meta nfproto ipv6 tcp flags syn / syn,rst tcp option maxseg size > %s tcp option maxseg size set %s comment "%s"\n' "$IF" "$MSS6" "$MSS6" "$MARKER"
		printf '\t}\n'
	fi
	if [ -n "$MASQ4$MASQ6" ]; then
		printf '\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n'
		[ -z "$MASQ4" ] || printf '\t\tip saddr %s oifname != "%s" masquerade comment "%s"\n' "$MASQ4" "$IF" "$MARKER"
		[ -z "$MASQ6" ] || printf '\t\tip6 saddr %s oifname != "%s" masquerade comment "%s"\n' "$MASQ6" "$IF" "$MARKER"
		printf '\t}\n'
	fi
	printf '}\n'
}

# ipt TOOL OP: adds (-A, when missing), checks (-C) or deletes (-D) the iptables rules.
ipt() {
	command -v "$1" >/dev/null 2>&1 || return 0
	mu_net=$MASQ4
	mu_mss=$MSS4
	[ "$1" = iptables ] || { mu_net=$MASQ6; mu_mss=$MSS6; }
	mu_rc=0
	{
		if [ "$CLAMP" = 1 ] || [ "$2" = -D ]; then
			printf 'mangle FORWARD -o %s -p tcp --tcp-flags SYN,RST SYN -m comment --comment %s -j TCPMSS --clamp-mss-to-pmtu\n' "$IF" "$MARKER"
			printf 'mangle FORWARD -i %s -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss %s:65535 -m comment --comment %s -j TCPMSS --set-mss %s\n' "$IF" "$((mu_mss + 1))" "$MARKER" "$mu_mss"
		fi
		if [ -n "$mu_net" ]; then
			printf 'nat POSTROUTING -s %s ! -o %s -m comment --comment %s -j MASQUERADE\n' "$mu_net" "$IF" "$MARKER"
		fi
	} | while read -r table chain rule; do
		# shellcheck disable=SC2086 # a rule is words
		case "$2" in
		-A) "$1" -w -t "$table" -C "$chain" $rule 2>/dev/null || "$1" -w -t "$table" -A "$chain" $rule || exit 1 ;;
		-C) "$1" -w -t "$table" -C "$chain" $rule 2>/dev/null || exit 1 ;;
		-D) while "$1" -w -t "$table" -D "$chain" $rule 2>/dev/null; do :; done ;;
		esac
	done || mu_rc=1
	return "$mu_rc"
}

# Every rule iptables holds with MARKER in TABLE (what an older meshup left, too).
ipt_marked() {
	command -v "$1" >/dev/null 2>&1 || return 0
	"$1"-save -t "$2" 2>/dev/null | grep -e "--comment \"*$MARKER\"* " || true
}

docker_rule() { printf -- '-%s %s -m comment --comment %s -j ACCEPT\n' "$1" "$IF" "$MARKER"; }

# docker OP: adds (-I, when missing), checks (-C) or deletes (-D) the DOCKER-USER rules in
# every family whose chain exists.
docker() {
	mu_rc=0
	for mu_t in iptables ip6tables; do
		if ! command -v "$mu_t" >/dev/null 2>&1 || ! "$mu_t" -w -S DOCKER-USER >/dev/null 2>&1; then continue; fi
		for mu_side in o i; do
			mu_rule=$(docker_rule "$mu_side")
			# shellcheck disable=SC2086 # a rule is words
			case "$1" in
			-I) "$mu_t" -w -C DOCKER-USER $mu_rule 2>/dev/null || "$mu_t" -w -I DOCKER-USER 1 $mu_rule || mu_rc=1 ;;
			-C) "$mu_t" -w -C DOCKER-USER $mu_rule 2>/dev/null || mu_rc=1 ;;
			-D) while "$mu_t" -w -D DOCKER-USER $mu_rule 2>/dev/null; do :; done ;;
			esac
		done
	done
	return "$mu_rc"
}

transit_up() {
	if [ "$FORWARD" = 1 ]; then docker -I || return 1; else docker -D; fi
	if use_nft; then
		if [ "$CLAMP" = 1 ] || [ -n "$MASQ4$MASQ6" ]; then
			{ printf 'table inet %s {}\ndelete table inet %s\n' "$NFT_TABLE" "$NFT_TABLE"; nft_body; } | nft -f - || return 1
		else
			rules_down
		fi
	else
		# Rules of an earlier script (another MTU, no clamp now) go first.
		rules_down
		ipt iptables -A && ipt ip6tables -A || return 1
	fi
}

transit_down() {
	docker -D
	rules_down
}

# The clamp and masquerade rules, in nftables and iptables (what an older run left).
rules_down() {
	if command -v nft >/dev/null 2>&1 && nft list table inet "$NFT_TABLE" >/dev/null 2>&1; then
		nft delete table inet "$NFT_TABLE"
	fi
	for mu_t in iptables ip6tables; do
		MASQ4=${MASQ4:-0.0.0.0/0} MASQ6=${MASQ6:-::/0} ipt "$mu_t" -D
	done
	for mu_t in iptables ip6tables; do
		for mu_table in mangle nat; do
			ipt_marked "$mu_t" "$mu_table" | sed 's/^-A /-D /' | while read -r mu_rule; do
				# shellcheck disable=SC2086 # a saved rule is words
				eval "$mu_t -w -t $mu_table $mu_rule" 2>/dev/null
			done
		done
	done
	return 0
}

# exit_fam -4|-6: the family's default route, its rules and the table as wg-quick sets them.
default_of() { if [ "$1" = -6 ]; then echo ::/0; else echo 0.0.0.0/0; fi; }

guards() {
	ip "$1" -o addr show scope global 2>/dev/null | awk -v i="$IF" '$2 != i { sub(/\/.*/, "", $4); print $4 }' | sort -u
}

exit_present() {
	mu_rules=$(ip "$1" rule show 2>/dev/null)
	mu_hex=$(printf '0x%x' "$TABLE")
	case "$mu_rules" in *"not from all fwmark $mu_hex lookup $TABLE"*) ;; *) return 1 ;; esac
	case "$mu_rules" in *"from all lookup main suppress_prefixlength 0"*) ;; *) return 1 ;; esac
	[ -n "$(ip "$1" route show table "$TABLE" default dev "$IF" 2>/dev/null)" ] || return 1
	[ "$(wg show "$IF" fwmark 2>/dev/null)" = "$mu_hex" ] || return 1
	for mu_a in $(guards "$1"); do
		printf '%s\n' "$mu_rules" | grep -q "from $mu_a lookup main proto $GUARD_PROTO" || return 1
	done
	return 0
}

exit_up() {
	mu_hex=$(printf '0x%x' "$TABLE")
	guards_down "$1"
	wg set "$IF" fwmark "$TABLE" || return 1
	ip "$1" route replace "$(default_of "$1")" dev "$IF" table "$TABLE" || return 1
	ip "$1" rule show | grep -q "not from all fwmark $mu_hex lookup $TABLE" ||
		ip "$1" rule add not fwmark "$TABLE" table "$TABLE" || return 1
	ip "$1" rule show | grep -q "from all lookup main suppress_prefixlength 0" ||
		ip "$1" rule add table main suppress_prefixlength 0 || return 1
	for mu_a in $(guards "$1"); do
		ip "$1" rule add from "$mu_a" lookup main protocol "$GUARD_PROTO" || return 1
	done
	[ "$1" = -6 ] || sysctl -q -w net.ipv4.conf.all.src_valid_mark=1 >/dev/null
}

guards_down() {
	ip "$1" rule show 2>/dev/null | awk -v p="proto $GUARD_PROTO" 'index($0, p) { sub(/^[0-9]+:[ \t]*/, ""); print }' |
		while read -r mu_rule; do
			# shellcheck disable=SC2086 # a rule is words
			ip "$1" rule del $mu_rule
		done
}

exit_down() {
	guards_down "$1"
	while ip "$1" rule show 2>/dev/null | grep -q "lookup $TABLE\$"; do
		ip "$1" rule del table "$TABLE" || break
	done
	while ip "$1" rule show 2>/dev/null | grep -q "from all lookup main suppress_prefixlength 0"; do
		ip "$1" rule del table main suppress_prefixlength 0 || break
	done
	ip "$1" route flush table "$TABLE" 2>/dev/null
	if command -v nft >/dev/null 2>&1; then
		for mu_fam in ip ip6; do
			if nft list table "$mu_fam" "wg-quick-$IF" >/dev/null 2>&1; then nft delete table "$mu_fam" "wg-quick-$IF"; fi
		done
	fi
	return 0
}

# The exit answers over the mesh (bounded: a fresh peer's first handshake).
exit_reachable() {
	mu_i=0
	while [ "$mu_i" -lt 20 ]; do
		ping -c 1 -W 1 -I "$IF" "$EXIT4" >/dev/null 2>&1 && return 0
		mu_i=$((mu_i + 1))
	done
	return 1
}

status() {
	if use_nft; then
		mu_t=$(nft list table inet "$NFT_TABLE" 2>/dev/null)
		case "$mu_t" in *"maxseg size set rt mtu"*) echo clamp ;; esac
		case "$mu_t" in *masquerade*) echo masq ;; esac
	else
		[ -z "$(ipt_marked iptables mangle)$(ipt_marked ip6tables mangle)" ] || echo clamp
		[ -z "$(ipt_marked iptables nat)$(ipt_marked ip6tables nat)" ] || echo masq
	fi
	if [ "$FORWARD" = 1 ] && ! docker -C; then echo docker-gap; fi
	if exit_present -4; then echo exit4; fi
	if exit_present -6; then echo exit6; fi
}

case "${1-}" in
up)
	transit_up || { echo "meshup-route: forward rules of $IF failed" >&2; exit 1; }
	if [ -z "$EXIT4" ]; then
		exit_down -4
		exit_down -6
		exit 0
	fi
	if [ "${2-}" = check ] && ! exit_reachable; then
		echo "meshup-route: exit $EXIT4 does not answer over $IF: the default route stays" >&2
		exit 3
	fi
	exit_up -4 || { exit_down -4; echo "meshup-route: exit route failed" >&2; exit 1; }
	if [ "$EXIT6" = 1 ]; then exit_up -6 || { exit_down -4; exit_down -6; exit 1; }; else exit_down -6; fi
	if [ "${2-}" = check ]; then
		if ! ip -4 route get 192.0.2.1 2>/dev/null | grep -q "dev $IF " || ! exit_reachable; then
			exit_down -4
			exit_down -6
			echo "meshup-route: with the exit route in place, $EXIT4 no longer answers: the default route is restored" >&2
			exit 4
		fi
	fi
	;;
down)
	transit_down
	exit_down -4
	exit_down -6
	if ip link show dev "$IF" >/dev/null 2>&1 && [ "$(wg show "$IF" fwmark 2>/dev/null)" = "$(printf '0x%x' "$TABLE")" ]; then
		wg set "$IF" fwmark 0
	fi
	;;
status) status ;;
*)
	echo "usage: $0 up [check] | down | status" >&2
	exit 2
	;;
esac
