# meshup verify probe (read-only). POSIX sh: dash, bash, busybox ash.
#
# The Rust side (src/verify/script.rs) sends, inside one `( … ) </dev/null` subshell:
# the values MU_IF, MU_NODE, MU_VERSION, MU_PINGS and MU_PING_SECTIONS (validated,
# shell-quoted), this file, then `mu_probe_start`, optionally the `during` script in a
# subshell of its own under a `during` section, and `mu_probe_finish`.
#
# Output: sections opened by `@@meshup:verify:<kind> <args…>`; a command whose status
# matters is followed by `@@meshup:verify:exit <status>` (format in src/verify/script.rs).
#
# MU_PINGS holds one line per ping process to start, words then double-quoted ping
# argument lists (only addresses, numbers and fixed options, built by meshup):
#   pair <mesh#> <mtu#> <delay> <addr> "<DF full-size ping args>" "<small ping args>"
#   job <#> <delay> <retry 0|1> "<ping args>"
# MU_PING_SECTIONS holds one section header per ping, in output order: line N is the
# header of result N (`ping <target> <kind> <addr> [<size>]`).
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
mu_nl='
'

mu_sec() { printf '@@meshup:verify:%s\n' "$*"; }

# The dump with every secret column replaced on the host, then its exit status.
mu_wgdump() {
	{ wg show "$MU_IF" dump 2>&1; mu_sec exit $?; } | awk -F'\t' 'BEGIN { OFS = "\t" }
		NF <= 1 { print; next }
		NF == 4 { $1 = "(redacted)" }
		NF == 8 { if ($2 != "(none)") $2 = "(set)" }
		NF == 4 || NF == 8 { print; next }
		{ print "(unparsed line redacted)" }'
}

# One ping run in the background, tried once more on failure when $3 is 1 (a handshake
# lost at bring-up is retried by WireGuard after 5 s). Arguments: result number, delay,
# retry, ping arguments (split on spaces on purpose).
mu_job() {
	mu_f=$1 mu_d=$2 mu_r=$3 mu_args=$4
	(
		[ "$mu_d" = 0 ] || sleep "$mu_d"
		# shellcheck disable=SC2086
		ping $mu_args >"$mu_t/$mu_f.out" 2>&1
		mu_rc=$?
		if [ "$mu_rc" != 0 ] && [ "$mu_r" = 1 ]; then
			# shellcheck disable=SC2086
			ping $mu_args >"$mu_t/$mu_f.out" 2>&1
			mu_rc=$?
		fi
		echo "$mu_rc" >"$mu_t/$mu_f.rc"
	) </dev/null >/dev/null 2>&1 &
}

# One peer's connectivity and path-MTU probes in one process when healthy: a full-size
# ping with DF set answers both; only when it fails does a small ping tell "no path"
# from "MTU", and the full-size one is tried again once the path is known to work.
# Arguments: mesh result number, MTU result number, delay, address, full-size ping
# arguments, small ping arguments.
mu_pair() {
	mu_m=$1 mu_u=$2 mu_d=$3 mu_a=$4 mu_big=$5 mu_small=$6
	case "$mu_recent" in *" $mu_a/32 "* | *" $mu_a/128 "*) mu_d=0 ;; esac
	(
		[ "$mu_d" = 0 ] || sleep "$mu_d"
		# shellcheck disable=SC2086
		ping $mu_big >"$mu_t/$mu_u.out" 2>&1
		mu_urc=$?
		if [ "$mu_urc" = 0 ]; then
			echo "$mu_u" >"$mu_t/$mu_m.same"
			mu_mrc=0
		else
			# shellcheck disable=SC2086
			ping $mu_small >"$mu_t/$mu_m.out" 2>&1
			mu_mrc=$?
			if [ "$mu_mrc" != 0 ]; then
				# shellcheck disable=SC2086
				ping $mu_small >"$mu_t/$mu_m.out" 2>&1
				mu_mrc=$?
			fi
			if [ "$mu_mrc" = 0 ]; then
				# shellcheck disable=SC2086
				ping $mu_big >"$mu_t/$mu_u.out" 2>&1
				mu_urc=$?
			fi
		fi
		echo "$mu_urc" >"$mu_t/$mu_u.rc"
		echo "$mu_mrc" >"$mu_t/$mu_m.rc"
	) </dev/null >/dev/null 2>&1 &
}

# Starts the processes of one MU_PINGS line: its quoted argument lists are split off
# at the double quotes, its words at spaces (IFS only, nothing is evaluated).
mu_start_line() {
	IFS='"'
	# shellcheck disable=SC2086
	set -- $1
	mu_words=$1 mu_big=${2-} mu_small=${4-}
	IFS=' '
	# shellcheck disable=SC2086
	set -- $mu_words
	case "${1-}" in
	pair) mu_pair "$2" "$3" "$4" "$5" "$mu_big" "$mu_small" ;;
	job) mu_job "$2" "$3" "$4" "$mu_big" ;;
	esac
}

# Prints result N: the ping output (or the output it shares with the pair's DF ping),
# then its status (124 when none was recorded). Shell builtins only: at 50 hosts a cat
# per section was ~10,000 processes on the hosts.
mu_out() {
	mu_f="$mu_t/$1.out"
	if [ -e "$mu_t/$1.same" ]; then
		read -r mu_other <"$mu_t/$1.same"
		mu_f="$mu_t/$mu_other.out"
	fi
	if [ -r "$mu_f" ]; then
		while IFS= read -r mu_line || [ -n "$mu_line" ]; do printf '%s\n' "$mu_line"; done <"$mu_f"
	fi
	mu_rc=
	if [ -s "$mu_t/$1.rc" ]; then read -r mu_rc <"$mu_t/$1.rc"; fi
	mu_sec exit "${mu_rc:-124}"
}

# Everything before the `during` script: the first dump, every ping started, and the
# interface read while they run.
mu_probe_start() {
	mu_sec begin "$MU_VERSION" "$MU_NODE" "$MU_IF"
	mu_t=$(mktemp -d 2>/dev/null || mktemp -d -t meshup-verify.XXXXXX) || {
		mu_sec fatal mktemp failed
		exit 1
	}
	trap 'rm -rf "$mu_t"' EXIT
	trap 'exit 1' HUP INT TERM
	mu_sec wg-dump-before
	mu_wgdump
	# Peers with a handshake in the last 2 minutes need no staggered start (the stagger
	# only avoids crossed first handshakes): their mesh addresses, space-separated.
	mu_recent=" $(wg show "$MU_IF" dump 2>/dev/null | awk -F'\t' -v now="$(date +%s)" \
		'NR > 1 && $5 > now - 120 { gsub(/,/, " ", $4); printf "%s ", $4 }')"
	set -f
	IFS=$mu_nl
	for mu_line in $MU_PINGS; do mu_start_line "$mu_line"; done
	unset IFS
	set +f
	mu_sec link
	ip -o link show dev "$MU_IF" 2>&1
	mu_sec exit $?
	mu_sec addr
	ip -o addr show dev "$MU_IF" 2>&1
	mu_sec exit $?
	mu_sec route 4
	ip -4 route show table all dev "$MU_IF" 2>&1
	mu_sec exit $?
	mu_sec route 6
	ip -6 route show table all dev "$MU_IF" 2>&1
	mu_sec exit $?
	mu_sec forwarding
	cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding 2>&1
}

# Everything after: the ping results in order, the clock, the dump the pings moved.
mu_probe_finish() {
	wait
	mu_n=0
	set -f
	IFS=$mu_nl
	for mu_header in $MU_PING_SECTIONS; do
		unset IFS
		mu_sec "$mu_header"
		mu_out "$mu_n"
		mu_n=$((mu_n + 1))
	done
	unset IFS
	set +f
	mu_sec now
	date +%s
	mu_sec wg-dump
	mu_wgdump
	mu_sec end
}
