# meshup verify: one process that pings many addresses (read-only; run as root by
# src/scripts/probe.sh when perl is present). It loads NO module: at 50 hosts, loading
# Socket, Config, strict and warnings cost ~30 ms of CPU per host, more than the pings.
# Linux only: socket constants, sockaddr layouts and syscall numbers are spelled out.
# (The tests check it under `perl -Mstrict -Mwarnings`.)
#
#   perl -e "$MU_PERL" DIR COUNT DEADLINE N,ADDR,SIZE,DF[,DELAY] ...
#
# Sends one ICMP echo request (SIZE payload bytes, DF set when DF is 1) to every ADDR, 1 ms
# apart (DELAY seconds later for a target that has one), over one raw socket per family;
# to an ADDR that has not answered, another one every 0.4 s (a first packet can wait on
# WireGuard's handshake), up to COUNT in all, and waits until every ADDR answered once or
# DEADLINE seconds passed (after the latest DELAY). A healthy mesh costs one echo per peer.
# For each target it writes DIR/N.out in the shape of the summary of iputils-ping (what
# src/verify/ping.rs reads) and DIR/N.rc (0 when a reply came, else 1). Clock:
# gettimeofday(2) through syscall() (core perl has no Time::HiRes), its number chosen by
# the ELF machine of the perl binary; elsewhere the time select() slept (Linux returns the
# time left), with the 1 s `time` bounding the run should that drift. `now` comes from
# src/scripts/linux.pl, which src/verify/script.rs puts in front of this file with
# packed() and sockaddr().

sub from_text { # sockaddr -> address text
	my $sa = shift;
	return "?" unless defined $sa && length($sa) >= 8;
	my $family = unpack("S", $sa);
	return join(".", unpack("C4", substr($sa, 4, 4))) if $family == 2;
	return join(":", map { sprintf("%x", $_) } unpack("n8", substr($sa, 8, 16)))
		if $family == 10 && length($sa) >= 24;
	return "?";
}

my ($dir, $count, $deadline, @args) = @ARGV;
my $id = $$ & 0xffff;
my ($s4, $s6);
socket($s4, 2, 3, 1) or undef $s4;
socket($s6, 10, 3, 58) or undef $s6;
# A raw ICMP socket gets every ICMP message the host receives, the peers' own echo
# requests and replies to other pingers included: let the kernel pass only echo replies
# and the errors read below (ICMP_FILTER / ICMP6_FILTER: a set bit blocks that type).
setsockopt($s4, 255, 1, pack("L", 0xffffffff & ~(1 << 0 | 1 << 3))) if $s4;
setsockopt($s6, 58, 1, pack("L8", ~(1 << 1 | 1 << 2) & 0xffffffff, (0xffffffff) x 3,
	~(1 << 1) & 0xffffffff, (0xffffffff) x 3)) if $s6;
my @tg;
for my $arg (@args) {
	my ($n, $addr, $size, $df, $delay) = split /,/, $arg;
	my $v6 = index($addr, ":") >= 0;
	my $packed = packed($addr);
	my $t = { n => $n, addr => $addr, size => $size || 56, df => $df, v6 => $v6,
		delay => $delay || 0, sent => 0, rtt => [], err => [], at => {}, done => 0 };
	if (!defined $packed || !defined($v6 ? $s6 : $s4)) {
		push @{$t->{err}}, "ping: $addr: cannot send (no raw socket or bad address)";
		$t->{done} = 1;
	} else {
		$t->{sa} = sockaddr($packed);
	}
	push @tg, $t;
}
exit 0 unless @tg;

# The internet checksum of an echo request: its 8-byte header plus SIZE bytes of "U"
# (summed once per size: perl adds 16-bit words slowly).
my %payload_sum;
sub csum {
	my ($hdr, $size) = @_;
	$payload_sum{$size} //= do {
		my $d = "U" x $size;
		$d .= "\0" if $size % 2;
		my $sum = 0;
		$sum += $_ for unpack("n*", $d);
		$sum;
	};
	my $s = $payload_sum{$size};
	$s += $_ for unpack("n*", $hdr);
	$s = ($s >> 16) + ($s & 0xffff) while $s >> 16;
	return ~$s & 0xffff;
}

sub send_one {
	my ($i, $clock) = @_;
	my $t = $tg[$i];
	my $seq = ($i << 4) | ($t->{sent} & 15);
	my $hdr = pack("CCnnn", $t->{v6} ? 128 : 8, 0, 0, $id, $seq);
	substr($hdr, 2, 2) = pack("n", csum($hdr, $t->{size})) unless $t->{v6};
	my $pkt = $hdr . ("U" x $t->{size});
	my $s = $t->{v6} ? $s6 : $s4;
	# IP(V6)_MTU_DISCOVER: 2 = DO (DF set, never fragment), 1 = WANT (the default of ping).
	setsockopt($s, $t->{v6} ? 41 : 0, $t->{v6} ? 23 : 10, $t->{df} ? 2 : 1);
	$t->{sent}++;
	if (send($s, $pkt, 0, $t->{sa})) {
		$t->{at}{$seq} = $clock;
	} else {
		my $e = "$!";
		push @{$t->{err}}, $e =~ /too long/i ? "ping: local error: message too long, mtu=?"
			: "ping: sendmsg: $e";
		$t->{done} = 1;
	}
}

# The target and packet an ICMP message (or the packet an error quotes) is about.
sub target_of {
	my ($rid, $rseq) = @_;
	return undef unless $rid == $id;
	my $t = $tg[$rseq >> 4];
	return defined $t && exists $t->{at}{$rseq} ? $t : undef;
}

sub error_for {
	my ($t, $line) = @_;
	return unless defined $t;
	push @{$t->{err}}, $line unless grep { $_ eq $line } @{$t->{err}};
}

sub receive {
	my ($s, $v6, $clock) = @_;
	# MSG_DONTWAIT: the caller drains the socket until nothing is left.
	my $from = recv($s, my $buf, 65535, 0x40);
	return 0 unless defined $from;
	my $off = 0;
	if (!$v6) {
		return 1 if length($buf) < 28;
		$off = (ord(substr($buf, 0, 1)) & 15) * 4;
	}
	return 1 if length($buf) < $off + 8;
	my ($type, $code, undef, $rid, $rseq) = unpack("CCnnn", substr($buf, $off, 8));
	if ($type == ($v6 ? 129 : 0)) {
		my $t = target_of($rid, $rseq);
		return 1 unless defined $t;
		push @{$t->{rtt}}, ($clock - delete $t->{at}{$rseq}) * 1000;
		$t->{done} = 1;
		return 1;
	}
	my $peer = from_text($from);
	if (!$v6 && $type == 3 && length($buf) >= $off + 36) {
		my $inner = $off + 8 + (ord(substr($buf, $off + 8, 1)) & 15) * 4;
		return 1 if length($buf) < $inner + 8;
		my (undef, undef, undef, $iid, $iseq) = unpack("CCnnn", substr($buf, $inner, 8));
		my $t = target_of($iid, $iseq);
		if ($code == 4) {
			my $mtu = unpack("n", substr($buf, $off + 6, 2));
			error_for($t, "From $peer icmp_seq=1 Frag needed and DF set (mtu = $mtu)");
		} else {
			error_for($t, "From $peer icmp_seq=1 Destination Host Unreachable");
		}
	} elsif ($v6 && ($type == 1 || $type == 2) && length($buf) >= 56) {
		my (undef, undef, undef, $iid, $iseq) = unpack("CCnnn", substr($buf, 48, 8));
		my $t = target_of($iid, $iseq);
		if ($type == 2) {
			my $mtu = unpack("N", substr($buf, 4, 4));
			error_for($t, "From $peer icmp_seq=1 Packet too big: mtu=$mtu");
		} else {
			error_for($t, "From $peer icmp_seq=1 Destination unreachable");
		}
	}
	return 1;
}

# First requests 1 ms apart, so a burst never queues in WireGuard and inflates the RTTs
# it measures; then one more to each silent target every $resend seconds.
my $gap = 0.001;
my $resend = 0.4;
my $end = $deadline;
for my $i (0 .. $#tg) {
	$tg[$i]{next} = $i * $gap + $tg[$i]{delay};
	$end = $deadline + $tg[$i]{delay} if $deadline + $tg[$i]{delay} > $end;
}
my $t0 = now();
my $clock = 0;
my $started = time;
while ($clock < $end && time - $started <= $end + 1) {
	my $due = $end;
	for my $i (0 .. $#tg) {
		my $t = $tg[$i];
		next if $t->{done} || $t->{sent} >= $count;
		if ($clock >= $t->{next}) {
			my $now = defined $t0 ? now() : undef;
			send_one($i, defined $now ? $now - $t0 : $clock);
			$t->{next} = $clock + $resend;
		}
		$due = $t->{next} if !$t->{done} && $t->{sent} < $count && $t->{next} < $due;
	}
	last unless grep { !$_->{done} } @tg;
	my $rin = "";
	vec($rin, fileno($s4), 1) = 1 if $s4;
	vec($rin, fileno($s6), 1) = 1 if $s6;
	my $wait = $due - $clock;
	$wait = 0 if $wait < 0;
	my ($found, $left) = select(my $rout = $rin, undef, undef, $wait);
	$left = 0 unless defined $left && $left >= 0 && $left <= $wait;
	my $t = defined $t0 ? now() : undef;
	$clock = defined $t ? $t - $t0 : $clock + $wait - $left;
	next unless $found && $found > 0;
	if ($s4 && vec($rout, fileno($s4), 1)) { 1 while receive($s4, 0, $clock) }
	if ($s6 && vec($rout, fileno($s6), 1)) { 1 while receive($s6, 1, $clock) }
}

for my $t (@tg) {
	my @r = sort { $a <=> $b } @{$t->{rtt}};
	my $got = scalar @r;
	my $sent = $t->{sent};
	my $loss = $sent ? int(100 * ($sent - $got) / $sent) : 100;
	open(my $out, ">", "$dir/$t->{n}.out") or next;
	print $out "PING $t->{addr} $t->{size} data bytes\n";
	print $out "$_\n" for @{$t->{err}};
	print $out "\n--- $t->{addr} ping statistics ---\n";
	printf $out "%d packets transmitted, %d received, %d%% packet loss, time %dms\n",
		$sent, $got, $loss, $clock * 1000;
	if ($got) {
		my $sum = 0;
		$sum += $_ for @r;
		printf $out "rtt min/avg/max/mdev = %.3f/%.3f/%.3f/0.000 ms\n", $r[0], $sum / $got, $r[-1];
	}
	close $out;
	open(my $rc, ">", "$dir/$t->{n}.rc") or next;
	print $rc $got ? "0\n" : "1\n";
	close $rc;
}
