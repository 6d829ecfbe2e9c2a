# meshup apply's last exec on a host (src/apply/settle.rs): starts the first handshake of
# each pair this host initiates. POSIX sh (dash, bash, busybox ash); read-only but for the
# pings. The runner puts MU_WARM (the peers' mesh addresses, space-separated, validated)
# and MU_WARM_DEADLINE (seconds) in front of this file.
#
# One ping to every address at once, then again to those that have not answered (a
# handshake lost to a peer that was not ready yet is retried by WireGuard 5 s later),
# until MU_WARM_DEADLINE seconds have passed. Prints "@@meshup:unsettled:ADDR" for each
# address that never answered, then "@@meshup:done:settle".
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

mu_settle_one() {
	mu_end=$(($(date +%s) + MU_WARM_DEADLINE))
	while :; do
		ping -n -c 1 -W 1 "$1" >/dev/null 2>&1 && return 0
		[ "$(date +%s)" -lt "$mu_end" ] || return 1
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
