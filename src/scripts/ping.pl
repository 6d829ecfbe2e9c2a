# meshup verify: one process that pings many addresses (read-only; run as root by
# src/scripts/probe.sh when perl is present; core perl only: Socket, no Time::HiRes).
#
#   perl -e "$MU_PERL" DIR COUNT DEADLINE N,ADDR,SIZE,DF ...
#
# Sends COUNT ICMP echo requests (SIZE payload bytes, DF set when DF is 1) to every ADDR,
# 0.1 s apart, over one raw socket per family, and waits for the replies until all came
# or DEADLINE seconds passed. For each target it writes DIR/N.out in the shape of
# the summary of iputils-ping (what src/verify/ping.rs reads) and DIR/N.rc (0 when a reply
# came, else 1). Clock: gettimeofday(2) through syscall() (core perl has no
# Time::HiRes) on the architectures below; elsewhere the time select() slept (Linux
# returns the time left), with the 1 s `time` bounding the run should that drift.
use strict;
use warnings;
use Config;
use Socket qw(:DEFAULT inet_pton inet_ntop pack_sockaddr_in6 unpack_sockaddr_in6);

my %gettimeofday = (x86_64 => 96, aarch64 => 169, i386 => 78, i486 => 78, i586 => 78,
	i686 => 78, arm => 78, armv7l => 78, armv6l => 78, ppc64le => 78, s390x => 78,
	riscv64 => 169, loongarch64 => 169);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my $nr = defined $arch ? $gettimeofday{$arch} : undef;

# Seconds since the epoch with microseconds, or undef.
sub now {
	return undef unless $nr;
	my $tv = pack("l!l!", 0, 0);
	return undef unless syscall($nr, $tv, 0) == 0;
	my ($s, $us) = unpack("l!l!", $tv);
	return $s + $us / 1e6;
}

my ($dir, $count, $deadline, @args) = @ARGV;
my $id = $$ & 0xffff;
my ($s4, $s6);
socket($s4, PF_INET, SOCK_RAW, 1) or undef $s4;
socket($s6, PF_INET6, SOCK_RAW, 58) or undef $s6;
my @tg;
for my $arg (@args) {
	my ($n, $addr, $size, $df) = split /,/, $arg;
	my $v6 = index($addr, ":") >= 0;
	my $packed = $v6 ? inet_pton(AF_INET6, $addr) : inet_aton($addr);
	my $t = { n => $n, addr => $addr, size => $size || 56, df => $df, v6 => $v6,
		sent => 0, rtt => [], err => [], at => {}, done => 0 };
	if (!defined $packed || !defined($v6 ? $s6 : $s4)) {
		push @{$t->{err}}, "ping: $addr: cannot send (no raw socket or bad address)";
		$t->{done} = 1;
	} else {
		$t->{sa} = $v6 ? pack_sockaddr_in6(0, $packed) : pack_sockaddr_in(0, $packed);
	}
	push @tg, $t;
}
exit 0 unless @tg;

sub csum {
	my $d = shift;
	$d .= "\0" if length($d) % 2;
	my $s = 0;
	$s += $_ for unpack("n*", $d);
	$s = ($s >> 16) + ($s & 0xffff) while $s >> 16;
	return ~$s & 0xffff;
}

sub send_one {
	my ($i, $clock) = @_;
	my $t = $tg[$i];
	my $seq = ($i << 4) | ($t->{sent} & 15);
	my $pkt = pack("CCnnn", $t->{v6} ? 128 : 8, 0, 0, $id, $seq) . ("U" x $t->{size});
	substr($pkt, 2, 2) = pack("n", csum($pkt)) unless $t->{v6};
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
	my $from = recv($s, my $buf, 65535, 0);
	return unless defined $from;
	my $off = 0;
	if (!$v6) {
		return if length($buf) < 28;
		$off = (ord(substr($buf, 0, 1)) & 15) * 4;
	}
	return if length($buf) < $off + 8;
	my ($type, $code, undef, $rid, $rseq) = unpack("CCnnn", substr($buf, $off, 8));
	if ($type == ($v6 ? 129 : 0)) {
		my $t = target_of($rid, $rseq);
		return unless defined $t;
		push @{$t->{rtt}}, ($clock - delete $t->{at}{$rseq}) * 1000;
		$t->{done} = 1 if @{$t->{rtt}} >= $count;
		return;
	}
	my $peer = eval { $v6 ? inet_ntop(AF_INET6, (unpack_sockaddr_in6($from))[1])
		: inet_ntoa((unpack_sockaddr_in($from))[1]) } || "?";
	if (!$v6 && $type == 3 && length($buf) >= $off + 36) {
		my $inner = $off + 8 + (ord(substr($buf, $off + 8, 1)) & 15) * 4;
		return if length($buf) < $inner + 8;
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
}

# Packet k to target i leaves at k * round + i * gap: 1 ms apart, so a burst never
# queues in WireGuard and inflates the RTTs it measures.
my $gap = 0.001;
my $round = @tg * $gap > 0.1 ? @tg * $gap : 0.1;
my $t0 = now();
my $clock = 0;
my $started = time;
my ($k, $i) = (0, 0);
my $next = 0;
while ($clock < $deadline && time - $started <= $deadline + 1) {
	while ($k < $count && $clock >= $next) {
		if (!$tg[$i]{done}) {
			my $t = defined $t0 ? now() : undef;
			send_one($i, defined $t ? $t - $t0 : $clock);
		}
		if (++$i > $#tg) { $i = 0; $k++; }
		$next = $k * $round + $i * $gap;
	}
	last unless grep { !$_->{done} } @tg;
	my $rin = "";
	vec($rin, fileno($s4), 1) = 1 if $s4;
	vec($rin, fileno($s6), 1) = 1 if $s6;
	my $wait = ($k < $count ? $next : $deadline) - $clock;
	$wait = 0 if $wait < 0;
	my ($found, $left) = select(my $rout = $rin, undef, undef, $wait);
	$left = 0 unless defined $left && $left >= 0 && $left <= $wait;
	my $t = defined $t0 ? now() : undef;
	$clock = defined $t ? $t - $t0 : $clock + $wait - $left;
	next unless $found && $found > 0;
	receive($s4, 0, $clock) if $s4 && vec($rout, fileno($s4), 1);
	receive($s6, 1, $clock) if $s6 && vec($rout, fileno($s6), 1);
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
