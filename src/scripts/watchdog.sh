#!/bin/sh
# meshup watchdog: one tick for one WireGuard interface, run by the host's own timer
# (systemd timer meshup-watchdog-IFACE.timer, or a cron line that ticks twice a minute).
# POSIX sh (dash, bash, busybox ash). It reads no secret and sends nothing off the host:
# the live state comes from one `wg show IFACE dump`, whose private key (interface line)
# and preshared keys (2nd field of peer lines) awk skips without printing or storing.
#
# Usage: watchdog.sh WATCH-FILE   (apply installs it as /usr/local/lib/meshup/watchdog.sh
# and writes WATCH-FILE = <config_dir>/<iface>.meshup-watch; a missing file is a no-op)
#
# WATCH-FILE (written by `meshup apply`; public data only), one record per line,
# fields separated by single spaces, `#` lines are comments:
#   iface IFACE                          the interface (first record)
#   state DIR                            its state dir, <config_dir>/<iface> (fallback
#                                        records go there)
#   interval SECONDS                     how often the timer runs a tick
#   dns NAME KEY HOST PORT               peer NAME (public key KEY) has the DNS-name
#                                        endpoint HOST:PORT in the inventory
#   direct NAME KEY RELAY RKEY AFTER     the entry of NAT node NAME (KEY) is a direct
#                                        path (punched or LAN); RELAY (RKEY) carries the
#                                        pair when it is not; AFTER: seconds without a
#                                        handshake after which the path counts as dead
#
# Each tick:
# - DNS: for every `dns` peer whose latest handshake is older than 135 s (or that never had
#   one), HOST is resolved again on this host (getent ahosts, else getent hosts). When none
#   of its addresses is the entry's live endpoint address, the entry is pointed at the
#   first one with one `wg set IFACE peer KEY endpoint ADDR:PORT`, and one line goes to
#   syslog (logger -t meshup-watchdog). Nothing is written to the config: the name stays
#   there, and wg-quick resolves it again at the next start.
# - Fallback: a `direct` entry that holds AllowedIPs, whose latest handshake is older than
#   AFTER s (or that had none since a tick first saw it) and that received nothing
#   since the previous tick, is removed and its AllowedIPs go back to RELAY's entry, in one
#   `wg set IFACE peer KEY remove peer RKEY allowed-ips <RELAY's own + moved>` (removed,
#   not emptied: an entry left would keep sending handshakes and keepalives at the dead
#   address, and the NATs would never forget the dead path, which a new punch must meet
#   forgotten). It is recorded in DIR/fallback-NAME: `relay=RELAY at=EPOCH was=ENDPOINT
#   silent=SECONDS` (meshup's gather reads it; the plan shows it and the next apply
#   punches again; the config, still naming the direct path, comes back at the next start).
# - The tick's time, each direct entry's received bytes and, for one without a handshake
#   yet, when a tick first saw it so, go to /run/meshup-watchdog-IFACE.tick (runtime
#   state: the counters start again with the interface; nothing written under /etc
#   while all is well).
# A tick while a meshup run holds the interface (/run/meshup-IFACE.lock) does nothing.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
umask 077
W=${1:?usage: watchdog.sh WATCH-FILE}
[ -r "$W" ] || exit 0
IF=
S=
while read -r wd_k wd_v _; do
	case $wd_k in
	iface) IF=$wd_v ;;
	state) S=$wd_v ;;
	esac
	[ -n "$IF" ] && [ -n "$S" ] && break
done <"$W"
[ -n "$IF" ] && [ -n "$S" ] && [ -d "$S" ] && [ -e "/sys/class/net/$IF" ] || exit 0
# A meshup run that holds this interface changes it now: this tick stays out of its way.
if [ -r "/run/meshup-$IF.lock" ]; then
	read -r wd_line <"/run/meshup-$IF.lock" || wd_line=
	wd_pid=${wd_line#*pid=}
	wd_pid=${wd_pid%% *}
	[ -n "$wd_pid" ] && [ "$wd_pid" != "$wd_line" ] && [ -d "/proc/$wd_pid" ] && exit 0
fi
wd_log() {
	if command -v logger >/dev/null 2>&1; then logger -t meshup-watchdog -- "$IF: $1" 2>/dev/null; fi
	return 0
}

# One awk over the watch file and the peer lines of the dump decides everything; the
# healthy case ends here with no further process.
wd_todo=$(wg show "$IF" dump 2>/dev/null | awk -v watch="$W" -v tick="/run/meshup-watchdog-$IF.tick" -v now="$(date +%s)" '
	BEGIN {
		FS = "\t"
		while ((getline line < watch) > 0) {
			n = split(line, f, " ")
			if (f[1] == "dns" && n >= 5) { dns[f[3]] = f[4] " " f[5]; dname[f[3]] = f[2] }
			if (f[1] == "direct" && n >= 6) { direct[f[3]] = f[2]; relay[f[3]] = f[5]; rname[f[3]] = f[4]; after[f[3]] = f[6] + 0 }
		}
		close(watch)
		while ((getline line < tick) > 0) {
			n = split(line, f, " ")
			if (f[1] == "rx") prev[f[2]] = f[3]
			if (f[1] == "zero") zero[f[2]] = f[3]
		}
		close(tick)
	}
	# The interface line (private key): skipped, never printed.
	NR == 1 { next }
	{
		k = $1; ep[k] = $3; ips[k] = ($4 == "(none)") ? "" : $4; hs[k] = $5 + 0; rx[k] = $6
	}
	END {
		printf "at=%d\n", now > tick
		for (k in direct) {
			if (!(k in rx)) continue
			printf "rx %s %s\n", k, rx[k] > tick
			if (hs[k] == 0) { if (!(k in zero)) zero[k] = now; printf "zero %s %s\n", k, zero[k] > tick }
		}
		close(tick)
		for (k in dns) {
			if (!(k in hs) || (hs[k] > 0 && now - hs[k] <= 135)) continue
			print "dns", dname[k], k, dns[k], ((ep[k] == "(none)") ? "-" : ep[k])
		}
		for (k in direct) {
			r = relay[k]
			if (!(k in hs) || !(r in hs) || ips[k] == "") continue
			silent = (hs[k] > 0) ? now - hs[k] : now - zero[k]
			if (silent <= after[k] || !(k in prev) || prev[k] != rx[k]) continue
			ips[r] = ips[r] ((ips[r] == "") ? "" : ",") ips[k]
			print "fallback", direct[k], k, rname[k], r, ips[r], ((ep[k] == "(none)") ? "-" : ep[k]), silent, ((hs[k] > 0) ? "" : "never")
			ips[k] = ""
		}
	}')
[ -n "$wd_todo" ] || exit 0

wd_now=$(date +%s)
# shellcheck disable=SC2034 # fields named for reading
printf '%s\n' "$wd_todo" | while read -r wd_what wd_name wd_key wd_a wd_b wd_c wd_d wd_e wd_f; do
	case $wd_what in
	dns)
		# wd_a HOST, wd_b PORT, wd_c the live endpoint.
		wd_addrs=$({ getent ahosts "$wd_a" || getent hosts "$wd_a"; } 2>/dev/null | awk '!seen[$1]++ { print $1 }')
		[ -n "$wd_addrs" ] || continue
		wd_live=${wd_c%:*}
		wd_live=${wd_live#[}
		wd_live=${wd_live%]}
		printf '%s\n' "$wd_addrs" | grep -qxF -- "$wd_live" && continue
		# The new address in the family the live endpoint uses (the host may have one only).
		case $wd_live in *:*) wd_fam=6 ;; *) wd_fam=4 ;; esac
		wd_ip=$(printf '%s\n' "$wd_addrs" | awk -v f="$wd_fam" '(index($0, ":") ? 6 : 4) == f { print; exit }')
		[ -n "$wd_ip" ] || wd_ip=$(printf '%s\n' "$wd_addrs" | head -n 1)
		case $wd_ip in *:*) wd_ep="[$wd_ip]:$wd_b" ;; *) wd_ep="$wd_ip:$wd_b" ;; esac
		if wg set "$IF" peer "$wd_key" endpoint "$wd_ep"; then
			wd_log "$wd_name: $wd_a now resolves to $wd_ip: endpoint $wd_c -> $wd_ep"
		fi
		;;
	fallback)
		# wd_a RELAY, wd_b its key, wd_c its AllowedIPs with the moved ones, wd_d the
		# direct endpoint, wd_e seconds without a handshake, wd_f "never" when none.
		if wg set "$IF" peer "$wd_key" remove peer "$wd_b" allowed-ips "$wd_c"; then
			printf 'relay=%s at=%s was=%s silent=%s\n' "$wd_a" "$wd_now" "$wd_d" "$wd_e" >"$S/.fallback-$wd_name.new" &&
				mv -f "$S/.fallback-$wd_name.new" "$S/fallback-$wd_name"
			wd_log "$wd_name: direct path at $wd_d silent for $wd_e s${wd_f:+ (no handshake yet)}: back to the relay $wd_a"
		fi
		;;
	esac
done
exit 0
