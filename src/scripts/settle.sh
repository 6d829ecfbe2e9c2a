# meshup apply's last exec on a host (src/apply/settle.rs): starts the first handshake of
# each pair this host initiates. POSIX sh (dash, bash, busybox ash). The runner puts MU_IF,
# MU_WARM (the peers' mesh addresses, space-separated, validated) and MU_WARM_DEADLINE
# (seconds) in front of this file.
#
# One ping to every address at once, then again to those that have not answered, until
# MU_WARM_DEADLINE seconds have passed. A peer that has not answered after 2 s gets its
# entry re-created once (mu_renew): a handshake lost to a peer that was not ready yet would
# be retried by WireGuard only 5 s later, and a session the peer no longer holds (two
# handshakes that crossed under load: this side sends, the peer drops every packet) would
# last until this side's next handshake, up to 2 minutes. Prints
# "@@meshup:unsettled:ADDR" for each address that never answered, "@@meshup:renewed:ADDR"
# for each entry re-created, then "@@meshup:done:settle".
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

# mu_renew ADDR: the entry whose AllowedIPs hold ADDR is removed and added back in one
# `wg set`, with the same endpoint (the configured or learned one), AllowedIPs, keepalive
# and preshared key (through a root-only file, removed after): its session goes, and
# the next packet starts a fresh handshake. Nothing is left if the entry is not found.
mu_renew() {
	# Root's runtime directory, one file per address (the jobs run at once).
	mu_psk="${MU_RUNDIR:-/run}/.meshup-settle-psk.$$.$1"
	mu_args=$(wg show "$MU_IF" dump 2>/dev/null | (umask 077 && awk -v a="$1" -v psk="$mu_psk" '
		NR > 1 {
			n = split($4, ips, ",")
			for (i = 1; i <= n; i++) if (ips[i] == a "/32" || ips[i] == a "/128") {
				out = "peer " $1 " remove peer " $1
				if ($2 != "(none)") { print $2 > psk; close(psk); out = out " preshared-key " psk }
				if ($3 != "(none)") out = out " endpoint " $3
				if ($4 != "(none)") out = out " allowed-ips " $4
				if ($8 != "off") out = out " persistent-keepalive " $8
				print out
				exit
			}
		}'))
	# shellcheck disable=SC2086 # wg set arguments (base64 keys, addresses, a path)
	[ -z "$mu_args" ] || wg set "$MU_IF" $mu_args 2>/dev/null
	mu_rc=$?
	rm -f "$mu_psk"
	[ -n "$mu_args" ] && [ "$mu_rc" = 0 ]
}

mu_settle_one() {
	mu_start=$(date +%s)
	mu_end=$((mu_start + MU_WARM_DEADLINE))
	mu_renewed=
	while :; do
		ping -n -c 1 -W 1 "$1" >/dev/null 2>&1 && return 0
		mu_now=$(date +%s)
		[ "$mu_now" -lt "$mu_end" ] || return 1
		if [ -z "$mu_renewed" ] && [ "$mu_now" -ge $((mu_start + 2)) ]; then
			mu_renewed=1
			mu_renew "$1" && printf '@@meshup:renewed:%s\n' "$1"
		fi
		sleep 0.2
	done
}

if command -v ping >/dev/null 2>&1; then
	mu_jobs=
	for mu_a in $MU_WARM; do
		mu_settle_one "$mu_a" </dev/null &
		mu_jobs="$mu_jobs $!:$mu_a"
	done
	for mu_j in $mu_jobs; do
		wait "${mu_j%%:*}" || printf '@@meshup:unsettled:%s\n' "${mu_j#*:}"
	done
else
	printf '@@meshup:noping:%s\n' "no ping on this host: its pairs get their first handshake with their first packets"
fi
printf '@@meshup:done:settle\n'
