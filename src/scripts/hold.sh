# shellcheck disable=SC2034 # MU_HOLD_STATE is read by the scripts this fragment precedes
# meshup's run hold, shared by the gather (gather.sh, which takes it for apply: mu_hold),
# apply's hold exec (the run's first host, see session.rs) and the apply phases (lib.sh,
# which stop when another run has it, and whose last script lets go: mu_release). POSIX
# sh; placed in front of each script, after its values (MU_IF; MU_RUN and MU_RUN_BY for
# apply).
#
# apply holds /run/meshup-IF.lock (runtime state; MU_RUNDIR: tests only) for a whole run
# through a process of its own, which describes the run in it:
# "run=ID pid=PID conn=PID user=NAME since=EPOCH by=USER@HOST".
MU_HOLD="${MU_RUNDIR:-/run}/meshup-$MU_IF.lock"
# What mu_hold got: mine (this run holds the host), other (another run does), or
# unsupported (no flock, or no sshd among this shell's ancestors: nothing to hold with).
MU_HOLD_STATE=

# One field of that line (shell builtins only: the gather and the hold exec call it often).
mu_hold_field() {
	mu_hl=
	read -r mu_hl 2>/dev/null <"$MU_HOLD"
	case " $mu_hl " in
	*" $1="*)
		mu_hl=${mu_hl#*"$1="}
		printf '%s\n' "${mu_hl%% *}"
		;;
	esac
}

# The holder that wrote the line is alive, but the run it holds the hold for has lost its
# connection: it lets go within a second.
mu_hold_stale() {
	mu_h=$(mu_hold_field pid)
	mu_c=$(mu_hold_field conn)
	[ -n "$mu_h" ] && [ -n "$mu_c" ] && [ -d "/proc/$mu_h" ] && [ ! -d "/proc/$mu_c" ]
}

# Another run has the hold: its holder lives, its run's connection lives, it is not this
# run (MU_RUN), and the lock is really taken.
mu_hold_other() {
	command -v flock >/dev/null 2>&1 || return 1
	mu_h=$(mu_hold_field pid)
	[ -n "$mu_h" ] && [ -d "/proc/$mu_h" ] || return 1
	[ "$(mu_hold_field run)" != "${MU_RUN-}" ] || return 1
	! mu_hold_stale && ! flock -n "$MU_HOLD" true 2>/dev/null
}

# This run (MU_RUN) holds the hold already: an earlier exec of it on this host took it.
mu_hold_mine() {
	mu_h=$(mu_hold_field pid)
	[ -n "${MU_RUN-}" ] && [ -n "$mu_h" ] && [ -d "/proc/$mu_h" ] &&
		[ "$(mu_hold_field run)" = "$MU_RUN" ] && ! mu_hold_stale
}

# The PID of the sshd process serving this SSH connection: the first sshd,
# sshd-session or dropbear among this shell's ancestors (through sudo and login shells).
mu_connection() {
	mu_p=$$
	while [ "${mu_p:-0}" -gt 1 ]; do
		mu_p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$mu_p/status" 2>/dev/null)
		case $(cat "/proc/${mu_p:-0}/comm" 2>/dev/null) in
		sshd* | dropbear)
			echo "$mu_p"
			return 0
			;;
		esac
	done
	return 1
}

# mu_hold (apply only, MU_RUN set): takes the run hold for the whole run and says what it
# got in MU_HOLD_STATE. A process of its own keeps it until the run's SSH connection
# closes (its sshd process exits; checked every second) or the run lets go (mu_release:
# its last script, or the run itself when it cannot hold every host it changes), so a
# second run finds it at its own gather, before it shows a plan, and two runs never
# interleave their phases on a host. Each phase still takes the interface's lock in
# MU_DIR itself.
mu_hold() {
	MU_HOLD_STATE=unsupported
	command -v flock >/dev/null 2>&1 || return 0
	mu_conn=$(mu_connection) || return 0
	if mu_hold_mine; then
		MU_HOLD_STATE=mine
		return 0
	fi
	exec 8>>"$MU_HOLD" || return 0
	mu_got=0
	if flock -n 8; then
		mu_got=1
	elif mu_hold_stale; then
		# A holder whose run has gone is meshup's own: stopping it lets go of the lock.
		kill "$(mu_hold_field pid)" 2>/dev/null
		for _ in 1 2 3 4 5; do
			if flock -n 8; then mu_got=1 && break; fi
			sleep 0.2
		done
	fi
	if [ "$mu_got" = 1 ]; then
		# The holder keeps fd 8 (the lock); nothing it starts does.
		(
			while [ -d "/proc/$mu_conn" ]; do sleep 1 8>&-; done
		) </dev/null >/dev/null 2>&1 3>&- &
		if printf 'run=%s pid=%s conn=%s user=%s since=%s by=%s\n' "$MU_RUN" "$!" "$mu_conn" \
			"$(id -un 2>/dev/null)" "$(date +%s)" "${MU_RUN_BY-}" >"$MU_HOLD"; then
			MU_HOLD_STATE=mine
		else
			kill "$!"
		fi
	else
		MU_HOLD_STATE=other
	fi
	exec 8>&-
}

# mu_release: lets go of this run's hold (only this run's: another run's is left alone).
mu_release() {
	[ -n "${MU_RUN-}" ] && [ "$(mu_hold_field run)" = "$MU_RUN" ] || return 0
	mu_h=$(mu_hold_field pid)
	[ -n "$mu_h" ] && kill "$mu_h" 2>/dev/null
	return 0
}
