# meshup verify probe (read-only). POSIX sh: dash, bash, busybox ash.
#
# The Rust side (src/verify/script.rs) sends, inside one `( … ) </dev/null` subshell:
# the values MU_IF, MU_NODE, MU_VERSION, MU_DIR, MU_PERL (src/scripts/ping.pl), MU_PINGS
# and MU_PING_SECTIONS (validated, shell-quoted), this file, then `mu_probe_start`, optionally the `during`
# script in a subshell of its own under a `during` section, and `mu_probe_finish`.
#
# Output: sections opened by `@@meshup:verify:<kind> <args…>`; a command whose status
# matters is followed by `@@meshup:verify:exit <status>` (format in src/verify/script.rs).
#
# MU_PINGS holds one line per probe of a peer, words then double-quoted ping argument
# lists (only addresses, numbers and fixed options, built by meshup):
#   pair <mesh#> <mtu#> <delay> <addr> <DF payload size> "<DF full-size ping args>" "<small ping args>"
#   job <#> <delay> <retry 0|1> <addr> "<ping args>"
# <addr> is the peer's mesh address (a recent handshake with it cancels the delay); a
# job pings the last word of its arguments.
# MU_PING_SECTIONS holds one section header per ping, in output order: line N is the
# header of result N (`ping <target> <kind> <addr> [<size>]`).
#
# Cost: when perl is there (Debian's perl-base is essential), the first round is ONE
# process for every peer (ping.pl: raw ICMP sockets, one echo request per address, more
# only to one that stays silent);
# without perl, one `ping` per peer (no subshell, no sleep per peer), all started at
# once. What fails is retried in rounds with `ping` (below), so only a broken or
# just-started pair pays for retries. At 50 hosts a `ping` process costs ~2.6 ms of CPU
# on the lab's machine: 49 of them per host were most of what verify cost.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
mu_nl='
'
mu_pids=
mu_late=
mu_batch=
mu_perl=
if command -v perl >/dev/null 2>&1 && [ -n "${MU_PERL-}" ]; then mu_perl=1; fi

mu_sec() { printf '@@meshup:verify:%s\n' "$*"; }

# The dump with every secret column replaced on the host, then its exit status. With an
# argument, the mesh addresses of peers with a handshake in the last 2 minutes go to that
# file, space-separated (read from the same dump: no second `wg show`).
mu_wgdump() {
	{ wg show "$MU_IF" dump 2>&1; mu_sec exit $?; } | awk -F'\t' -v now="$(date +%s)" -v recent="${1-}" '
		BEGIN { OFS = "\t" }
		NF == 8 && recent != "" && $5 > now - 120 { r = $4; gsub(/,/, " ", r); printf "%s ", r > recent }
		NF <= 1 { print; next }
		NF == 4 { $1 = "(redacted)" }
		NF == 8 { if ($2 != "(none)") $2 = "(set)" }
		NF == 4 || NF == 8 { print; next }
		{ print "(unparsed line redacted)" }'
}

# Starts one ping in the background: result number, ping arguments (split on spaces on
# purpose). mu_reap collects its status.
mu_ping() {
	# shellcheck disable=SC2086
	ping $2 >"$mu_t/$1.out" 2>&1 </dev/null &
	mu_pids="$mu_pids $1:$!"
}

# Waits for every ping started with mu_ping and writes each status to <result#>.rc.
mu_reap() {
	for mu_p in $mu_pids; do
		wait "${mu_p#*:}"
		echo "$?" >"$mu_t/${mu_p%%:*}.rc"
	done
	mu_pids=
}

# The status recorded for result $1 in mu_rc (empty when none).
mu_rc_of() {
	mu_rc=
	if [ -s "$mu_t/$1.rc" ]; then read -r mu_rc <"$mu_t/$1.rc"; fi
}

# Counts one more retry of result $1; fails when it had 2 already.
mu_count() {
	mu_c=0
	if [ -s "$mu_t/$1.n" ]; then read -r mu_c <"$mu_t/$1.n"; fi
	[ "$mu_c" -lt 2 ] || return 1
	echo "$((mu_c + 1))" >"$mu_t/$1.n"
}

# Splits one MU_PINGS line: its quoted argument lists at the double quotes, its words at
# spaces (IFS only, nothing is evaluated). Sets mu_kind, mu_a (the address), mu_d (the
# delay), mu_big / mu_small (the argument lists), mu_m / mu_u (a pair's mesh and MTU
# result numbers; a job's number is mu_u) and mu_r (a job's retry flag).
mu_parse() {
	IFS='"'
	# shellcheck disable=SC2086
	set -- $1
	mu_words=$1 mu_big=${2-} mu_small=${4-}
	IFS=' '
	# shellcheck disable=SC2086
	set -- $mu_words
	unset IFS
	mu_kind=${1-}
	case "$mu_kind" in
	pair) mu_m=$2 mu_u=$3 mu_d=$4 mu_a=$5 mu_r=1 mu_target="$mu_u,$5,$6,1" ;;
	job) mu_m='' mu_u=$2 mu_d=$3 mu_r=$4 mu_a=$5 mu_target="$mu_u,${mu_big##* },0,0" ;;
	*) mu_kind= ;;
	esac
}

# The first round's pings of the listed lines ($1, newline-separated; mu_parse'd), $2
# seconds late (0 or 1): added to the one ping.pl batch (mu_launch starts it), or without
# perl one `ping` each, started now (the caller delays them).
mu_start() {
	set -f
	IFS=$mu_nl
	for mu_line in $1; do
		mu_parse "$mu_line"
		if [ -n "$mu_perl" ]; then
			mu_batch="$mu_batch $mu_target,$2"
		else
			mu_ping "$mu_u" "$mu_big"
		fi
	done
	unset IFS
	set +f
}

# Starts the ping.pl batch, if any: one process for every first-round ping.
mu_launch() {
	if [ -n "$mu_batch" ]; then
		set -f
		# shellcheck disable=SC2086 # the targets are words on purpose
		perl -e "$MU_PERL" "$mu_t" 3 2 $mu_batch </dev/null >/dev/null 2>&1 &
		mu_pids="$mu_pids batch:$!"
		set +f
		mu_batch=
	fi
}

# First round: the full-size DF ping of a pair (which answers both "is there a path" and
# "does the MTU pass" when healthy), or the job's ping. Towards a peer whose name sorts
# first and with no recent handshake, it is left for the late start (crossed first
# handshakes stall on WireGuard).
mu_first() {
	mu_parse "$1"
	[ -n "$mu_kind" ] || return 0
	case "$mu_recent" in *" $mu_a/32 "* | *" $mu_a/128 "*) mu_d=0 ;; esac
	if [ "$mu_d" = 0 ]; then
		mu_now="$mu_now$1$mu_nl"
	else
		mu_late="$mu_late$1$mu_nl"
	fi
}

# Retry round: the next ping each failed result needs. A pair whose DF ping failed gets a
# small ping (up to twice: WireGuard retries a lost handshake after 5 s); once a small one
# answers, the DF ping is tried once more, so a reply lost under load is not called an
# MTU problem. A failed job is run again (up to twice).
mu_retry() {
	mu_parse "$1"
	[ -n "$mu_kind" ] && [ "$mu_r" = 1 ] || return 0
	mu_rc_of "$mu_u"
	[ "$mu_rc" != 0 ] || return 0
	if [ "$mu_kind" = job ]; then
		if mu_count "$mu_u"; then mu_ping "$mu_u" "$mu_big"; fi
		return 0
	fi
	mu_rc_of "$mu_m"
	if [ "$mu_rc" = 0 ]; then
		[ -e "$mu_t/$mu_u.again" ] && return 0
		: >"$mu_t/$mu_u.again"
		mu_ping "$mu_u" "$mu_big"
	elif mu_count "$mu_m"; then
		mu_ping "$mu_m" "$mu_small"
	fi
}

# After the rounds: a pair whose DF ping answered at once shares its output with the
# mesh result.
mu_share() {
	mu_parse "$1"
	[ "$mu_kind" = pair ] || return 0
	[ -e "$mu_t/$mu_m.rc" ] || echo "$mu_u" >"$mu_t/$mu_m.same"
}

# Runs function $1 on every MU_PINGS line.
mu_each() {
	mu_fn=$1
	set -f
	IFS=$mu_nl
	for mu_line in $MU_PINGS; do
		unset IFS
		"$mu_fn" "$mu_line"
	done
	unset IFS
	set +f
}

# Prints every result in MU_PING_SECTIONS order: its header, the ping output (or the
# output it shares with the pair's DF ping), then its status (124 when none was
# recorded). One awk for all of them: at 50 hosts a `cat` per section was ~10,000
# processes on the hosts, and the shell's `read` takes a system call per byte.
mu_results() {
	printf '%s' "$MU_PING_SECTIONS" | awk -v dir="$mu_t" '
		function line(file,   l) { l = ""; if ((getline l < file) > 0) { close(file); return l } close(file); return "" }
		{
			n = NR - 1
			print "@@meshup:verify:" $0
			src = n
			same = line(dir "/" n ".same")
			if (same != "") src = same
			f = dir "/" src ".out"
			while ((getline l < f) > 0) print l
			close(f)
			rc = line(dir "/" src ".rc")
			print "@@meshup:verify:exit " (rc == "" ? 124 : rc)
		}'
}

# Everything before the `during` script: the first dump, every first-round ping started,
# and the interface read while they run.
mu_probe_start() {
	mu_sec begin "$MU_VERSION" "$MU_NODE" "$MU_IF"
	mu_t=$(mktemp -d 2>/dev/null || mktemp -d -t meshup-verify.XXXXXX) || {
		mu_sec fatal mktemp failed
		exit 1
	}
	trap 'rm -rf "$mu_t"' EXIT
	trap 'exit 1' HUP INT TERM
	mu_sec wg-dump-before
	mu_wgdump "$mu_t/recent"
	mu_recent=
	if [ -s "$mu_t/recent" ]; then read -r mu_recent <"$mu_t/recent"; fi
	mu_recent=" $mu_recent "
	mu_now=
	mu_each mu_first
	mu_batch=
	mu_start "$mu_now" 0
	if [ -n "$mu_perl" ]; then
		mu_start "$mu_late" 1
		mu_late=
	fi
	mu_launch
	if [ -n "$mu_late" ]; then
		# One process for the whole late start; it records its pings' statuses itself.
		# shellcheck disable=SC2030 # its own list of pings, on purpose
		(
			mu_pids=
			sleep 1
			mu_start "$mu_late" 1
			mu_reap
		) </dev/null >/dev/null 2>&1 &
	fi
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
	while IFS= read -r mu_line; do printf '%s\n' "$mu_line"; done \
		</proc/sys/net/ipv4/ip_forward
	while IFS= read -r mu_line; do printf '%s\n' "$mu_line"; done \
		</proc/sys/net/ipv6/conf/all/forwarding
	# The interface's key lives in its own directory (older meshup: the config dir).
	mu_key="${MU_DIR-}/$MU_IF/private.key"
	[ -r "$mu_key" ] || mu_key="${MU_DIR-}/private.key"
	if [ -n "${MU_DIR-}" ] && [ -r "$mu_key" ]; then
		# The public key derived on the host (the private key never leaves `wg pubkey`).
		mu_sec derived-key
		wg pubkey <"$mu_key" 2>/dev/null
	fi
}

# Everything after: the retry rounds, the ping results in order, the clock, the dump the
# pings moved.
mu_probe_finish() {
	mu_reap
	wait
	mu_k=0
	while [ "$mu_k" -lt 3 ]; do
		mu_k=$((mu_k + 1))
		mu_each mu_retry
		# shellcheck disable=SC2031 # this shell's list, not the late start's
		[ -n "$mu_pids" ] || break
		mu_reap
	done
	mu_each mu_share
	mu_results
	mu_sec now
	date +%s
	mu_sec wg-dump
	mu_wgdump
	mu_sec end
}
