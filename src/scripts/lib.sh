# meshup apply library: the functions every apply phase script is made of. POSIX sh
# (dash, bash, busybox ash). The runner puts the phase's values before this file as
# quoted assignments (MU_DIR, MU_IF, and in the prepare phase MU_PSK_<n>; in the
# converge phase MU_PUBKEYS), and the plan's steps after it: each step is one call of a
# function below, exactly as `meshup plan -v` shows it.
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

mu_mark() { printf '@@meshup:%s:%s\n' "$1" "$2"; }
mu_fail() { mu_mark fail "$1"; exit 1; }
mu_done() { mu_mark 'done' "$1"; }

# Runs a command from the playbook with the lock fd closed (a daemon it starts must not
# hold meshup's lock) and no stdin; its output goes to a log shown on failure.
mu_run() {
	mu_log="$D/.meshup-$1.log"
	( eval "$2" ) 9>&- </dev/null >"$mu_log" 2>&1
}
mu_log_tail() {
	grep -v -e 'kernel module' -e 'wireguard-go' -e '^\[#\]' "$D/.meshup-$1.log" 2>/dev/null | tail -n 20 >&2
}

mkdir -p "$D" "$S" || mu_fail "cannot create $S"
chmod 700 "$D" "$S" || mu_fail "cannot chmod $S"
exec 9>>"$D/.meshup-$IF.lock" || mu_fail "cannot open lock $D/.meshup-$IF.lock"
if command -v flock >/dev/null 2>&1; then
	flock -n 9 || { mu_mark locked "$D/.meshup-$IF.lock"; exit 75; }
fi
ip link show dev "$IF" >/dev/null 2>&1 && WAS_UP=1

# Puts the previous config back (and on the running interface) and stops the run.
mu_rollback() {
	mu_mark rollback "$1"
	if [ "$HAD_PREV" = 1 ]; then cp -p "$CONF.meshup-prev" "$CONF"; else rm -f "$CONF"; fi
	if [ "$WAS_UP" = 1 ] && ip link show dev "$IF" >/dev/null 2>&1; then
		wg-quick strip "$CONF" >"$D/.$IF.stripped" 2>/dev/null && wg syncconf "$IF" "$D/.$IF.stripped"
		rm -f "$D/.$IF.stripped"
	fi
	exit 1
}

# mu_migrate_state: moves this interface's key files from the config dir, where meshup
# kept them before state was per interface, into its own directory. Keys do not change.
mu_migrate_state() {
	mu_mark step migrate
	[ -e "$S/private.key" ] && mu_fail "$S/private.key exists already; not moving $D/private.key over it"
	for mu_f in "$D/private.key" "$D/public.key" "$D"/psk-*.key; do
		[ -e "$mu_f" ] || continue
		mv -f "$mu_f" "$S/" || mu_fail "cannot move $mu_f into $S"
	done
}

# mu_stage_key: generates the next key pair of a rotation next to the current one; the
# interface keeps running on the current key until mu_promote_key at the flip.
mu_stage_key() {
	mu_mark step stage-key
	if [ ! -s "$S/private.key.next" ]; then
		wg genkey >"$S/.private.key.next.new" || mu_fail 'wg genkey failed'
		{ chmod 600 "$S/.private.key.next.new" && mv -f "$S/.private.key.next.new" "$S/private.key.next"; } || mu_fail 'cannot store private.key.next'
	fi
	mu_mark nextkey "$(wg pubkey <"$S/private.key.next")"
}

# mu_sleep_until EPOCH: sleeps until that instant (sub-second where date knows %N, GNU).
mu_sleep_until() {
	mu_delay=$(awk -v t="$1" -v n="$(date +%s.%N 2>/dev/null)" 'BEGIN { d = t - n; if (d < 0) d = 0; printf "%.3f", d }')
	sleep "$mu_delay" 2>/dev/null || sleep "${mu_delay%.*}"
}

# mu_wait_until EPOCH: sleeps until the agreed instant at which every host of a key
# rotation switches (all hosts get their scripts ahead of time and flip together).
mu_wait_until() {
	mu_mark step wait-for-flip
	mu_sleep_until "$1"
	mu_flip_at=$1
}

# mu_punch PEER KEY ENDPOINT KEEPALIVE ROLE ALLOWED: sets up the direct path to NAT node
# PEER at ENDPOINT, at the agreed instant (MU_FLIP_AT) on both hosts of the pair, and
# confirms it with a handshake within 20 s before anything else changes. Only then are
# PEER's AllowedIPs (ALLOWED, comma separated) moved off the relay onto the direct entry,
# by both hosts at a second agreed instant 2 s later (a host accepts a peer's packets only
# from the entry that holds the source address, so the two sides must switch together);
# the config the next steps write (after mu_punch_wait) says the same. Without a handshake
# the run stops there and the relay keeps carrying the pair. Each punch runs in the
# background: all pairs of a host punch at the same instant.
# ROLE: a stateful NAT (Linux conntrack) that receives a packet before its own host has
# sent to that address pins the 4-tuple and maps its host's later packets to another
# port. So the "opener" sends first with a TTL that opens its own NAT(s) and dies before
# the other NAT (mu_nat_ttl; needs nft, else plain packets); the "joiner" starts 0.8 s later
# and its handshake passes the opened hole. "lan-first" and "lan-second": no NAT between
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
	case "$5" in joiner | lan-second) sleep 0.8 ;; esac
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
			mu_delay=$(awk -v t="${MU_FLIP_AT:-0}" -v n="$(date +%s.%N 2>/dev/null)" 'BEGIN { d = t + 2 - n; if (d < 0) d = 0; printf "%.3f", d }')
			# shellcheck disable=SC2016 # expanded by the inner sh
			mu_switch='sleep "$1" 2>/dev/null || sleep "${1%.*}"; wg set "$2" peer "$3" allowed-ips "$4" && date +%s.%N'
			mu_at=$(chrt -f 20 sh -c "$mu_switch" sh "$mu_delay" "$IF" "$2" "$6" 2>/dev/null) ||
				mu_at=$(sh -c "$mu_switch" sh "$mu_delay" "$IF" "$2" "$6") ||
				mu_fail "cannot move the AllowedIPs of $1 to its direct entry"
			rm -f "$S/punch-failed-$1"
			mu_mark punched "$1 $mu_took $mu_at"
			exit 0
		fi
		sleep 0.5
		mu_i=$((mu_i + 1))
	done
	[ "$mu_had" = 0 ] && wg set "$IF" peer "$2" remove
	# Remembered (gather reads it): the next plan keeps the relay until a mapping changes.
	printf '%s\n' "$3" >"$S/punch-failed-$1"
	mu_fail "no handshake with $1 at $3 within 20 s: the direct path is not set up, the relay keeps carrying the pair"
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

# Waits for the punches of this run; any that failed stops the run before the config.
mu_punch_wait() {
	[ -n "${mu_punch_pids-}" ] || return 0
	mu_punch_bad=
	for mu_p in $mu_punch_pids; do wait "$mu_p" || mu_punch_bad=1; done
	mu_punch_pids=
	[ -z "$mu_punch_bad" ] || mu_fail 'a punched path was not confirmed: nothing else changed, the relay keeps carrying the pair'
}

# After a flip, a handshake tried while the other side had not flipped yet is retried by
# WireGuard only 5 s later. So for 2 s after the flip, a peer with no handshake since the
# flip is reset (removed and synced back) now and then: its next packet starts a fresh
# handshake with the key the other side now has. Only entries whose key changed are
# touched. Runs only when the script flipped.
mu_settle_flip() {
	[ -n "${mu_flip_at-}" ] || return 0
	mu_since=${mu_flip_at%.*}
	for mu_round in 1 2 3 4; do
		sleep 0.5 2>/dev/null || sleep 1
		# Only entries whose key changed: all of them on the node that took a new key,
		# else the peers whose new key came with this run (MU_PUBKEYS).
		mu_stale=$(MU_PUBKEYS=${MU_PUBKEYS-} wg show "$IF" latest-handshakes 2>/dev/null |
			awk -v t="$mu_since" -v all="${mu_promoted-}" '
				BEGIN { n = split(ENVIRON["MU_PUBKEYS"], p, " "); for (i = 1; i <= n; i++) { sub(/^[^=]*=/, "", p[i]); fresh[p[i]] = 1 } }
				$2 < t && (all == 1 || ($1 in fresh)) { print $1 }')
		[ -n "$mu_stale" ] || return 0
		for mu_k in $mu_stale; do wg set "$IF" peer "$mu_k" remove 2>/dev/null; done
		wg-quick strip "$CONF" >"$D/.$IF.stripped" 2>/dev/null && wg syncconf "$IF" "$D/.$IF.stripped" 2>/dev/null
		rm -f "$D/.$IF.stripped"
		: "$mu_round"
	done
}

# mu_promote_key: the staged key becomes the host's key (the old one kept as .prev).
mu_promote_key() {
	mu_mark step promote-key
	[ -s "$S/private.key.next" ] || mu_fail 'no staged key to promote'
	cp -p "$S/private.key" "$S/private.key.prev" || mu_fail 'cannot keep the previous key'
	mv -f "$S/private.key.next" "$S/private.key" || mu_fail 'cannot promote the staged key'
	wg pubkey <"$S/private.key" >"$S/public.key" || mu_fail 'wg pubkey failed'
	mu_promoted=1
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
	MU_PUBKEYS=${MU_PUBKEYS:-} awk -v dir="$S" '
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
	/^PrivateKey = <secret:private\.key>$/ { block = block "PrivateKey = " secret("private.key") "\n"; next }
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
	if [ -f "$CONF" ]; then cp -p "$CONF" "$CONF.meshup-prev" && HAD_PREV=1; fi
	mv -f "$mu_new" "$CONF" || mu_fail 'cannot install the new config'
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
# restart: `wg syncconf`, then addresses, MTU and routes as wg-quick would set them.
mu_live_reload() {
	mu_punch_wait
	mu_mark step live-reload
	ip link show dev "$IF" >/dev/null 2>&1 || mu_rollback "interface $IF is not up"
	wg-quick strip "$CONF" >"$D/.$IF.stripped" 2>"$D/.meshup-wg.log" || { cat "$D/.meshup-wg.log" >&2; rm -f "$D/.$IF.stripped"; mu_rollback 'wg-quick strip failed'; }
	wg syncconf "$IF" "$D/.$IF.stripped" 2>"$D/.meshup-wg.log" || { cat "$D/.meshup-wg.log" >&2; rm -f "$D/.$IF.stripped"; mu_rollback 'wg syncconf failed'; }
	rm -f "$D/.$IF.stripped"
	for a in $1; do
		ip -o addr show dev "$IF" | awk '{print $4}' | grep -qx "$a" || ip addr add "$a" dev "$IF" || mu_rollback "cannot add address $a"
	done
	for a in $(ip -o addr show dev "$IF" scope global | awk '{print $4}'); do
		case " $1 " in *" $a "*) ;; *) ip addr del "$a" dev "$IF" ;; esac
	done
	if [ -n "$2" ]; then ip link set dev "$IF" mtu "$2" || mu_rollback 'cannot set MTU'; fi
	mu_allowed=$(wg show "$IF" allowed-ips | awk '{for (i = 2; i <= NF; i++) print $i}' | grep -v '^(none)$')
	for net in $mu_allowed; do
		case "$net" in *:*) fam=-6 ;; *) fam=-4 ;; esac
		[ -n "$(ip "$fam" route show dev "$IF" match "$net" 2>/dev/null)" ] || ip "$fam" route add "$net" dev "$IF" || mu_rollback "cannot add route $net"
	done
	for fam in -4 -6; do
		ip "$fam" route show dev "$IF" | grep -v 'proto kernel' | awk '{print $1}' | while read -r net; do
			case "$net" in default | fe80::/64) continue ;; esac
			printf '%s\n' "$mu_allowed" | grep -qx "$net" || ip "$fam" route del "$net" dev "$IF"
		done
	done
	mu_post_check
	mu_settle_flip
}

# mu_start COMMAND: brings the interface up (service enable --now, or wg-quick up).
mu_start() {
	mu_mark step start
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
