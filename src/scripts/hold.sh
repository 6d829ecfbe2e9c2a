# meshup's run hold, shared by the gather (gather.sh, which takes it for apply: mu_hold)
# and the apply phases (lib.sh, which stop when another run has it). POSIX sh; placed in
# front of both scripts, after their values (MU_IF, and MU_RUN for apply).
#
# apply holds /run/meshup-IF.lock (runtime state; MU_RUNDIR: tests only) for a whole run
# through a process of its own, which describes the run in it:
# "run=ID pid=PID conn=PID user=NAME since=EPOCH by=USER@HOST".
MU_HOLD="${MU_RUNDIR:-/run}/meshup-$MU_IF.lock"

# One field of that line.
mu_hold_field() { head -n 1 "$MU_HOLD" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p"; }

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
