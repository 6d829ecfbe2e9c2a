# meshup verify TCP probe (read-only; loads no perl module: src/scripts/linux.pl, put in
# front of it by src/verify/tcp.rs, supplies the clock, addresses and constants).
# Run by the `during` part of the probe:
#   perl -e "$MU_TCP_PL" PORT LINGER "ADDR..." "PEER=ADDR..."
#
# A TCP listener on this host's mesh addresses (PORT) runs in a detached child for
# LINGER seconds, answering every connection by closing it: the peers' probes connect to
# it while it lives. Meanwhile this process connects to every peer's mesh address on the
# same port, retrying until the connect completes or 8 s have passed (the peers'
# listeners start within a moment of each other, and a peer behind NAT is reachable only
# once its own first handshake is through: WireGuard retries a lost one after 5 s; a
# healthy mesh connects in milliseconds), and prints per address
#   @@meshup:verify:tcp PEER ADDR
#   ok | refused | timeout | error <reason>
# and for its own listener `@@meshup:verify:tcp-listen` then `ok` or `failed <reason>`.
# Only a completed connect is `ok`: a REJECT rule answers ECONNREFUSED, which is not a path.
# Linux: SOCK_STREAM 1, SOL_SOCKET 1, SO_REUSEADDR 2, SO_ERROR 4, F_GETFL 3, F_SETFL 4.

my ($port, $linger, $mine, $peers) = @ARGV;
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

# The listener: bound before the fork, so a failure is reported here.
my @listen;
my $listen_error = '';
for my $addr (split ' ', $mine) {
	my $p = packed($addr);
	my $s;
	if (!defined $p) {
		$listen_error = "$addr: not an address";
		next;
	}
	my $sa = sockaddr($p, $port);
	if (!($s = stream_socket($sa)) || !setsockopt($s, 1, 2, 1) || !bind($s, $sa) || !listen($s, 128)) {
		$listen_error = "$addr: $!";
		next;
	}
	push @listen, $s;
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

# The client: every peer at once, non-blocking, retried until the deadline.
my $deadline = $clock->() + 8;
my @todo;
for my $item (split ' ', $peers) {
	my ($peer, $addr) = split /=/, $item, 2;
	my $p = packed($addr);
	push @todo, { peer => $peer, addr => $addr, sa => defined $p ? sockaddr($p, $port) : undef,
		result => 'timeout' };
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
	fcntl($s, 4, fcntl($s, 3, 0) | $O_NONBLOCK);
	if (connect($s, $sa)) { $t->{result} = 'ok'; $t->{done} = 1; close $s; return }
	if ($! + 0 != $EINPROGRESS) { failed($t, $! + 0); return }
	$t->{sock} = $s;
	$t->{since} = $clock->();
}
attempt($_) for @todo;
while (grep { !$_->{done} } @todo) {
	my $now = $clock->();
	last if $now >= $deadline;
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
		my $err = unpack('i', getsockopt($t->{sock}, 1, 4) // pack('i', 0));
		close(delete $t->{sock});
		if ($err == 0) { $t->{result} = 'ok'; $t->{done} = 1; next }
		failed($t, $err);
	}
}
for my $t (@todo) {
	print "\@\@meshup:verify:tcp $t->{peer} $t->{addr}\n$t->{result}\n";
}
