# mu_wait_lock TIMEOUT NAME KIND:PATH...  (POSIX sh: dash, bash, busybox ash)
# Waits while another process holds a package manager's lock, at most TIMEOUT seconds.
# KIND is how PATH is held:
#   fcntl    an fcntl/flock lock on the file (apt/dpkg, rpm, apk), found in /proc/locks
#            by inode; flock(1) would not see apt's fcntl locks, and lsof/fuser are
#            often missing on minimal hosts
#   pidfile  the file holds a PID and is held while that process lives (zypper, yum)
#   exists   held while the file exists (pacman's db.lck)
# Prints "@@meshup:progress:waiting for the NAME lock held by PID N (comm)" when it
# starts waiting and every 10 s; on timeout prints "@@meshup:fail:..." and returns 75
# (EX_TEMPFAIL). Returns 0 as soon as no lock is held.
mu_lock_comm() {
	mu_lc=$(cat "/proc/$1/comm" 2>/dev/null) || mu_lc=
	if [ -n "$mu_lc" ]; then printf 'PID %s (%s)' "$1" "$mu_lc"; else printf 'PID %s' "$1"; fi
}
mu_lock_holder() {
	for mu_lh_spec in "$@"; do
		mu_lh_kind=${mu_lh_spec%%:*}
		mu_lh_path=${mu_lh_spec#*:}
		case $mu_lh_kind in
		fcntl)
			if [ ! -e "$mu_lh_path" ] || [ ! -r /proc/locks ]; then continue; fi
			# shellcheck disable=SC2012 # ls -i is the portable way to an inode number
			mu_lh_inode=$(ls -di "$mu_lh_path" 2>/dev/null | awk '{ print $1 }')
			[ -n "$mu_lh_inode" ] || continue
			# "1: POSIX ADVISORY WRITE 812 08:01:1234 0 EOF"; waiters have "->" in $2.
			mu_lh_pid=$(awk -v ino="$mu_lh_inode" -v self="$$" '
				$2 != "->" { n = split($6, id, ":"); if (id[n] == ino && $5 != self) { print $5; exit } }
			' /proc/locks 2>/dev/null)
			if [ -n "$mu_lh_pid" ]; then mu_lock_comm "$mu_lh_pid"; return 0; fi
			;;
		pidfile)
			[ -r "$mu_lh_path" ] || continue
			mu_lh_pid=$(tr -cd '0-9' <"$mu_lh_path" 2>/dev/null)
			if [ -n "$mu_lh_pid" ] && [ -d "/proc/$mu_lh_pid" ]; then
				mu_lock_comm "$mu_lh_pid"
				return 0
			fi
			;;
		exists)
			if [ -e "$mu_lh_path" ]; then
				printf 'whoever created %s' "$mu_lh_path"
				return 0
			fi
			;;
		esac
	done
	return 1
}
mu_wait_lock() {
	mu_wl_timeout=$1
	mu_wl_name=$2
	shift 2
	mu_wl_waited=0
	mu_wl_next=0
	while mu_wl_holder=$(mu_lock_holder "$@"); do
		if [ "$mu_wl_waited" -ge "$mu_wl_timeout" ]; then
			printf '@@meshup:fail:the %s lock is held by %s for more than %s s\n' \
				"$mu_wl_name" "$mu_wl_holder" "$mu_wl_timeout"
			return 75
		fi
		if [ "$mu_wl_waited" -ge "$mu_wl_next" ]; then
			printf '@@meshup:progress:waiting for the %s lock held by %s\n' "$mu_wl_name" "$mu_wl_holder"
			mu_wl_next=$((mu_wl_waited + 10))
		fi
		sleep 1
		mu_wl_waited=$((mu_wl_waited + 1))
	done
	return 0
}
