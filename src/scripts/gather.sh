# meshup gather script (read-only). POSIX sh: dash, bash, busybox ash.
# The Rust side prepends MU_IF, MU_DIR, MU_PORT and MU_PEERS (validated, shell-quoted),
# for apply MU_RUN and MU_RUN_BY (the run's lock: mu_hold), for verify MU_PSK_LIVE (the
# live preshared keys' digests, in mu_keys); hold.sh comes first.
# Output: "@@meshup:gather:v1", then per section "@@meshup:section:NAME", its body
# (any body line starting with "@@" gets one more "@" so it can never look like a
# marker), "@@meshup:status:NAME:RC", and finally "@@meshup:done". Every section runs in
# this shell, all of them into one sed: markers are printed as "\001MU_MARK:..." (a
# random token from the workstation, see facts::gather_script), which only that sed turns
# into "@@meshup:..." after it has escaped the body lines, so no host text can pass for
# a marker, with two processes for the whole gather instead of three per section.
# No secret is ever printed: key files are only read by `wg pubkey`, `grep -q`, awk,
# which prints tokens in their place, and `sha256sum` (a digest prefix); live preshared
# keys go from `wg show` into awk, which compares them with the files' keys, and only one
# no file holds goes on through a shell variable and a pipe into sha256sum (mu_psks).
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH
umask 077
# Nothing is written on the host, not even a temporary file (apply's run hold in /run
# aside, see mu_hold).
mu_m=$(printf '\001')

# A marker line (see the header): KIND and its value.
mu_mark() { printf '%s%s:%s\n' "$mu_m" "$MU_MARK" "$1"; }

mu_section() {
	mu_name=$1
	shift
	mu_mark "section:$mu_name"
	"$@"
	mu_rc=$?
	mu_mark "status:$mu_name:$mu_rc"
}

mu_has() { command -v "$1" >/dev/null 2>&1; }
# The host's clock in epoch seconds, read once per gather (into mu_now_s).
mu_now_s=
mu_now() { [ -n "$mu_now_s" ] || mu_now_s=$(date +%s); }
mu_yesno() { if "$@"; then echo yes; else echo no; fi; }
# KEY=yes|no after what `test ARGS...` says, with no subshell.
mu_flag() {
	printf '%s=' "$1"
	shift
	mu_yesno [ "$@" ]
}
# A key file holds exactly one base64 WireGuard key (44 chars, ending in "=").
mu_key_valid() { [ -r "$1" ] && grep -Eqx '[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=' "$1" 2>/dev/null; }

# Where this interface's keys live: "$MU_DIR/$MU_IF/" (one directory per mesh, so
# several meshes share a host). Older meshup kept them in "$MU_DIR" itself; such files
# are read where they are when they belong to this interface (its config runs that
# private key) and reported as layout=legacy, so apply moves them without re-keying.
MU_KEYDIR="$MU_DIR/$MU_IF"
MU_LAYOUT=scoped
mu_legacy_is_ours() {
	[ ! -e "$MU_DIR/$MU_IF/private.key" ] && [ -r "$MU_DIR/private.key" ] && [ -r "$MU_DIR/$MU_IF.conf" ] || return 1
	# awk reads both files itself: the key never reaches an argv.
	awk 'NR == FNR { key = $0; next }
		/^[ \t]*[Pp]rivate[Kk]ey[ \t]*=/ { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t\r]+$/, "", v); if (v == key && key != "") found = 1 }
		END { exit !found }' "$MU_DIR/private.key" "$MU_DIR/$MU_IF.conf" 2>/dev/null
}
# A hand-built interface whose config holds its private key inline (the guide's way),
# with no key file of meshup's: layout=inline, the key's public half derived here, and
# apply moves the key into "$MU_DIR/$MU_IF/private.key" unchanged (mu_adopt_key).
# awk prints the key only into the pipe to `wg pubkey`.
mu_inline_key() {
	awk '/^[ \t]*[Pp]rivate[Kk]ey[ \t]*=/ { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t\r]*(#.*)?$/, "", v)
		if (length(v) == 44 && v ~ /^[A-Za-z0-9+\/]+=$/) print v; exit }' "$MU_DIR/$MU_IF.conf" 2>/dev/null
}
MU_INLINE_PUB=
if mu_legacy_is_ours; then
	MU_KEYDIR=$MU_DIR
	MU_LAYOUT=legacy
elif [ ! -e "$MU_DIR/$MU_IF/private.key" ] && [ -r "$MU_DIR/$MU_IF.conf" ] && mu_has wg; then
	MU_INLINE_PUB=$(mu_inline_key | wg pubkey 2>/dev/null) || MU_INLINE_PUB=
	if [ -n "$MU_INLINE_PUB" ]; then MU_LAYOUT=inline; fi
fi

mu_os_release() {
	if [ -r /etc/os-release ]; then cat /etc/os-release
	elif [ -r /usr/lib/os-release ]; then cat /usr/lib/os-release
	else return 1; fi
}

# `command -v` prints the path and a newline, or nothing (then the echo ends the line).
mu_commands() {
	for c in apt-get dnf yum pacman apk zypper wg wg-quick wireguard-go ip systemctl \
		rc-service rc-update openrc modprobe ufw firewall-cmd nft iptables iptables-save \
		netfilter-persistent flock sysctl awk; do
		printf '%s=' "$c"
		command -v "$c" 2>/dev/null || echo
	done
}

mu_init() {
	mu_flag systemd -d /run/systemd/system
	mu_flag openrc -d /run/openrc
	if [ -p /run/initctl ] || [ -p /dev/initctl ]; then echo 'sysvinit=yes'; else echo 'sysvinit=no'; fi
	mu_p1=
	read -r mu_p1 2>/dev/null </proc/1/comm
	printf 'pid1=%s\n' "$mu_p1"
}

mu_wireguard() {
	mu_flag module_loaded -d /sys/module/wireguard
	if mu_has modprobe; then
		printf 'module_available='
		mu_yesno modprobe -n wireguard 2>/dev/null
	else
		echo 'module_available=unknown'
	fi
	if mu_has wg; then printf 'wg_version=%s\n' "$(wg --version 2>/dev/null | head -n 1)"; fi
	if mu_has wireguard-go; then printf 'wireguard_go_version=%s\n' "$(wireguard-go --version 2>/dev/null | head -n 1)"; fi
	mu_flag tun -c /dev/net/tun
}

# The preshared key file of each peer (MU_PEERS) that has one: "psk=PEER valid DIGEST" or
# "psk=PEER invalid" (no line is an absent file); with MU_PSK_LIVE (verify, and plan and
# apply where the mesh uses preshared keys) also the key the interface runs with each
# peer: "psk_live=PEERKEY DIGEST|none". A digest lets the workstation see that both sides
# of a pair hold the same key without the key crossing SSH (a 256-bit random key: the
# digest tells nothing): the first 16 hex digits of sha256 over the key and a newline,
# which is what a key file written by meshup or `wg genpsk` holds. So all files take one
# sha256sum, one wc and one awk, and a live key that such a file holds has that file's
# digest (awk compares them in its memory, as mu_config does): only a file holding more
# than its key line, or a live key no file holds, is hashed alone (not five processes per
# peer and file, and two more per live key). `wg show` writes the live keys into awk's
# pipe, and awk hands one on only to be hashed: no key is ever in an argv.
mu_psks() {
	mu_files=
	for mu_p in $MU_PEERS; do
		[ -e "$MU_KEYDIR/psk-$mu_p.key" ] && mu_files="$mu_files$MU_KEYDIR/psk-$mu_p.key
"
	done
	mu_live=
	if [ -n "${MU_PSK_LIVE-}" ] && mu_has wg && mu_has sha256sum; then mu_live=1; fi
	[ -n "$mu_files" ] || [ -n "$mu_live" ] || return 0
	mu_sums=
	mu_sizes=
	if [ -n "$mu_files" ]; then
		# One path per line (a path holds no newline: validated), not globbed.
		mu_ifs=$IFS
		IFS='
'
		set -f
		# shellcheck disable=SC2086 # one path per line
		if mu_has sha256sum; then mu_sums=$(sha256sum -- $mu_files 2>/dev/null); fi
		# shellcheck disable=SC2086
		mu_sizes=$(wc -c -- $mu_files 2>/dev/null)
		set +f
		IFS=$mu_ifs
	fi
	{ if [ -n "$mu_live" ]; then wg show "$MU_IF" preshared-keys 2>/dev/null; fi; } |
		MU_FILES=$mu_files MU_SUMS=$mu_sums MU_SIZES=$mu_sizes awk -v pre="$MU_KEYDIR/psk-" '
	BEGIN {
		n = split(ENVIRON["MU_SIZES"], l, "\n")
		for (i = 1; i <= n; i++) {
			s = l[i]; sub(/^[ \t]+/, "", s)
			z = s; sub(/[ \t].*$/, "", z)
			f = s; sub(/^[0-9]+[ \t]/, "", f)
			size[f] = z
		}
		n = split(ENVIRON["MU_SUMS"], l, "\n")
		for (i = 1; i <= n; i++)
			if (substr(l[i], 65, 2) == "  ") sum[substr(l[i], 67)] = substr(l[i], 1, 16)
		n = split(ENVIRON["MU_FILES"], files, "\n")
		for (i = 1; i <= n; i++) {
			f = files[i]
			if (f == "") continue
			peer = substr(f, length(pre) + 1); sub(/\.key$/, "", peer)
			lines = 0; valid = 0; key = ""
			while ((r = (getline line < f)) > 0) {
				lines++
				if (length(line) == 44 && line ~ /^[A-Za-z0-9+\/]*[AEIMQUYcgkosw048]=$/) { valid = 1; key = line }
			}
			close(f)
			if (r < 0 || !valid) print "psk " peer " invalid"
			else if (lines == 1 && size[f] == 45 && (f in sum)) { print "psk " peer " valid " sum[f]; known[key] = sum[f] }
			else if (ENVIRON["MU_SUMS"] != "") print "psk " peer " valid -"
			else print "psk " peer " valid"
		}
	}
	{
		split($0, w, "\t")
		if (w[2] == "(none)") print "live " w[1] " none"
		else if (w[2] in known) print "live " w[1] " " known[w[2]]
		else print "live " w[1] " - " w[2]
	}' | while read -r mu_what mu_a mu_b mu_c; do
		if [ "$mu_what" = psk ]; then
			if [ "$mu_c" = - ]; then
				mu_c=$(grep -Exm1 '[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=' "$MU_KEYDIR/psk-$mu_a.key" | sha256sum)
				mu_c=${mu_c%"${mu_c#????????????????}"}
			fi
			printf 'psk=%s %s%s\n' "$mu_a" "$mu_b" "${mu_c:+ $mu_c}"
		else
			if [ "$mu_b" = - ]; then
				mu_b=$(printf '%s\n' "$mu_c" | sha256sum)
				mu_b=${mu_b%"${mu_b#????????????????}"}
			fi
			printf 'psk_live=%s %s\n' "$mu_a" "$mu_b"
		fi
	done
}

mu_keys() {
	if [ "$MU_LAYOUT" = inline ]; then
		echo 'private_key=valid'
		printf 'derived_public_key=%s\npublic_key=%s\n' "$MU_INLINE_PUB" "$MU_INLINE_PUB"
	elif [ ! -e "$MU_KEYDIR/private.key" ]; then
		echo 'private_key=absent'
	elif ! mu_key_valid "$MU_KEYDIR/private.key"; then
		echo 'private_key=invalid'
	else
		echo 'private_key=valid'
		mu_born=$(stat -c %Y "$MU_KEYDIR/private.key" 2>/dev/null) || mu_born=
		if [ -n "$mu_born" ]; then mu_now && printf 'private_key_age=%s\n' "$((mu_now_s - mu_born))"; fi
		if mu_has wg; then printf 'derived_public_key=%s\n' "$(wg pubkey <"$MU_KEYDIR/private.key" 2>/dev/null)"; fi
	fi
	if [ "$MU_LAYOUT" = inline ]; then
		:
	elif [ ! -e "$MU_KEYDIR/public.key" ]; then
		echo 'public_key=absent'
	elif mu_key_valid "$MU_KEYDIR/public.key"; then
		mu_pub=
		read -r mu_pub 2>/dev/null <"$MU_KEYDIR/public.key"
		printf 'public_key=%s\n' "$mu_pub"
	else
		echo 'public_key=invalid'
	fi
	mu_psks
}

mu_files() {
	mu_flag config_dir -d "$MU_DIR"
	mu_flag config -f "$MU_DIR/$MU_IF.conf"
	mu_flag backup -f "$MU_DIR/$MU_IF.conf.meshup-prev"
	mu_flag lock -e "$MU_DIR/.meshup-$MU_IF.lock"
	mu_flag sysctl_forward -f /etc/sysctl.d/99-meshup-forward.conf
	# In the config dir itself (older layout) only a current peer's file is meshup's:
	# a hand-built mesh's psk-ab.key is not.
	for f in "$MU_KEYDIR"/psk-*.key; do
		[ -e "$f" ] || continue
		if [ "$MU_LAYOUT" = legacy ]; then
			mu_p=${f##*/psk-}
			case " $MU_PEERS " in *" ${mu_p%.key} "*) ;; *) continue ;; esac
		fi
		printf 'psk_file=%s\n' "${f##*/}"
	done
	for f in "$MU_KEYDIR"/punch-failed-*; do
		[ -r "$f" ] && printf 'punch_failed=%s %s\n' "${f##*/punch-failed-}" "$(head -n 1 "$f")"
	done
	printf 'layout=%s\n' "$MU_LAYOUT"
	if [ -n "$MU_HOLD_STATE" ]; then printf 'hold=%s\n' "$MU_HOLD_STATE"; fi
	mu_lock_holder
	return 0
}

# Who holds meshup's lock now (another run): the run hold's line names an apply run
# (this run's own is no conflict, nor one whose run has gone and that is about to let
# go); the interface's lock in MU_DIR, taken by each phase, shows in /proc/locks by
# inode, except inside a PID namespace (containers) when the process that took it has
# exited: then it is tried.
mu_lock_holder() {
	# Another run took the hold an instant ago: its holder's line follows within moments.
	if [ "$MU_HOLD_STATE" = other ]; then
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			mu_hold_other && break
			sleep 0.1
		done
	fi
	if mu_hold_other; then
		mu_h=$(mu_hold_field pid)
		echo 'lock_held=yes'
		printf 'lock_path=%s\n' "$MU_HOLD"
		printf 'lock_holder_by=%s\n' "$(mu_hold_field by)"
		printf 'lock_holder_pid=%s\n' "$mu_h"
		printf 'lock_holder_comm=%s\n' "$(cat "/proc/$mu_h/comm" 2>/dev/null)"
		printf 'lock_holder_user=%s\n' "$(mu_hold_field user)"
		mu_since=$(mu_hold_field since)
		if [ -n "$mu_since" ]; then printf 'lock_holder_age=%s\n' "$(($(date +%s) - mu_since))"; fi
		return 0
	fi
	if [ "$MU_HOLD_STATE" = other ]; then
		# Taken, and not yet described (or let go since): another run all the same.
		echo 'lock_held=yes'
		printf 'lock_path=%s\n' "$MU_HOLD"
		return 0
	fi
	mu_lf="$MU_DIR/.meshup-$MU_IF.lock"
	[ -e "$mu_lf" ] || return 0
	mu_pid=
	if [ -r /proc/locks ]; then
		# shellcheck disable=SC2012 # ls -i is the portable way to an inode number
		mu_ino=$(ls -di "$mu_lf" 2>/dev/null | awk '{ print $1 }')
		[ -n "$mu_ino" ] && mu_pid=$(awk -v ino="$mu_ino" '$2 != "->" { n = split($6, id, ":"); if (id[n] == ino) { print $5; exit } }' /proc/locks 2>/dev/null)
	fi
	if [ -z "$mu_pid" ]; then
		mu_has flock || return 0
		flock -n "$mu_lf" true 2>/dev/null && return 0
	fi
	echo 'lock_held=yes'
	[ -n "$mu_pid" ] || return 0
	printf 'lock_holder_pid=%s\n' "$mu_pid"
	printf 'lock_holder_comm=%s\n' "$(cat "/proc/$mu_pid/comm" 2>/dev/null)"
	printf 'lock_holder_user=%s\n' "$(stat -c %U "/proc/$mu_pid" 2>/dev/null)"
	mu_since=$(stat -c %Y "/proc/$mu_pid" 2>/dev/null) || mu_since=
	if [ -n "$mu_since" ]; then printf 'lock_holder_age=%s\n' "$(($(date +%s) - mu_since))"; fi
}

# Prints the config with every secret replaced by a token. awk reads the key files
# itself; their contents only ever live inside awk.
mu_config() {
	[ -f "$MU_DIR/$MU_IF.conf" ] || return 3
	mu_psks=
	for f in "$MU_KEYDIR"/psk-*.key; do
		[ -r "$f" ] && mu_psks="$mu_psks$f
"
	done
	MU_PSKS=$mu_psks MU_PRIV="$MU_KEYDIR/private.key" awk '
	function trim(s) { sub(/^[ \t\r]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
	function readkey(path,   line) {
		line = ""
		if ((getline line < path) <= 0) line = ""
		close(path)
		return trim(line)
	}
	function scrub(s,   i, k, p) {
		for (k = 0; k < nsecret; k++) {
			if (secret[k] == "") continue
			while ((p = index(s, secret[k])) > 0)
				s = substr(s, 1, p - 1) "<secret:" secname[k] ">" substr(s, p + length(secret[k]))
		}
		return s
	}
	BEGIN {
		nsecret = 0
		secret[nsecret] = readkey(ENVIRON["MU_PRIV"]); secname[nsecret] = "private.key"; nsecret++
		n = split(ENVIRON["MU_PSKS"], files, "\n")
		for (i = 1; i <= n; i++) {
			if (files[i] == "") continue
			name = files[i]; sub(/^.*\//, "", name)
			secret[nsecret] = readkey(files[i]); secname[nsecret] = name; nsecret++
		}
	}
	{
		line = $0
		if (match(line, /^[ \t]*[A-Za-z]+[ \t]*=/)) {
			key = substr(line, 1, RLENGTH)
			rest = substr(line, RLENGTH + 1)
			lkey = tolower(key); gsub(/[ \t=]/, "", lkey)
			if (lkey == "privatekey" || lkey == "presharedkey") {
				value = rest; sub(/#.*/, "", value); value = trim(value)
				prefix = key; sub(/[ \t]*=$/, "", prefix)
				token = "<secret:unknown>"
				if (lkey == "privatekey" && value != "" && value == secret[0]) token = "<secret:private.key>"
				if (lkey == "presharedkey") {
					for (k = 1; k < nsecret; k++)
						if (value != "" && value == secret[k]) token = "<secret:" secname[k] ">"
				}
				print prefix " = " token
				next
			}
		}
		print scrub(line)
	}' "$MU_DIR/$MU_IF.conf"
}

# `wg show dump` with the private key and preshared keys replaced on the host.
mu_wg_dump() {
	mu_has wg || return 127
	mu_dump=$(wg show "$MU_IF" dump 2>/dev/null) || return $?
	# printf is a builtin: the dump (private key included) is never in an argv.
	printf '%s\n' "$mu_dump" | awk 'BEGIN { FS = "\t"; OFS = "\t" }
	NR == 1 { if ($1 != "(none)") $1 = "(redacted)"; print; next }
	{ if ($2 != "(none)") $2 = "(set)"; print }'
	mu_dump=
}

mu_ip_addr() { mu_has ip || return 127; ip -o addr show dev "$MU_IF" 2>/dev/null; }
# The host's own IPv4 addresses outside the mesh (its LAN): nodes behind the same NAT
# router peer over them.
mu_underlay() { mu_has ip || return 127; ip -o -4 addr show scope global 2>/dev/null | grep -v " $MU_IF "; return 0; }
mu_ip_route() {
	mu_has ip || return 127
	[ -e "/sys/class/net/$MU_IF" ] || return 1
	ip -4 route show table all dev "$MU_IF" 2>/dev/null
	ip -6 route show table all dev "$MU_IF" 2>/dev/null
	return 0
}

# mu_unit_state UNIT: "enabled=" and "active=" lines for UNIT, as `systemctl is-enabled`
# and `is-active` print them. Under a running systemd one `systemctl show` answers for both
# of meshup's units (those two would be a process and a request to PID 1 each, four per
# gather); without one, is-enabled reads the unit files itself.
mu_units_shown=
mu_units=
mu_unit_state() {
	if [ ! -d /run/systemd/system ]; then
		printf 'enabled=%s\n' "$(systemctl is-enabled "$1" 2>/dev/null)"
		printf 'active=%s\n' "$(systemctl is-active "$1" 2>/dev/null)"
		return 0
	fi
	if [ -z "$mu_units_shown" ]; then
		mu_units=$(systemctl show -p Id -p UnitFileState -p ActiveState "wg-quick@$MU_IF.service" "meshup-watchdog-$MU_IF.timer" 2>/dev/null)
		mu_units_shown=1
	fi
	# One block per unit, blank-line separated, its properties in any order.
	mu_id='' mu_ufs='' mu_as='' mu_en='' mu_ac=''
	while IFS= read -r mu_l; do
		case $mu_l in
		Id=*) mu_id=${mu_l#Id=} ;;
		UnitFileState=*) mu_ufs=${mu_l#*=} ;;
		ActiveState=*) mu_as=${mu_l#*=} ;;
		'')
			if [ "$mu_id" = "$1" ]; then mu_en=$mu_ufs mu_ac=$mu_as; fi
			mu_id='' mu_ufs='' mu_as=''
			;;
		esac
	done <<EOF
$mu_units

EOF
	printf 'enabled=%s\nactive=%s\n' "$mu_en" "$mu_ac"
}

mu_service() {
	if mu_has systemctl && [ -d /run/systemd/system ]; then
		printf 'manager=systemd\n'
		printf 'unit=wg-quick@%s\n' "$MU_IF"
		mu_unit_state "wg-quick@$MU_IF.service"
	elif mu_has rc-service; then
		printf 'manager=openrc\n'
		printf 'unit=wg-quick.%s\n' "$MU_IF"
		if rc-update show default 2>/dev/null | grep -q "^ *wg-quick\.$MU_IF "; then
			echo 'enabled=enabled'
		else
			echo 'enabled=disabled'
		fi
		if rc-service "wg-quick.$MU_IF" status >/dev/null 2>&1; then
			echo 'active=active'
		else
			echo 'active=inactive'
		fi
	else
		printf 'manager=none\n'
	fi
}

mu_forward() {
	mu_v4=
	mu_v6=
	read -r mu_v4 2>/dev/null </proc/sys/net/ipv4/ip_forward
	read -r mu_v6 2>/dev/null </proc/sys/net/ipv6/conf/all/forwarding
	printf 'ipv4=%s\nipv6=%s\n' "$mu_v4" "$mu_v6"
	mu_flag persisted -f /etc/sysctl.d/99-meshup-forward.conf
}

# Only meshup's own block of /etc/hosts (the lines between "# BEGIN meshup $MU_IF" and
# "# END meshup $MU_IF"), never the rest of the file. The block is read exactly as
# mu_hosts_block (lib.sh) writes and finds it: a BEGIN inside a block, an END outside one
# or a block without its END makes the file malformed, and meshup leaves it alone.
# MU_HOSTS_FILE exists for the tests; the runner never sets it.
mu_hosts_file() {
	mu_hf=${MU_HOSTS_FILE:-/etc/hosts}
	if [ -L "$mu_hf" ]; then
		echo 'file=symlink'
		printf 'target=%s\n' "$(readlink -f "$mu_hf" 2>/dev/null)"
		[ -e "$mu_hf" ] || return 0
	elif [ -f "$mu_hf" ]; then
		echo 'file=regular'
	elif [ -e "$mu_hf" ]; then
		echo 'file=other'
		return 0
	else
		echo 'file=absent'
		return 0
	fi
	awk -v begin="# BEGIN meshup $MU_IF" -v end="# END meshup $MU_IF" '
	$0 == begin {
		if (inside && bad == "") bad = "line " NR ": BEGIN inside the block"
		inside = 1; blocks++; next
	}
	$0 == end {
		if (!inside && bad == "") bad = "line " NR ": END without BEGIN"
		inside = 0; next
	}
	inside { print "line=" $0 }
	END {
		if (inside && bad == "") bad = "BEGIN without END"
		print "blocks=" blocks + 0
		if (bad != "") print "malformed=" bad
	}' "$mu_hf"
}

# The watchdog (lib.sh mu_put_file, mu_cron_line; scripts/watchdog.sh): the timers this
# host runs (systemd, Debian's cron reading /etc/cron.d, busybox crond and its crontabs
# dir), meshup's files for this interface (content: no secret in them), the shared script,
# other interfaces' watchdogs, the last tick and the fallbacks the watchdog recorded.
# meshup's routing script of the interface (its text and what it finds in place) and
# what it lives beside: NetworkManager, systemd-networkd's .netdev files, Docker's chain.
mu_route() {
	mu_f="$MU_DIR/meshup-route-$MU_IF.sh"
	if [ -f "$mu_f" ]; then
		sed 's/^/file=/' "$mu_f"
		sh "$mu_f" status 2>/dev/null | sed 's/^/status=/'
	fi
	if [ -d /etc/NetworkManager ] || mu_has NetworkManager; then
		echo 'nm=installed'
		if pidof NetworkManager >/dev/null 2>&1; then echo 'nm=running'; fi
		if [ -f "/etc/NetworkManager/conf.d/meshup-$MU_IF.conf" ]; then
			sed 's/^/nmconf=/' "/etc/NetworkManager/conf.d/meshup-$MU_IF.conf"
		fi
	fi
	for mu_f in /etc/systemd/network/*.netdev /run/systemd/network/*.netdev /usr/lib/systemd/network/*.netdev; do
		[ -f "$mu_f" ] || continue
		awk -v i="$MU_IF" '/^[ \t]*Name[ \t]*=/ { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*$/, "", v); if (v == i) { print FILENAME; exit } }' "$mu_f" | sed 's/^/netdev=/'
	done
	return 0
}

mu_watchdog() {
	if [ -d /run/systemd/system ] && mu_has systemctl; then echo 'timer=systemd'; fi
	cat /proc/[0-9]*/comm 2>/dev/null | grep -x -e cron -e crond | sort -u | sed 's/^/cron=/'
	for mu_d in /etc/crontabs /var/spool/cron/crontabs; do
		if [ -d "$mu_d" ]; then printf 'crontabs=%s\n' "$mu_d" && break; fi
	done
	[ -d /etc/cron.d ] && echo 'cron_d=yes'
	for mu_f in /usr/local/lib/meshup/watchdog.sh "$MU_DIR/$MU_IF.meshup-watch" \
		"/etc/systemd/system/meshup-watchdog-$MU_IF.service" "/etc/systemd/system/meshup-watchdog-$MU_IF.timer" \
		"/etc/cron.d/meshup-watchdog-$MU_IF"; do
		[ -f "$mu_f" ] || continue
		printf 'file=%s\n' "$mu_f"
		sed 's/^/line=/' "$mu_f"
	done
	for mu_f in /etc/crontabs/root /var/spool/cron/crontabs/root; do
		[ -f "$mu_f" ] && awk -v m="# meshup-watchdog $MU_IF" -v f="$mu_f" '
			substr($0, length($0) - length(m) + 1) == m { print "cronline=" f " " $0; next }
			/# meshup-watchdog [^ ]+$/ { print "other=" $NF }' "$mu_f"
	done
	for mu_f in /etc/systemd/system/meshup-watchdog-*.timer /etc/cron.d/meshup-watchdog-*; do
		[ -e "$mu_f" ] || continue
		mu_o=${mu_f##*/meshup-watchdog-}
		mu_o=${mu_o%.timer}
		[ "$mu_o" = "$MU_IF" ] || printf 'other=%s\n' "$mu_o"
	done
	if [ -f "/etc/systemd/system/meshup-watchdog-$MU_IF.timer" ] && mu_has systemctl; then
		mu_unit_state "meshup-watchdog-$MU_IF.timer"
	fi
	if [ -r "/run/meshup-watchdog-$MU_IF.tick" ]; then
		mu_at=$(sed -n 's/^at=//p' "/run/meshup-watchdog-$MU_IF.tick")
		[ -n "$mu_at" ] && mu_now && printf 'tick_age=%s\n' "$((mu_now_s - mu_at))"
	fi
	for mu_f in "$MU_KEYDIR"/fallback-*; do
		[ -r "$mu_f" ] && printf 'fallback=%s %s\n' "${mu_f##*/fallback-}" "$(head -n 1 "$mu_f")"
	done
	return 0
}

# ufw and firewall-cmd are Python programs (50-100 ms each to start): ask them only
# when they can be active. `ufw enable` sets ENABLED=yes in ufw.conf; firewalld is a
# running daemon or nothing.
mu_ufw() {
	mu_has ufw || return 127
	if [ -r /etc/ufw/ufw.conf ] && ! grep -qx 'ENABLED=yes' /etc/ufw/ufw.conf; then
		echo 'Status: inactive'
		return 0
	fi
	ufw status verbose 2>&1
}
# Asked once per gather (four sections want to know).
mu_fwd_running=
mu_firewalld_running() {
	if [ -z "$mu_fwd_running" ]; then
		mu_fwd_running=yes
		if mu_has pgrep; then pgrep -f 'firewalld' >/dev/null 2>&1 || mu_fwd_running=no; fi
	fi
	[ "$mu_fwd_running" = yes ]
}
mu_firewalld_state() {
	mu_has firewall-cmd || return 127
	if ! mu_firewalld_running; then
		echo 'not running'
		return 252
	fi
	firewall-cmd --state 2>&1
}
mu_firewalld_zone() {
	mu_has firewall-cmd || return 127
	mu_firewalld_running || return 3
	firewall-cmd --state >/dev/null 2>&1 || return 3
	firewall-cmd --list-all 2>&1
}
mu_nft() { mu_has nft || return 127; nft list ruleset 2>&1; }
mu_iptables_input() { mu_has iptables || return 127; iptables -w 5 -S INPUT 2>&1; }
mu_iptables_forward() { mu_has iptables || return 127; iptables -w 5 -S FORWARD 2>&1; }
mu_ip6tables_input() { mu_has ip6tables || return 127; ip6tables -w 5 -S INPUT 2>&1; }
mu_ip6tables_forward() { mu_has ip6tables || return 127; ip6tables -w 5 -S FORWARD 2>&1; }
# Every runtime zone (the default one is marked), the runtime policies, and meshup's own
# permanent zone and policy files (the only permanent state meshup compares).
mu_firewalld_zones() {
	mu_has firewall-cmd || return 127
	mu_firewalld_running || return 3
	firewall-cmd --list-all-zones 2>&1
}
mu_firewalld_meshup() {
	mu_has firewall-cmd || return 127
	mu_firewalld_running || return 3
	printf 'default=%s\n' "$(firewall-cmd --get-default-zone 2>/dev/null)"
	printf 'policies=%s\n' "$(firewall-cmd --get-policies 2>/dev/null)"
	for f in "/etc/firewalld/zones/meshup-$MU_IF.xml" "/etc/firewalld/policies/meshup-$MU_IF-fw.xml"; do
		[ -r "$f" ] && printf 'file=%s %s\n' "${f##*/}" "$(tr -d '\n' <"$f")"
	done
	return 0
}

mu_gather() {
	mu_mark gather:v1
	if [ -n "${MU_RUN-}" ]; then mu_hold; fi
	mu_section os-release mu_os_release
	mu_section commands mu_commands
	mu_section init mu_init
	mu_section wireguard mu_wireguard
	mu_section keys mu_keys
	mu_section files mu_files
	mu_section config mu_config
	mu_section wg-dump mu_wg_dump
	mu_section ip-addr mu_ip_addr
	mu_section ip-route mu_ip_route
	mu_section underlay mu_underlay
	mu_section service mu_service
	mu_section forward mu_forward
	mu_section hosts-file mu_hosts_file
	mu_section watchdog mu_watchdog
	mu_section route mu_route
	mu_section ufw mu_ufw
	mu_section firewalld-state mu_firewalld_state
	mu_section firewalld-zone mu_firewalld_zone
	mu_section nftables mu_nft
	mu_section iptables-input mu_iptables_input
	mu_section iptables-forward mu_iptables_forward
	mu_section ip6tables-input mu_ip6tables_input
	mu_section ip6tables-forward mu_ip6tables_forward
	mu_section firewalld-zones mu_firewalld_zones
	mu_section firewalld-meshup mu_firewalld_meshup
	mu_mark 'done'
}
mu_gather | sed -e 's/^@@/@@@/' -e "s/^$mu_m$MU_MARK:/@@meshup:/"
