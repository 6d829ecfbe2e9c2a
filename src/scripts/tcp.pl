# meshup verify TCP probe (read-only; loads no perl module: src/scripts/linux.pl, put in
# front of it by src/verify/tcp.rs, supplies the clock, addresses and constants).
# Run by the `during` part of the probe:
#   perl -e "$MU_TCP_PL" PORT LINGER "ADDR..." "PEER=ADDR[,PORT[,d]]..." ["EXTRA..."]
#
# A TCP listener on this host's mesh addresses (PORT) runs in a detached child for
# LINGER seconds, answering every connection by closing it: the peers' probes connect to
# it while it lives. It binds with SO_REUSEPORT, so the listener of a verify started
# while an earlier one's still lingers binds too (both answer). Meanwhile this process
# connects to every peer's mesh address on the same port, retrying until the connect
# completes or 8 s have passed (the peers' listeners start within a moment of each other,
# and a peer behind NAT is reachable only once its own first handshake is through:
# WireGuard retries a lost one after 5 s; a healthy mesh connects in milliseconds), and
# prints per address
#   @@meshup:verify:tcp PEER ADDR[ PORT]
#   ok | refused | timeout | error <reason>
# and for its own listener `@@meshup:verify:tcp-listen` then `ok` or `failed <reason>`.
# Only a completed connect is `ok`: a REJECT rule answers ECONNREFUSED, which is not a path.
#
# With a mesh ACL, EXTRA lists more ports the listener binds on the mesh addresses (the
# ACL's TCP ports; a port a service already holds is left to that service), and a peer
# item may name its port and whether the ACL should deny it: PEER=ADDR,PORT[,d]. A
# denied connect is tried for 3 s only (it should time out); its record line carries the
# port when it is not PORT.

my ($port, $linger, $mine, $peers, $extra) = @ARGV;
$extra //= '';
$| = 1;
# Whole seconds only where gettimeofday is unknown (a refused connect then waits a
# second per retry).
my $clock = defined now() ? \&now : sub { time };

sub stream_socket {
	my ($sa) = @_;
	my $s;
	socket($s, unpack("S", $sa), 1, 0) or return undef;
	return $s;
}

# A listening socket on packed address $p, port $port, or undef ($! says why). Only the
# check's own port is shared (SO_REUSEPORT) with an earlier verify's listener: on an ACL
# port a service of the host's may share that way, and its clients must not be answered
# by this listener.
sub listener {
	my ($p, $port, $shared) = @_;
	my $sa = sockaddr($p, $port);
	my $s = stream_socket($sa) or return undef;
	setsockopt($s, $SOL_SOCKET, $SO_REUSEADDR, 1);
	setsockopt($s, $SOL_SOCKET, $SO_REUSEPORT, 1) if $shared;
	return bind($s, $sa) && listen($s, 128) ? $s : undef;
}

# The listener: bound before the fork, so a failure is reported here.
my @listen;
my $listen_error = '';
for my $addr (split ' ', $mine) {
	my $p = packed($addr);
	if (!defined $p) {
		$listen_error = "$addr: not an address";
		next;
	}
	my $s = listener($p, $port, 1);
	if (!$s) {
		$listen_error = "$addr: $!";
		next;
	}
	push @listen, $s;
	for my $x (split ' ', $extra) {
		# In use: the service on that port answers the peers instead.
		my $s2 = listener($p, $x, 0);
		push @listen, $s2 if $s2;
	}
}
print "\@\@meshup:verify:tcp-listen\n", ($listen_error eq '' && @listen ? "ok\n" : "failed $listen_error\n");

my $pid = @listen ? fork() : undef;
if (defined $pid && $pid == 0) {
	# Detached: no fd of the SSH channel stays open, so the probe ends without waiting.
	setpgrp(0, 0);
	open(STDIN, '<', '/dev/null');
	open(STDOUT, '>', '/dev/null');
	open(STDERR, '>', '/dev/null');
	my $end = $clock->() + $linger;
	while ((my $left = $end - $clock->()) > 0) {
		my $rin = '';
		vec($rin, fileno($_), 1) = 1 for @listen;
		next unless select(my $rout = $rin, undef, undef, $left) > 0;
		for my $s (@listen) {
			next unless vec($rout, fileno($s), 1);
			my $c;
			close($c) if accept($c, $s);
		}
	}
	exit 0;
}
close($_) for @listen;

# The client: every peer at once, non-blocking, retried until its deadline.
my $start = $clock->();
my @todo;
for my $item (split ' ', $peers) {
	my ($peer, $rest) = split /=/, $item, 2;
	my ($addr, $p, $flag) = split /,/, $rest // '';
	$p //= $port;
	my $packed = packed($addr // '');
	push @todo, { peer => $peer, addr => $addr // '', port => $p,
		sa => defined $packed ? sockaddr($packed, $p) : undef, result => 'timeout',
		deadline => $start + (($flag // '') eq 'd' ? 3 : 8) };
}

sub failed {
	my ($t, $err) = @_;
	$t->{result} = $err == $ECONNREFUSED ? 'refused' : do { local $! = $err; "error $!" };
	$t->{retry} = $clock->() + 0.3;
}

sub attempt {
	my ($t) = @_;
	my $sa = $t->{sa} or do { $t->{result} = 'error bad address'; $t->{done} = 1; return };
	my $s = stream_socket($sa) or do { $t->{result} = "error $!"; $t->{done} = 1; return };
	fcntl($s, 4, fcntl($s, 3, 0) | $O_NONBLOCK);    # F_SETFL, F_GETFL
	if (connect($s, $sa)) { $t->{result} = 'ok'; $t->{done} = 1; close $s; return }
	if ($! + 0 != $EINPROGRESS) { failed($t, $! + 0); return }
	$t->{sock} = $s;
	$t->{since} = $clock->();
}
attempt($_) for @todo;
while (grep { !$_->{done} } @todo) {
	my $now = $clock->();
	for my $t (grep { !$_->{done} && $now >= $_->{deadline} } @todo) {
		close(delete $t->{sock}) if $t->{sock};
		$t->{done} = 1;
	}
	last unless grep { !$_->{done} } @todo;
	# A SYN lost (a handshake still under way, a loaded host) is retried after 1 s, not
	# after the kernel's next retransmission (3 s later).
	for my $t (grep { $_->{sock} && $now - $_->{since} >= 1 } @todo) {
		close(delete $t->{sock});
		$t->{retry} = $now;
	}
	for my $t (grep { !$_->{done} && !$_->{sock} && ($_->{retry} // 0) <= $now } @todo) {
		attempt($t);
	}
	my $win = '';
	vec($win, fileno($_->{sock}), 1) = 1 for grep { $_->{sock} } @todo;
	my $n = select(undef, my $wout = $win, undef, 0.2);
	next unless $n && $n > 0;
	for my $t (grep { $_->{sock} } @todo) {
		next unless vec($wout, fileno($t->{sock}), 1);
		my $err = unpack('i', getsockopt($t->{sock}, $SOL_SOCKET, $SO_ERROR) // pack('i', 0));
		close(delete $t->{sock});
		if ($err == 0) { $t->{result} = 'ok'; $t->{done} = 1; next }
		failed($t, $err);
	}
}
for my $t (@todo) {
	my $at = $t->{port} == $port ? '' : " $t->{port}";
	print "\@\@meshup:verify:tcp $t->{peer} $t->{addr}$at\n$t->{result}\n";
}
