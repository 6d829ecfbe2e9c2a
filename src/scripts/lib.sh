# meshup apply library: the functions every apply phase script is made of. POSIX sh
# (dash, bash, busybox ash). The runner puts the phase's values before this file as
# quoted assignments (MU_DIR, MU_IF, MU_RUN the run's id, and in the prepare phase
# MU_PSK_<n>; in the converge phase MU_PUBKEYS), and the plan's steps after it: each step
# is one call of a function below, exactly as `meshup plan -v` shows it.
#
# Every function reports on stdout with marker lines `@@meshup:KIND:VALUE`: `step` when
# it starts, `fail` or `rollback` when it stops the run, `pubkey` and `done` at the end.
# Secrets never reach an argv: preshared keys arrive in variables and are written with
# the printf builtin; private keys are read from their files by awk on the host.
set -u
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
D=${MU_DIR:?}
IF=${MU_IF:?}
CONF="$D/$IF.conf"
# This interface's keys and preshared keys: one directory per mesh.
S="$D/$IF"
HAD_PREV=0
WAS_UP=0
# Where an armed flip (mu_arm_flip) assembles the config it switches to (named after the
# interface, as wg-quick wants its configs).
mu_staged_dir="$D/.meshup-flip-$IF"

mu_mark() { printf '@@meshup:%s:%s\n' "$1" "$2"; }
mu_fail() { mu_mark fail "$1"; exit 1; }
mu_done() { mu_mark 'done' "$1"; }

# Runs a command from the playbook with the lock fd closed (a daemon it starts must not
# hold meshup's lock) and no stdin; its output goes to a log shown on failure.
mu_run() {
	mu_log="$D/.meshup-$1.log"
	( eval "$2" ) 9>&- </dev/null >"$mu_log" 2>&1
}
# mu_strip CONFIG: the config without wg-quick's own [Interface] keys, for `wg setconf`,
# as `wg-quick strip` prints it (lines trimmed; a key is what precedes "=" outside a
# comment). awk does in one process what wg-quick's bash loop does per line, which is a
# tenth of a second of CPU for a config of 50 peers on every host of a flip.
mu_strip() {
	awk '{
		line = $0; sub(/^[ \t]+/, "", line); sub(/[ \t]+$/, "", line)
		key = line; sub(/#.*/, "", key); sub(/=.*/, "", key); sub(/[ \t]+$/, "", key)
		if (key ~ /^\[/) iface = (key == "[Interface]")
		if (iface && key ~ /^(Address|MTU|DNS|Table|PreUp|PreDown|PostUp|PostDown|SaveConfig)$/) next
		print line
	}' "$1"
}
mu_log_tail() {
	grep -v -e 'kernel module' -e 'wireguard-go' -e '^\[#\]' "$D/.meshup-$1.log" 2>/dev/null | tail -n 20 >&2
}

mkdir -p "$D" "$S" || mu_fail "cannot create $S"
chmod 700 "$D" "$S" || mu_fail "cannot chmod $S"
# meshup's lock: each phase takes it for itself; a phase of another run that holds the
# run hold (apply's gather takes it before the plan is shown; hold.sh) stops here too.
LOCK="$D/.meshup-$IF.lock"
exec 9>>"$LOCK" || mu_fail "cannot open lock $LOCK"
if command -v flock >/dev/null 2>&1; then
	flock -n 9 || { mu_mark locked "$LOCK"; exit 75; }
	if mu_hold_other; then mu_mark locked "$MU_HOLD"; exit 75; fi
fi
ip link show dev "$IF" >/dev/null 2>&1 && WAS_UP=1

# Puts the previous config back (and on the running interface) and stops the run.
mu_rollback() {
	mu_mark rollback "$1"
	# A flip's watcher (mu_settle_flip) must not sync the new config back afterwards.
	if [ -n "${mu_settle_pid-}" ]; then kill "$mu_settle_pid" 2>/dev/null; wait "$mu_settle_pid"; fi
	if [ "$HAD_PREV" = 1 ]; then cp -p "$CONF.meshup-prev" "$CONF"; else rm -f "$CONF"; fi
	if [ "$WAS_UP" = 1 ] && ip link show dev "$IF" >/dev/null 2>&1; then
		mu_strip "$CONF" >"$D/.$IF.stripped" 2>/dev/null && mu_wg_sync "$D/.$IF.stripped" rollback
		rm -f "$D/.$IF.stripped"
	fi
	exit 1
}

# mu_migrate_state: moves this interface's key files from the config dir, where meshup
# kept them before state was per interface, into its own directory. Keys do not change.
# With "-- PEER...", only those peers' psk-PEER.key move (a hand-built mesh's own files,
# such as psk-ab.key, stay where they are); without, every psk-*.key does.
mu_migrate_state() {
	mu_mark step migrate
	[ -e "$S/private.key" ] && mu_fail "$S/private.key exists already; not moving $D/private.key over it"
	mu_psks="$D/psk-*.key"
	if [ "${1-}" = -- ]; then
		shift
		mu_psks=
		for mu_p in "$@"; do mu_psks="$mu_psks $D/psk-$mu_p.key"; done
	fi
	# shellcheck disable=SC2086 # a list of paths (names validated) or one glob
	for mu_f in "$D/private.key" "$D/public.key" $mu_psks; do
		[ -e "$mu_f" ] || continue
		mv -f "$mu_f" "$S/" || mu_fail "cannot move $mu_f into $S"
	done
}

# mu_adopt_key: moves the private key a hand-built config holds inline into
# "$S/private.key", unchanged (the prepare phase's end writes public.key from it). awk
# reads the config and writes the file itself: the key is in no argument.
mu_adopt_key() {
	mu_mark step adopt-key
	[ -e "$S/private.key" ] && mu_fail "$S/private.key exists already; not adopting $D/$IF.conf's key over it"
	(umask 077 && awk '/^[ \t]*[Pp]rivate[Kk]ey[ \t]*=/ { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t\r]*(#.*)?$/, "", v); print v; exit }' "$D/$IF.conf" >"$S/.private.key.new") ||
		mu_fail "cannot read the private key of $D/$IF.conf"
	grep -Eqx '[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=' "$S/.private.key.new" || { rm -f "$S/.private.key.new"; mu_fail "$D/$IF.conf holds no valid private key"; }
	{ chmod 600 "$S/.private.key.new" && mv -f "$S/.private.key.new" "$S/private.key"; } || mu_fail 'cannot store private.key'
}

# mu_adopt_psk PEER PUBKEY: stores the preshared key the running interface uses with
# PUBKEY (a hand-built mesh's, the same on both hosts) as psk-PEER.key, unchanged. The
# key goes from `wg show` through awk into the file, never into an argument.
mu_adopt_psk() {
	mu_mark step "adopt psk $1"
	mu_f="$S/psk-$1.key"
	(umask 077 && wg show "$IF" preshared-keys | awk -v k="$2" '$1 == k && $2 != "(none)" { print $2 }' >"$mu_f.new") ||
		mu_fail "cannot read the preshared key with $1 from $IF"
	grep -Eqx '[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=' "$mu_f.new" || { rm -f "$mu_f.new"; mu_fail "$IF runs no preshared key with $1"; }
	{ chmod 600 "$mu_f.new" && mv -f "$mu_f.new" "$mu_f"; } || mu_fail "cannot store psk-$1.key"
}

# mu_stage_key: generates the next key pair of a rotation next to the current one; the
# interface keeps running on the current key until the flip (mu_flip_files).
mu_stage_key() {
	mu_mark step stage-key
	if [ ! -s "$S/private.key.next" ]; then
		wg genkey >"$S/.private.key.next.new" || mu_fail 'wg genkey failed'
		{ chmod 600 "$S/.private.key.next.new" && mv -f "$S/.private.key.next.new" "$S/private.key.next"; } || mu_fail 'cannot store private.key.next'
	fi
	mu_mark nextkey "$(wg pubkey <"$S/private.key.next")"
}

# mu_sync_script FILE OUT [add] [RMOUT]: writes to OUT a one-line script that gives the
# running interface the stripped config FILE with one `wg set`, touching only what differs from
# `wg show dump`: a peer the same in both is not sent at all. `wg syncconf` sends every
# peer and always the listen port, and wireguard-go reopens its UDP socket on every
# listen_port it is sent: a packet arriving meanwhile gets "port unreachable", on every
# pair of the host. Here the listen port and fwmark are sent only when they change, and
# removals come last: a new entry takes its AllowedIPs over from the one it replaces.
# Keys go in files beside OUT (mode 600, removed by mu_sync_run), never in arguments.
# With "add", peers missing from FILE are kept (entries added ahead of a flip); with
# RMOUT, their removal goes to a script of its own there (a flip runs it after the switch).
# An endpoint that is a DNS name is sent only when the entry's live address is not one the
# name resolves to on this host now (getent): the watchdog may have followed the name, and
# sending it again would let wg pick another of its addresses, or fail on a DNS outage.
mu_sync_script() {
	(
		umask 077
		wg show "$IF" dump >"$2.dump" || exit 1
		awk -v dump="$2.dump" -v keys="$2.k" -v ifname="$IF" -v sq="'" -v add="${3-}" -v rmout="${4-}" '
		function q(s) { if (index(s, sq)) bad = 1; return sq s sq }
		function norm(list,   n, a, i, j, t, out) {
			gsub(/[ \t]/, "", list); if (list == "(none)") list = ""
			n = split(list, a, ","); out = ""
			for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
			for (i = 1; i <= n; i++) if (a[i] != "") out = out (out == "" ? "" : ",") a[i]
			return out
		}
		function keyfile(k,   f) { f = keys "." (++nk); print k > f; close(f); return f }
		function port(e) { sub(/.*:/, "", e); return e }
		function addr(e) { sub(/:[^:]*$/, "", e); gsub(/[][]/, "", e); return e }
		# The live endpoint is one of the addresses the name resolves to now, or the name
		# does not resolve at all (the live endpoint is then the best there is).
		function followed(name, live,   cmd, line, g, n, found) {
			if (name ~ /^\[/ || name ~ /^[0-9.]+:[0-9]+$/ || live == "" || port(name) != port(live)) return 0
			cmd = "getent ahosts " q(addr(name)) " 2>/dev/null"; n = 0; found = 0
			while ((cmd | getline line) > 0) { n++; split(line, g, " "); if (g[1] == addr(live)) found = 1 }
			close(cmd)
			return found || n == 0
		}
		BEGIN {
			row = 0
			while ((getline line < dump) > 0) {
				split(line, f, "\t")
				if (row++ == 0) { rpriv = f[1]; rport = f[3]; rmark = (f[4] == "off") ? 0 : f[4]; continue }
				k = f[1]; rpeer[k] = 1; rpsk[k] = (f[2] == "(none)") ? "" : f[2]
				rep[k] = (f[3] == "(none)") ? "" : f[3]; rips[k] = norm(f[4]); rka[k] = (f[8] == "off") ? 0 : f[8] + 0
			}
			close(dump)
			fmark = 0
		}
		function flush(   a, ips, new) {
			if (sect == "p" && pk != "") {
				seen[pk] = 1; new = !(pk in rpeer); a = ""
				if (fpsk == "" && !new && rpsk[pk] != "") a = a " preshared-key /dev/null"
				if (fpsk != "" && (new || fpsk != rpsk[pk])) a = a " preshared-key " q(keyfile(fpsk))
				if (fep != "" && (new || (fep != rep[pk] && !followed(fep, rep[pk])))) a = a " endpoint " q(fep)
				ips = norm(fips)
				if (new ? ips != "" : ips != rips[pk]) a = a " allowed-ips " q(ips)
				if (new ? fka + 0 != 0 : fka + 0 != rka[pk]) a = a " persistent-keepalive " (fka + 0)
				if (new || a != "") peers = peers " peer " q(pk) a
			}
			sect = ""; pk = fpsk = fep = fips = ""; fka = 0
		}
		/^[ \t]*\[Interface\]/ { flush(); sect = "i"; next }
		/^[ \t]*\[Peer\]/ { flush(); sect = "p"; next }
		{
			line = $0; sub(/#.*/, "", line); i = index(line, "=")
			if (i == 0) next
			key = tolower(substr(line, 1, i - 1)); val = substr(line, i + 1)
			gsub(/[ \t]/, "", key); gsub(/^[ \t]+|[ \t]+$/, "", val)
		}
		sect == "i" && key == "privatekey" { fpriv = val }
		sect == "i" && key == "listenport" { fport = val }
		sect == "i" && key == "fwmark" { fmark = (val == "off") ? 0 : val }
		sect == "p" && key == "publickey" { pk = val }
		sect == "p" && key == "presharedkey" { fpsk = val }
		sect == "p" && key == "endpoint" { fep = val }
		sect == "p" && key == "allowedips" { fips = fips "," val }
		sect == "p" && key == "persistentkeepalive" { fka = (val == "off") ? 0 : val }
		END {
			flush(); dev = ""
			if (bad) exit 1
			if (fpriv != "" && fpriv != rpriv) dev = dev " private-key " q(keyfile(fpriv))
			if (fport != "" && fport + 0 != rport + 0) dev = dev " listen-port " (fport + 0)
			if (add == "" && fmark + 0 != rmark + 0) dev = dev " fwmark " (fmark + 0)
			if (add == "") for (k in rpeer) if (!(k in seen)) rm = rm " peer " q(k) " remove"
			if (rmout != "") { print ((rm == "") ? ":" : "wg set " q(ifname) rm) > rmout; rm = "" }
			if (dev rm peers == "") print ":"
			else print "wg set " q(ifname) dev peers rm
		}' "$1" >"$2"
	)
	mu_rc=$?
	rm -f "$2.dump"
	return $mu_rc
}

# mu_sync_run SCRIPT: runs a script of mu_sync_script and removes it and its key files.
mu_sync_run() {
	sh "$1"
	mu_rc=$?
	rm -f "$1" "$1".k.*
	return $mu_rc
}

# mu_wg_sync FILE TAG: the running interface gets the stripped config FILE, changing only
# what differs (mu_sync_script). TAG names the scratch files (callers may run at once).
mu_wg_sync() {
	mu_sync_script "$1" "$D/.$IF.sync-$2" || { rm -f "$D/.$IF.sync-$2" "$D/.$IF.sync-$2".k.*; return 1; }
	mu_sync_run "$D/.$IF.sync-$2"
}

# mu_sleep_until EPOCH: sleeps until that instant (sub-second where date knows %N, GNU).
mu_sleep_until() {
	mu_delay=$(awk -v t="$1" -v n="$(date +%s.%N 2>/dev/null)" 'BEGIN { d = t - n; if (d < 0) d = 0; printf "%.3f", d }')
	sleep "$mu_delay" 2>/dev/null || sleep "${mu_delay%.*}"
}

# mu_instant: where the run agrees its instant once every host is ready (MU_FLIP_AT=go;
# the script is one brace group, so the shell has read all of it before this), says this
# host is ready (everything up to the switch prepared), with this host's clock, and reads
# the instant the workstation sends when all are, in this host's clock (the workstation
# corrects a clock that is off by what the ready line tells). Fails without one (the
# workstation went away).
mu_instant() {
	[ "$mu_flip_at" = go ] || return 0
	mu_mark ready "$(date +%s.%N 2>/dev/null)"
	IFS= read -r mu_flip_at || mu_flip_at=
	case $mu_flip_at in
	'' | *[!0-9.]*) mu_flip_at=go; return 1 ;;
	esac
}

# mu_arm_flip EPOCH|go key|peers [PEER...]: this run switches at the agreed instant EPOCH
# (every host of the rotation has its script seconds before it). Nothing changes here:
# the config steps after it assemble the new config (with the staged key for "key")
# without installing it, and mu_live_reload switches at the instant with one
# `wg set` (mu_flip). PEERs: the pairs whose new session this host starts (and
# restarts while no handshake follows, mu_settle_flip); the plan names one side per pair.
mu_arm_flip() {
	mu_mark step arm-flip
	mu_flip_at=$1
	mu_flip_key=
	if [ "$2" = key ]; then
		[ -s "$S/private.key.next" ] || mu_fail 'no staged key to promote'
		mu_flip_key=1
	fi
	shift 2
	mu_flip_initiate=" $* "
}

# mu_punch PEER KEY ENDPOINT KEEPALIVE ROLE ALLOWED: sets up the direct path to NAT node
# PEER at ENDPOINT, at the agreed instant (MU_FLIP_AT) on both hosts of the pair, and
# confirms it with a handshake within 20 s before anything else changes. Only then are
# PEER's AllowedIPs (ALLOWED, comma separated) moved off the relay onto the direct entry,
# by both hosts at a second agreed instant 3 s later (a host accepts a peer's packets only
# from the entry that holds the source address, so the two sides must switch together);
# the config the next steps write (after mu_punch_wait) says the same. Without a handshake
# the run stops there and the relay keeps carrying the pair. Each punch runs in the
# background: all pairs of a host punch at the same instant.
# ROLE: a stateful NAT (Linux conntrack) that receives a packet before its own host has
# sent to that address pins the 4-tuple and maps its host's later packets to another
# port. So the "opener" sends first with a TTL that opens its own NAT(s) and dies before
# the other NAT (mu_nat_ttl; needs nft, else plain packets); the "joiner" starts 1.5 s later
# and its handshake passes the opened hole (1.5 s: the opener's nft and `wg set` can take
# several hundred ms on a loaded host, and the joiner must still come before the opener's
# first handshake retry, 5 s after its first). "lan-first" and "lan-second": no NAT between
# them, only the order (two first packets that cross can stall both handshakes for 5 s).
mu_punch() {
	mu_mark step "punch $1"
	# A run cut off during an opening may have left its TTL rule behind.
	if [ -z "${mu_punch_n-}" ] && command -v nft >/dev/null 2>&1; then
		for mu_t in $(nft list tables ip 2>/dev/null | awk '$3 ~ /^meshup_punch_/ { print $3 }'); do
			nft delete table ip "$mu_t"
		done
	fi
	mu_punch_n=$((${mu_punch_n:-0} + 1))
	mu_punch_one "$@" &
	mu_punch_pids="${mu_punch_pids-} $!"
}
mu_punch_one() {
	# Found before the instant: a hop that does not answer costs a second.
	[ "$5" = opener ] && mu_hops=$(mu_nat_ttl "${3%:*}")
	mu_sleep_until "${MU_FLIP_AT:-0}"
	case "$5" in joiner | lan-second) sleep 1.5 ;; esac
	mu_t0=$(date +%s)
	mu_ttl=
	if [ "$5" = opener ] && command -v nft >/dev/null 2>&1; then
		mu_lport=$(wg show "$IF" listen-port)
		nft -f - >/dev/null 2>&1 <<MU_NFT && mu_ttl=1
table ip meshup_punch_$mu_punch_n {
	chain out {
		type filter hook output priority mangle; policy accept;
		udp sport $mu_lport ip daddr ${3%:*} udp dport ${3##*:} ip ttl set $mu_hops
	}
}
MU_NFT
	fi
	mu_had=$(wg show "$IF" peers | grep -cxF "$2")
	# Turning the keepalive on sends a packet at once: an entry that has one turns it off first.
	[ "$mu_had" = 0 ] || wg set "$IF" peer "$2" persistent-keepalive 0
	# The pair's preshared key (stored in the prepare phase), as the config will have it.
	if [ -r "$S/psk-$1.key" ]; then
		wg set "$IF" peer "$2" preshared-key "$S/psk-$1.key" endpoint "$3" persistent-keepalive "$4"
	else
		wg set "$IF" peer "$2" endpoint "$3" persistent-keepalive "$4"
	fi
	mu_set=$?
	# When this host's first packet left, after the instant (a failed punch says so: an
	# opener later than the joiner's start is one cause).
	mu_sent=$(awk -v t="${MU_FLIP_AT:-0}" -v n="$(date +%s.%N 2>/dev/null)" 'BEGIN { printf "%.2f", n - t }')
	if [ -n "$mu_ttl" ]; then
		[ "$mu_set" = 0 ] && sleep 0.4
		nft delete table ip "meshup_punch_$mu_punch_n"
	fi
	[ "$mu_set" = 0 ] || mu_fail "cannot point the entry of $1 at $3"
	mu_i=0
	while [ "$mu_i" -lt 40 ]; do
		mu_hs=$(wg show "$IF" latest-handshakes | awk -v k="$2" '$1 == k { print $2 }')
		if [ "${mu_hs:-0}" -ge "$mu_t0" ]; then
			mu_took=$(($(date +%s) - mu_t0))
			# Both sides switch at one instant: a real-time wake-up (chrt, where allowed)
			# keeps a loaded host from waking late; the skew is the window of loss.
			mu_delay=$(awk -v t="${MU_FLIP_AT:-0}" -v n="$(date +%s.%N 2>/dev/null)" 'BEGIN { d = t + 3 - n; if (d < 0) d = 0; printf "%.3f", d }')
			# shellcheck disable=SC2016 # expanded by the inner sh
			mu_switch='sleep "$1" 2>/dev/null || sleep "${1%.*}"; wg set "$2" peer "$3" allowed-ips "$4" && date +%s.%N'
			mu_at=$(chrt -f 20 sh -c "$mu_switch" sh "$mu_delay" "$IF" "$2" "$6" 2>/dev/null) ||
				mu_at=$(sh -c "$mu_switch" sh "$mu_delay" "$IF" "$2" "$6") ||
				mu_fail "cannot move the AllowedIPs of $1 to its direct entry"
			rm -f "$S/punch-failed-$1" "$S/fallback-$1"
			mu_mark punched "$1 $mu_took $mu_at"
			exit 0
		fi
		sleep 0.5
		mu_i=$((mu_i + 1))
	done
	[ "$mu_had" = 0 ] && wg set "$IF" peer "$2" remove
	# Remembered (gather reads it): the next plan keeps the relay until a mapping changes.
	printf '%s\n' "$3" >"$S/punch-failed-$1"
	mu_fail "no handshake with $1 at $3 within 20 s (this host, the $5, sent $mu_sent s after the agreed instant): the direct path is not set up, the relay keeps carrying the pair"
}
# mu_nat_ttl IP: the TTL that takes a packet out of this host's own NAT layers and no
# further: one more than the routers on the way to IP that answer from private addresses
# (RFC 1918, or 100.64/10 inside a carrier-grade NAT), found with one ping per hop; 2
# when ping cannot tell.
mu_nat_ttl() {
	mu_hop=1
	while [ "$mu_hop" -le 4 ]; do
		mu_from=$(ping -n -c 1 -W 1 -t "$mu_hop" "$1" 2>/dev/null | awk '/[Ee]xceeded/ { sub(/:$/, "", $2); print $2; exit }')
		case "$mu_from" in
		10.* | 192.168.* | 172.1[6-9].* | 172.2[0-9].* | 172.3[01].*) ;;
		100.6[4-9].* | 100.[7-9][0-9].* | 100.1[01][0-9].* | 100.12[0-7].*) ;;
		*) break ;;
		esac
		mu_hop=$((mu_hop + 1))
	done
	[ "$mu_hop" -ge 2 ] || mu_hop=2
	echo "$mu_hop"
}

# mu_move_paths EPOCH PEERKEY ENDPOINT [PEERKEY ENDPOINT...]: pairs moving onto or off a
# private network switch their endpoints on both hosts at the agreed instant EPOCH: one
# side alone is pulled back, as WireGuard sends to where the peer's packets last came from
# and the other side still sends over the old path. A packet in flight at the instant can
# still pull an entry back: each host looks again 4 times, 1.5 s apart, and sets again an
# entry that is not on its endpoint.
mu_move_paths() {
	mu_mark step move-paths
	mu_at=$1
	shift
	mu_round=0
	while [ "$mu_round" -le 4 ]; do
		mu_sleep_until "$(awk -v t="$mu_at" -v r="$mu_round" 'BEGIN { printf "%.3f", t + 1.5 * r }')"
		mu_live=$(wg show "$IF" endpoints) || mu_fail "cannot read the endpoints of $IF"
		mu_args=
		mu_k=
		for mu_x in "$@"; do
			if [ -z "$mu_k" ]; then
				mu_k=$mu_x
				continue
			fi
			printf '%s\n' "$mu_live" | grep -qxF "$mu_k	$mu_x" || mu_args="$mu_args peer $mu_k endpoint $mu_x"
			mu_k=
		done
		if [ -n "$mu_args" ]; then
			# Keys and endpoints hold no space (validated); an IPv6 one must not glob.
			set -f
			# shellcheck disable=SC2086
			wg set "$IF" $mu_args || mu_fail 'wg set failed at the path move'
			set +f
		fi
		mu_round=$((mu_round + 1))
	done
}

# Waits for the punches of this run; any that failed stops the run before the config.
mu_punch_wait() {
	[ -n "${mu_punch_pids-}" ] || return 0
	mu_punch_bad=
	for mu_p in $mu_punch_pids; do wait "$mu_p" || mu_punch_bad=1; done
	mu_punch_pids=
	[ -z "$mu_punch_bad" ] || mu_fail 'a punched path was not confirmed: nothing else changed, the relay keeps carrying the pair'
}

# mu_flip: the switch of an armed flip (mu_arm_flip) on a running interface. Of each pair
# whose keys change, one side starts the new session (mu_arm_flip's PEERs, named by the
# plan) and the other only answers: two first handshakes that cross each other both fail
# and wait for WireGuard's 5 s retry, and under load they cross often. Prepared before
# the instant: the new config, stripped, and for the switch itself a variant in which
# each new entry this host starts has a keepalive (a new one sends at once) and each
# other new entry points at a discard address (127.0.0.1:9) with no keepalive: a
# handshake it would start goes nowhere (and blocks its next one for 5 s), while its
# packets wait in its queue and the peer's handshake, answered from where it came,
# brings the session up. At the instant, in a real-time wake-up where allowed (the skew
# between hosts is the window of loss): one `wg set` of only the entries that change,
# prepared too (mu_sync_script), no other process. Then the
# key files and the config follow, and mu_settle_flip watches the new sessions. If the
# switch fails, the interface gets its current config back.
mu_flip() {
	mu_src=$CONF
	[ -f "$mu_staged_dir/$IF.conf" ] && mu_src="$mu_staged_dir/$IF.conf"
	mu_sc="$D/.$IF.stripped"
	mu_strip "$mu_src" >"$mu_sc.new" 2>"$D/.meshup-wg.log" || { cat "$D/.meshup-wg.log" >&2; rm -f "$mu_sc.new"; mu_fail 'stripping the config for wg failed'; }
	MU_INIT=$(awk -v want="${mu_flip_initiate-}" '/^# Peer: / { name = $3 } /^PublicKey = / && index(want, " " name " ") { print $3, name }' "$mu_src") \
		MU_EPS=$(wg show "$IF" endpoints 2>/dev/null) MU_IPS=$(wg show "$IF" allowed-ips 2>/dev/null) \
		awk -v all="${mu_flip_key-}" -v dir="$S" -v out="$mu_sc" -v flip="$mu_sc.flip" -v pre="$mu_sc.pre" -v late="$mu_sc.late" -v list="$D/.$IF.flip-peers" '
	BEGIN {
		n = split(ENVIRON["MU_EPS"], l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); running[f[1]] = 1; if (f[2] != "(none)") ep[f[1]] = f[2] }
		n = split(ENVIRON["MU_IPS"], l, "\n"); for (i = 1; i <= n; i++) { m = split(l[i], f, " "); for (j = 2; j <= m; j++) if (f[1] in ep) at[f[j]] = ep[f[1]] }
		n = split(ENVIRON["MU_INIT"], l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); if (f[1] != "") init[f[1]] = f[2] }
	}
	function flush(   ka1) {
		changed = peer && (all == 1 || !(key in running))
		printf "%s", block ((changed && (key in init) && ka == "") ? "PersistentKeepalive = 0\n" : "") > out
		if (!changed) { printf "%s", block > flip; if (all != 1) printf "%s", block > pre }
		else if (key in init) {
			ka1 = (ka == "") ? 1 : ka
			# A new entry (the peer rotates too) joins 0.02 s after the rest of the switch
			# (mu_switch): its first handshake must find the peer on its new key already.
			printf "%s", block ((ka == "") ? "PersistentKeepalive = 1\n" : "") > ((all == 1 && !(key in running)) ? late : flip)
			# How to re-create the entry (mu_settle_flip): wg set arguments (an entry
			# without Endpoint keeps the address it learned).
			print key, 1, (endpoint != "" ? "endpoint " endpoint : (key in ep) ? "endpoint " ep[key] : ""), "allowed-ips", ips, "persistent-keepalive", ka1, (psk ? "preshared-key " dir "/psk-" init[key] ".key" : "") > list
		} else {
			printf "%s", rblock "Endpoint = 127.0.0.1:9\n" > flip
			# On a host that keeps its key, the new entry is added ahead of the instant,
			# without AllowedIPs: the first handshake of the rotated peer finds it whenever it
			# comes, and the switch only moves the AllowedIPs over.
			if (all != 1) printf "%s", sblock "Endpoint = 127.0.0.1:9\n" > pre
			# Where it pointed (an entry without Endpoint: what its current one learned).
			print key, 0, (endpoint != "" ? endpoint : (first in at) ? at[first] : "-") > list
		}
		block = rblock = sblock = endpoint = ips = first = key = ka = ""; peer = psk = 0
	}
	/^\[/ { flush(); peer = ($0 == "[Peer]") }
	peer && /^PublicKey *=/ { key = $0; sub(/^[^=]*= */, "", key) }
	peer && /^PresharedKey *=/ { psk = 1 }
	peer && /^Endpoint *=/ { endpoint = $0; sub(/^[^=]*= */, "", endpoint) }
	peer && /^PersistentKeepalive *=/ { ka = $0; sub(/^[^=]*= */, "", ka) }
	peer && /^AllowedIPs *=/ { ips = $0; sub(/^[^=]*= */, "", ips); gsub(/ /, "", ips); first = ips; sub(/,.*/, "", first) }
	{ block = block $0 "\n" }
	!(peer && /^(PersistentKeepalive|Endpoint) *=/) { rblock = rblock $0 "\n" }
	!(peer && /^(PersistentKeepalive|Endpoint|AllowedIPs) *=/) { sblock = sblock $0 "\n" }
	END { flush(); printf "" > list; printf "" > pre; printf "" > late }
	' "$mu_sc.new" || { rm -f "$mu_sc" "$mu_sc".*; mu_fail 'cannot prepare the switch'; }
	# Every scratch file of the switch is "$mu_sc".SOMETHING (the stripped config itself,
	# "$mu_sc", stays for mu_settle_flip).
	if [ -s "$mu_sc.pre" ] && ! { mu_sync_script "$mu_sc.pre" "$mu_sc.preset" add && mu_sync_run "$mu_sc.preset"; }; then
		rm -f "$mu_sc".*
		mu_strip "$CONF" >"$mu_sc" 2>/dev/null && mu_wg_sync "$mu_sc" undo
		rm -f "$mu_sc"
		mu_fail 'cannot add the new entries ahead of the flip'
	fi
	mu_late=
	if [ -s "$mu_sc.late" ]; then mu_late="$mu_sc.lateset"; fi
	if ! { mu_sync_script "$mu_sc.flip" "$mu_sc.set" "" "$mu_sc.rmset" && { [ -z "$mu_late" ] || mu_sync_script "$mu_sc.late" "$mu_late" add; }; }; then
		rm -f "$mu_sc" "$mu_sc".*
		mu_fail 'cannot prepare the switch'
	fi
	mu_rt=
	chrt -f 20 true 2>/dev/null && mu_rt='chrt -f 20'
	mu_instant || mu_flip_undo 'no agreed instant came from the workstation: the interface keeps its current config'
	# shellcheck disable=SC2016 # expanded by the inner sh
	mu_switch='[ -z "$4" ] || wg show "$2" latest-handshakes >"$4"; d=$(awk -v t="$1" -v n="$(date +%s.%N 2>/dev/null)" "BEGIN { d = t - n; if (d < 0) d = 0; printf \"%.3f\", d }"); sleep "$d" 2>/dev/null || sleep "${d%.*}"; . "$3" && date +%s.%N && { [ -z "$5" ] || { sleep 0.02 2>/dev/null; . "$5"; }; } && . "$6"'
	# On a rotated node the entries stay: their handshakes just before the instant tell
	# a new session from the old one (taken before the sleep, not at the instant).
	# shellcheck disable=SC2086 # $mu_rt is a command prefix or nothing
	if ! mu_switched=$($mu_rt sh -c "$mu_switch" sh "$mu_flip_at" "$IF" "$mu_sc.set" "${mu_flip_key:+$D/.$IF.flip-handshakes}" "$mu_late" "$mu_sc.rmset" 2>"$D/.meshup-wg.log"); then
		cat "$D/.meshup-wg.log" >&2
		mu_flip_undo 'wg set failed at the flip: the interface keeps its current config'
	fi
	rm -f "$mu_sc".*
	# How long after the agreed instant (by this host's clock) the switch took effect.
	[ -z "$mu_switched" ] || mu_mark switched "$(awk -v t="$mu_flip_at" -v d="$mu_switched" 'BEGIN { printf "%d", (d - t) * 1000 }')"
	mu_flip_files
}

# mu_flip_undo MESSAGE: a flip that did not happen: the entries added ahead of it go, the
# running interface keeps its current config, and the run stops.
mu_flip_undo() {
	rm -f "$mu_sc".*
	mu_strip "$CONF" >"$mu_sc" 2>/dev/null && mu_wg_sync "$mu_sc" undo
	rm -f "$mu_sc" "$D/.$IF.flip-peers" "$D/.$IF.flip-handshakes"
	rm -rf "$mu_staged_dir"
	mu_fail "$1"
}

# mu_flip_files: after the switch, the staged key becomes the host's key (the old one
# kept as private.key.prev) and the config assembled for the flip is installed.
mu_flip_files() {
	if [ -n "${mu_flip_key-}" ]; then
		cp -p "$S/private.key" "$S/private.key.prev" || mu_fail 'cannot keep the previous key'
		mv -f "$S/private.key.next" "$S/private.key" || mu_fail 'cannot promote the staged key'
		wg pubkey <"$S/private.key" >"$S/public.key" || mu_fail 'wg pubkey failed'
	fi
	if [ -f "$mu_staged_dir/$IF.conf" ]; then
		if [ -f "$CONF" ]; then cp -p "$CONF" "$CONF.meshup-prev" && HAD_PREV=1; fi
		mv -f "$mu_staged_dir/$IF.conf" "$CONF" || mu_fail 'cannot install the new config'
		rmdir "$mu_staged_dir"
		# Past the instant the peers use the new keys: the old config would cut this host
		# off, so it is the switched config that a later failure of this run puts back
		# (the old private key stays in private.key.prev).
		cp -p "$CONF" "$CONF.meshup-prev"
	fi
}

# After the switch, each new session needs a handshake, and only the side that starts it
# (mu_arm_flip's PEERs) sends one. Sent before the other side switched, it fails, and
# WireGuard would retry only 5 s later (REKEY_TIMEOUT). So an entry this host starts that
# has had no handshake for a while after its last try is re-created (removed and added
# back in one `wg set`: a fresh entry with a keepalive sends a handshake at once; the
# packets it held are lost). "A while" is MU_FLIP_WAIT: the round trip between two hosts
# is at most the sum of theirs to the workstation, so twice the slowest of those plus
# 0.05 s, at least 0.1 s (apply measures them), so a handshake still on its way over a
# long path is never cut off. Checked 0.1 s after the instant, then less and less often,
# up to 3 s after it (longer for slow paths), until every new session had a handshake:
# each re-creation loses what the entry held, so not more often. Then every entry gets its configured endpoint and keepalive (an entry
# still pointing at the discard address gets the one it had). Runs in the background,
# in real time where allowed, from the switch on.
mu_settle_flip() {
	mu_list="$D/.$IF.flip-peers"
	mu_tries="$D/.$IF.flip-tries"
	: >"$mu_tries"
	for mu_at in 0.1 0.2 0.3 0.4 0.55 0.7 0.85 1 1.25 1.5 2 2.5 3 4 5 6; do
		[ -s "$mu_list" ] || break
		mu_sleep_until "$(awk -v t="$mu_flip_at" -v a="$mu_at" 'BEGIN { printf "%.3f", t + a }')"
		# New sessions without a handshake yet; those this host starts and whose last try
		# is older than their wait are re-created ("reset" lines), "end" past the deadline.
		mu_stale=$(wg show "$IF" latest-handshakes 2>/dev/null | awk -v list="$mu_list" -v hs="$D/.$IF.flip-handshakes" \
			-v wait="${MU_FLIP_WAIT:-0.5}" -v tries="$mu_tries" -v at="$mu_flip_at" -v now="$(date +%s.%N 2>/dev/null)" '
			BEGIN {
				while ((getline line < hs) > 0) { split(line, f, " "); before[f[1]] = f[2] }
				while ((getline line < list) > 0) { split(line, f, " "); want[f[1]] = line; type[f[1]] = f[2] }
				while ((getline line < tries) > 0) { split(line, f, " "); last[f[1]] = f[2] }
				close(tries)
				deadline = at + ((5 * wait > 3) ? 5 * wait : 3)
			}
			($1 in want) && ($2 == 0 || $2 == before[$1]) {
				stale = 1
				if (type[$1] != 1) next
				t = ($1 in last) ? last[$1] : at
				# (due before the next check, 0.1 s or more away: now)
				if (now - t >= wait - 0.03) { print "reset " want[$1]; last[$1] = now }
			}
			END {
				if (!stale || now > deadline) print "@end"
				printf "" > tries
				for (k in last) print k, last[k] > tries
			}')
		case $mu_stale in *@end*) break ;; esac
		mu_reset=$(printf '%s\n' "$mu_stale" | awk '$1 == "reset" && $3 == 1 { k = $2; $1 = ""; $2 = ""; $3 = ""; printf " peer %s remove peer %s %s", k, k, $0 }')
		# shellcheck disable=SC2086 # wg set arguments (keys are base64, paths from MU_DIR)
		[ -z "$mu_reset" ] || wg set "$IF" $mu_reset 2>/dev/null
	done
	mu_wg_sync "$D/.$IF.stripped" settle 2>/dev/null
	mu_back=$(wg show "$IF" endpoints 2>/dev/null | awk -v list="$mu_list" '
		BEGIN { while ((getline line < list) > 0) { split(line, f, " "); if (f[2] == 0 && f[3] != "-") was[f[1]] = f[3] } }
		$2 == "127.0.0.1:9" && ($1 in was) { printf " peer %s endpoint %s", $1, was[$1] }')
	# shellcheck disable=SC2086 # wg set arguments
	[ -z "$mu_back" ] || wg set "$IF" $mu_back 2>/dev/null
	rm -f "$mu_list" "$mu_tries" "$D/.$IF.flip-handshakes"
}

# mu_install COMMAND: installs WireGuard with the playbook's command.
mu_install() {
	mu_mark step install
	mu_run install "$1" || { mu_log_tail install; mu_fail 'installing WireGuard failed'; }
	command -v wg >/dev/null 2>&1 || mu_fail 'wg not found after install'
}

# mu_keygen: generates the key pair on the host when there is no private key yet.
mu_keygen() {
	mu_mark step keygen
	if [ ! -s "$S/private.key" ]; then
		wg genkey >"$S/.private.key.new" || mu_fail 'wg genkey failed'
		{ chmod 600 "$S/.private.key.new" && mv -f "$S/.private.key.new" "$S/private.key"; } || mu_fail 'cannot store private.key'
	fi
}

# mu_store_psk PEER KEY: stores the preshared key shared with PEER.
mu_store_psk() {
	mu_mark step "psk $1"
	mu_f="$S/psk-$1.key"
	{ printf '%s\n' "$2" >"$mu_f.new" && chmod 600 "$mu_f.new" && mv -f "$mu_f.new" "$mu_f"; } ||
		mu_fail "cannot store psk-$1.key"
}

# mu_remove_psk PEER: deletes the preshared key of a peer that left.
mu_remove_psk() {
	mu_mark step "remove psk $1"
	rm -f "$S/psk-$1.key"
}

# Ends the prepare phase: reports the public key derived from the private key.
mu_report_pubkey() {
	if [ -s "$S/private.key" ] && command -v wg >/dev/null 2>&1; then
		{ wg pubkey <"$S/private.key" >"$S/.public.key.new" && mv -f "$S/.public.key.new" "$S/public.key"; } || mu_fail 'wg pubkey failed'
		mu_mark pubkey "$(cat "$S/public.key")"
	fi
}

# mu_teardown COMMANDS: stops the interface and its service, keeps the config aside.
mu_teardown() {
	mu_mark step teardown
	mu_run teardown "$1"
	if [ -f "$CONF" ]; then mv -f "$CONF" "$CONF.meshup-removed"; fi
	if ip link show dev "$IF" >/dev/null 2>&1; then mu_fail "interface $IF still up after teardown"; fi
}

# mu_write_config < CONFIG: assembles the config on the host and installs it atomically.
# Tokens are filled in here: <secret:FILE> from the host's own key files, and a peer's
# "PublicKey = (generated on host)" from MU_PUBKEYS ("name=key ..."), the keys generated
# during this run; a peer whose key is still unknown is left out, with a `skipped` mark.
mu_write_config() {
	mu_punch_wait
	mu_mark step write-config
	mu_new="$D/.$IF.conf.meshup-new"
	# An armed flip (mu_arm_flip) assembles the config with the staged key and installs
	# it only after the switch (mu_flip_files).
	if [ -n "${mu_flip_at-}" ]; then
		mkdir -p "$mu_staged_dir" || mu_fail "cannot create $mu_staged_dir"
		mu_new="$mu_staged_dir/$IF.conf"
	fi
	MU_PUBKEYS=${MU_PUBKEYS:-} awk -v dir="$S" -v pk="private.key${mu_flip_key:+.next}" '
	function secret(name,   line) {
		if ((getline line < (dir "/" name)) <= 0) { missing = missing " " name; return "" }
		close(dir "/" name); return line
	}
	function flush() { if (block != "" && !drop) printf "%s", block; block = ""; drop = 0 }
	BEGIN {
		n = split(ENVIRON["MU_PUBKEYS"], pairs, " ")
		for (i = 1; i <= n; i++) { eq = index(pairs[i], "="); if (eq > 1) key[substr(pairs[i], 1, eq - 1)] = substr(pairs[i], eq + 1) }
	}
	/^# Peer: / { flush(); peer = $3 }
	/^PrivateKey = <secret:private\.key>$/ { block = block "PrivateKey = " secret(pk) "\n"; next }
	/^PresharedKey = <secret:psk-[a-z0-9][a-z0-9.-]*\.key>$/ {
		f = $3; sub(/^<secret:/, "", f); sub(/>$/, "", f)
		if (drop) next
		block = block "PresharedKey = " secret(f) "\n"; next
	}
	/^PublicKey = \(generated on host\)$/ {
		if (peer in key) { block = block "PublicKey = " key[peer] "\n" } else { drop = 1; print "@@meshup:skipped:" peer > "/dev/stderr" }
		next
	}
	{ block = block $0 "\n" }
	END { flush(); if (missing != "") { print "missing secret files:" missing > "/dev/stderr"; exit 3 } }
	' >"$mu_new" 2>"$D/.meshup-config.log"
	mu_rc=$?
	grep '^@@meshup:skipped:' "$D/.meshup-config.log"
	if [ "$mu_rc" != 0 ]; then
		grep -v '^@@meshup:' "$D/.meshup-config.log" >&2
		rm -f "$mu_new"
		mu_fail 'assembling the config failed'
	fi
	chmod 600 "$mu_new"
	[ -z "${mu_flip_at-}" ] || return 0
	if [ -f "$CONF" ]; then cp -p "$CONF" "$CONF.meshup-prev" && HAD_PREV=1; fi
	mv -f "$mu_new" "$CONF" || mu_fail 'cannot install the new config'
	# The watchdog's fallbacks (watchdog.sh) are settled by this config: the plan decided
	# each pair's path knowing them.
	rm -f "$S"/fallback-*
}

# mu_firewall COMMAND: one firewall command from the playbook.
mu_firewall() {
	mu_mark step firewall
	mu_run fw "$1" || {
		cat "$D/.meshup-fw.log" >&2
		mu_fail "firewall command failed: $1: $(tail -n 2 "$D/.meshup-fw.log" | tr '\n' ' ')"
	}
}

# mu_forwarding FAMILIES: enables and persists forwarding ("4" or "46").
mu_forwarding() {
	mu_mark step forwarding
	mu_sysctl=/etc/sysctl.d/99-meshup-forward.conf
	{
		echo '# written by meshup: this node forwards mesh traffic'
		echo 'net.ipv4.ip_forward=1'
		case "$1" in *6*) echo 'net.ipv6.conf.all.forwarding=1' ;; esac
	} >"$mu_sysctl.new" || mu_fail "cannot write $mu_sysctl"
	{ chmod 644 "$mu_sysctl.new" && mv -f "$mu_sysctl.new" "$mu_sysctl"; } || mu_fail "cannot write $mu_sysctl"
	sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || mu_fail 'cannot enable ip_forward'
	case "$1" in
	*6*) sysctl -q -w net.ipv6.conf.all.forwarding=1 >/dev/null || mu_fail 'cannot enable IPv6 forwarding' ;;
	esac
}

# Checks that the interface is up and runs this host's own public key.
mu_post_check() {
	mu_mark step post-check
	ip link show dev "$IF" up >/dev/null 2>&1 || mu_rollback "interface $IF is not up after apply"
	mu_want=$(wg pubkey <"$S/private.key" 2>/dev/null)
	mu_live=$(wg show "$IF" public-key 2>/dev/null)
	if [ -z "$mu_want" ] || [ "$mu_live" != "$mu_want" ]; then mu_rollback "interface $IF runs public key $mu_live, expected $mu_want"; fi
}

# mu_live_reload ADDRESSES MTU: gives the running interface the new config without a
# restart: one `wg set` of what differs (mu_wg_sync), then addresses, MTU and routes as
# wg-quick would set them.
mu_live_reload() {
	mu_punch_wait
	mu_mark step live-reload
	ip link show dev "$IF" >/dev/null 2>&1 || mu_rollback "interface $IF is not up"
	if [ -n "${mu_flip_at-}" ]; then
		mu_flip
		mu_settle_flip &
		mu_settle_pid=$!
		[ -z "$mu_rt" ] || chrt -f -p 20 "$mu_settle_pid" 2>/dev/null
	else
		mu_strip "$CONF" >"$D/.$IF.stripped" 2>"$D/.meshup-wg.log" || { cat "$D/.meshup-wg.log" >&2; rm -f "$D/.$IF.stripped"; mu_rollback 'stripping the config for wg failed'; }
		mu_wg_sync "$D/.$IF.stripped" reload 2>"$D/.meshup-wg.log" || { cat "$D/.meshup-wg.log" >&2; rm -f "$D/.$IF.stripped"; mu_rollback 'wg set failed'; }
		rm -f "$D/.$IF.stripped"
	fi
	for a in $1; do
		ip -o addr show dev "$IF" | awk '{print $4}' | grep -qx "$a" || ip addr add "$a" dev "$IF" || mu_rollback "cannot add address $a"
	done
	for a in $(ip -o addr show dev "$IF" scope global | awk '{print $4}'); do
		case " $1 " in *" $a "*) ;; *) ip addr del "$a" dev "$IF" ;; esac
	done
	if [ -n "$2" ]; then ip link set dev "$IF" mtu "$2" || mu_rollback 'cannot set MTU'; fi
	mu_sync_routes
	mu_post_check
	if [ -n "${mu_settle_pid-}" ]; then
		wait "$mu_settle_pid"
		rm -f "$D/.$IF.stripped"
	fi
}

# mu_sync_routes: the routes of the interface follow its allowed nets, as wg-quick sets
# them at start: a route for each allowed net no route of the interface covers, none
# for a net no peer has.
mu_sync_routes() {
	mu_allowed=$(wg show "$IF" allowed-ips | awk '{for (i = 2; i <= NF; i++) if ($i != "(none)") print $i}')
	# Each allowed net gets a route unless one of the interface's covers it (as
	# `ip route show match` finds). The IPv4 ones are compared in one awk (a mesh's
	# peers are all inside the interface's own subnet: no process per peer); the
	# others are asked of ip.
	mu_uncovered=$(ip -4 route show dev "$IF" 2>/dev/null | MU_A="$mu_allowed" awk '
		function num(a,   p) { split(a, p, "[.]"); return ((p[1] * 256 + p[2]) * 256 + p[3]) * 256 + p[4] }
		{ r = ($1 == "default") ? "0.0.0.0/0" : $1; if (r !~ /\//) r = r "/32"; split(r, f, "/"); ra[++nr] = num(f[1]); rl[nr] = f[2] + 0 }
		END {
			n = split(ENVIRON["MU_A"], a, "\n")
			for (i = 1; i <= n; i++) {
				if (a[i] == "" || a[i] ~ /\/0$/) continue
				if (a[i] ~ /:/) { print a[i]; continue }
				split(a[i], f, "/"); na = num(f[1]); nl = (f[2] == "") ? 32 : f[2] + 0; c = 0
				for (j = 1; j <= nr && !c; j++) {
					b = 1; for (k = rl[j]; k < 32; k++) b *= 2
					if (rl[j] <= nl && int(na / b) == int(ra[j] / b)) c = 1
				}
				if (!c) print a[i]
			}
		}')
	for net in $mu_uncovered; do
		case "$net" in *:*) fam=-6 ;; *) fam=-4 ;; esac
		[ -n "$(ip "$fam" route show dev "$IF" match "$net" 2>/dev/null)" ] || ip "$fam" route add "$net" dev "$IF" || mu_rollback "cannot add route $net"
	done
	# Routes of the interface no allowed net wants go (not the kernel's own; ip shows a
	# host route without its /32 or /128).
	for fam in -4 -6; do
		case $fam in -4) mu_host=/32 ;; *) mu_host=/128 ;; esac
		for net in $(ip "$fam" route show dev "$IF" 2>/dev/null | MU_A="$mu_allowed" awk -v host="$mu_host" '
			BEGIN { n = split(ENVIRON["MU_A"], a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
			/proto kernel/ || $1 == "default" || $1 == "fe80::/64" { next }
			{ net = ($1 ~ /\//) ? $1 : $1 host; if (!(net in want)) print $1 }'); do
			ip "$fam" route del "$net" dev "$IF"
		done
	done
}

# mu_route_stage < SCRIPT: the new routing script beside the current one (mu_route
# installs it once it has run).
mu_route_stage() {
	mu_mark step route-stage
	mu_route_new="$D/.meshup-route-$IF.sh.meshup-new"
	cat >"$mu_route_new" || { rm -f "$mu_route_new"; mu_fail 'cannot write the routing script'; }
	chmod 700 "$mu_route_new" || mu_fail 'cannot chmod the routing script'
}

# mu_route PATH [check]: runs the staged routing script (`up`, with `check`: the exit must
# answer over the mesh before and after the default route moves) and installs it as PATH.
# On failure the previous script's state comes back and the config is rolled back.
mu_route() {
	mu_mark step route
	if ! sh "$mu_route_new" up "$2" 2>"$D/.meshup-route.log"; then
		cat "$D/.meshup-route.log" >&2
		if [ -f "$1" ]; then sh "$1" up >/dev/null 2>&1; else sh "$mu_route_new" down >/dev/null 2>&1; fi
		rm -f "$mu_route_new"
		mu_rollback "routing failed: $(tail -n 1 "$D/.meshup-route.log")"
	fi
	mv -f "$mu_route_new" "$1" || mu_fail "cannot install $1"
}

# mu_route_remove PATH: takes the routing script's rules and routes down and removes it.
mu_route_remove() {
	mu_mark step route-remove
	if [ -f "$1" ]; then sh "$1" down || mu_fail "taking $1 down failed"; fi
	rm -f "$1"
}

# mu_nm_reload: NetworkManager, where it runs, reads its configuration again (a new
# drop-in takes effect without a restart).
mu_nm_reload() {
	mu_mark step nm-reload
	if pidof NetworkManager >/dev/null 2>&1 && command -v nmcli >/dev/null 2>&1; then
		mu_run nm 'nmcli general reload conf' || { cat "$D/.meshup-nm.log" >&2; mu_fail 'NetworkManager did not reload its configuration'; }
	fi
}

# mu_nm_remove PATH: meshup's NetworkManager drop-in goes (a node leaving the mesh),
# read again at once where NetworkManager runs.
mu_nm_remove() {
	mu_mark step nm-remove
	rm -f "$1"
	mu_nm_reload
}

# mu_start COMMAND: brings the interface up (service enable --now, or wg-quick up).
mu_start() {
	mu_mark step start
	# An armed flip on a stopped interface: the files switch at the instant.
	if [ -n "${mu_flip_at-}" ]; then
		mu_instant || mu_fail 'no agreed instant came from the workstation: nothing switched'
		mu_sleep_until "$mu_flip_at"
		mu_flip_files
	fi
	mu_run up "$1" || {
		mu_log_tail up
		if ip link show dev "$IF" >/dev/null 2>&1; then ip link del dev "$IF"; fi
		mu_rollback 'bringing the interface up failed'
	}
	mu_post_check
}

# mu_enable COMMAND: enables the service at boot without touching the running interface.
mu_enable() {
	mu_mark step enable
	mu_run enable "$1" || { cat "$D/.meshup-enable.log" >&2; mu_fail 'enabling the service failed'; }
}

# mu_hosts_block IFACE < LINES: puts LINES between "# BEGIN meshup IFACE" and
# "# END meshup IFACE" in /etc/hosts, where the block stands (further blocks of IFACE are
# dropped) or at the end; empty input removes the block. Every line outside the block
# stays as it is, and an unchanged file is not rewritten. The new file is written beside
# the old one with its mode and owner and renamed over it (through a symlink, into its
# target); a file that cannot be renamed over (a bind mount, as in containers) is
# rewritten in place. Markers gather would call broken stop the step, file untouched.
# MU_HOSTS_FILE exists for the tests; the runner never sets it.
mu_hosts_block() {
	mu_mark step hosts-file
	mu_hf=${MU_HOSTS_FILE:-/etc/hosts}
	if [ -L "$mu_hf" ]; then
		mu_hf=$(readlink -f "$mu_hf")
		[ -n "$mu_hf" ] || mu_fail 'cannot resolve the /etc/hosts symlink'
	fi
	mu_block=$(cat)
	mu_src=$mu_hf
	if [ ! -e "$mu_hf" ]; then
		[ -n "$mu_block" ] || return 0
		mu_src=/dev/null
	fi
	mu_new="${mu_hf%/*}/.${mu_hf##*/}.meshup-new"
	if [ "$mu_src" = "$mu_hf" ]; then
		cp -p "$mu_hf" "$mu_new" || mu_fail "cannot write $mu_new"
	else
		{ : >"$mu_new" && chmod 644 "$mu_new"; } || mu_fail "cannot write $mu_new"
	fi
	MU_BLOCK=$mu_block awk -v begin="# BEGIN meshup $1" -v end="# END meshup $1" '
	function put() {
		if (!done && ENVIRON["MU_BLOCK"] != "") { print begin; print ENVIRON["MU_BLOCK"]; print end }
		done = 1
	}
	$0 == begin { if (inside) bad = 1; inside = 1; put(); next }
	$0 == end { if (!inside) bad = 1; inside = 0; next }
	inside { next }
	{ print }
	END { if (inside) bad = 1; if (bad) exit 3; put() }
	' "$mu_src" >"$mu_new"
	mu_rc=$?
	if [ "$mu_rc" = 3 ]; then
		rm -f "$mu_new"
		mu_fail "the meshup $1 markers in $mu_hf are broken (a BEGIN or END alone): fix them by hand"
	elif [ "$mu_rc" != 0 ]; then
		rm -f "$mu_new"
		mu_fail "cannot rewrite $mu_hf"
	fi
	if [ "$mu_src" = "$mu_hf" ] && cmp -s "$mu_new" "$mu_hf"; then
		rm -f "$mu_new"
		return 0
	fi
	if ! mv -f "$mu_new" "$mu_hf" 2>/dev/null; then
		{ cat "$mu_new" >"$mu_hf"; } 2>/dev/null || { rm -f "$mu_new"; mu_fail "cannot write $mu_hf"; }
		rm -f "$mu_new"
	fi
	if command -v restorecon >/dev/null 2>&1; then restorecon "$mu_hf" 2>/dev/null || true; fi
}

# mu_put_file PATH MODE [pubkeys] < CONTENT: writes PATH atomically (a new file beside it,
# renamed over it) with MODE, creating its directory; an unchanged file is not rewritten.
# With "pubkeys", each `<pubkey:NAME>` is a key learned in this run (MU_PUBKEYS
# "name=key ...", as mu_write_config fills them); a line with one still unknown is left out.
mu_put_file() {
	mu_mark step "file $1"
	mkdir -p "${1%/*}" || mu_fail "cannot create ${1%/*}"
	mu_new="${1%/*}/.${1##*/}.meshup-new"
	MU_PUBKEYS=${MU_PUBKEYS:-} awk -v fill="${3-}" '
	BEGIN {
		n = split(ENVIRON["MU_PUBKEYS"], pairs, " ")
		for (i = 1; i <= n; i++) { eq = index(pairs[i], "="); if (eq > 1) key[substr(pairs[i], 1, eq - 1)] = substr(pairs[i], eq + 1) }
	}
	fill == "pubkeys" {
		line = $0
		while (match(line, /<pubkey:[a-z0-9][a-z0-9.-]*>/)) {
			name = substr(line, RSTART + 8, RLENGTH - 9)
			if (!(name in key)) next
			line = substr(line, 1, RSTART - 1) key[name] substr(line, RSTART + RLENGTH)
		}
		print line
		next
	}
	{ print }' >"$mu_new" || { rm -f "$mu_new"; mu_fail "cannot write $1"; }
	if [ -f "$1" ] && cmp -s "$mu_new" "$1"; then
		rm -f "$mu_new"
		return 0
	fi
	{ chmod "$2" "$mu_new" && mv -f "$mu_new" "$1"; } || { rm -f "$mu_new"; mu_fail "cannot write $1"; }
}

# mu_cron_line FILE MARKER < LINE: LINE (ending in MARKER) becomes the one line of FILE, a
# busybox crontab, that ends in MARKER; empty input removes it. The rest stays as it is;
# crond sees the renamed file within a minute.
mu_cron_line() {
	mu_mark step "crontab $1"
	mkdir -p "${1%/*}" || mu_fail "cannot create ${1%/*}"
	mu_line=$(cat)
	mu_new="${1%/*}/.${1##*/}.meshup-new"
	{
		if [ -f "$1" ]; then awk -v m="$2" 'substr($0, length($0) - length(m) + 1) != m' "$1"; fi
		[ -z "$mu_line" ] || printf '%s\n' "$mu_line"
	} >"$mu_new" || { rm -f "$mu_new"; mu_fail "cannot write $1"; }
	{ chmod 600 "$mu_new" && mv -f "$mu_new" "$1"; } || { rm -f "$mu_new"; mu_fail "cannot write $1"; }
}

# mu_watchdog_timer IFACE: runs the watchdog's timer, now and at every boot. systemd reads
# units it has not loaded yet when they are asked for (the first apply writes them new),
# so it reloads every unit (and reruns its generators: a tenth of a second of CPU on
# each host) only when it still runs an older text of one, or when starting the timer
# failed without (an old systemd keeping a unit it did not find earlier); enable's own
# reload is never needed on top.
mu_watchdog_timer() {
	mu_mark step "watchdog timer $1"
	mu_t="meshup-watchdog-$1.timer"
	mu_run timer "{ if systemctl show -p NeedDaemonReload meshup-watchdog-$1.service $mu_t | grep -qx NeedDaemonReload=yes; then systemctl daemon-reload; fi && systemctl enable --no-reload $mu_t && systemctl restart $mu_t; } || { systemctl daemon-reload && systemctl enable --no-reload $mu_t && systemctl restart $mu_t; }" ||
		{ cat "$D/.meshup-timer.log" >&2; mu_fail "cannot start meshup-watchdog-$1.timer"; }
}

# mu_watchdog_remove IFACE WATCH-FILE [SCRIPT]: stops and removes IFACE's watchdog: its
# systemd timer or cron entry, WATCH-FILE, its state (last tick, fallback records) and,
# when given (no other interface has a watchdog), the shared SCRIPT.
mu_watchdog_remove() {
	mu_mark step "remove watchdog $1"
	mu_u="/etc/systemd/system/meshup-watchdog-$1"
	if [ -f "$mu_u.timer" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		mu_run timer "systemctl disable --now meshup-watchdog-$1.timer"
	fi
	rm -f "$mu_u.timer" "$mu_u.service" "/etc/cron.d/meshup-watchdog-$1" "$2" "/run/meshup-watchdog-$1.tick" "$D/$1"/fallback-* "$D/$1"/.fallback-*
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload >/dev/null 2>&1; fi
	for mu_f in /etc/crontabs/root /var/spool/cron/crontabs/root; do
		if [ -f "$mu_f" ] && grep -q "# meshup-watchdog $1\$" "$mu_f"; then
			mu_cron_line "$mu_f" "# meshup-watchdog $1" </dev/null
		fi
	done
	if [ -n "${3-}" ]; then
		rm -f "$3"
		rmdir "${3%/*}" 2>/dev/null
	fi
	return 0
}
