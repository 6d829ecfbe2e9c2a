# meshup verify TCP probe (read-only, core perl only). Run by the `during` part of the
# probe (src/verify/tcp.rs): perl -e "$MU_TCP_PL" PORT LINGER "ADDR..." "PEER=ADDR..."
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
#
# With a mesh ACL, EXTRA lists more ports the listener binds on the mesh addresses (the
# ACL's TCP ports; a port a service already holds is left to that service), and a peer
# item may name its port and whether the ACL should deny it: PEER=ADDR,PORT[,d]. A
# denied connect is tried for 3 s only (it should time out); its record line carries the
# port: `@@meshup:verify:tcp PEER ADDR PORT`.
use strict;
use warnings;
use Socket qw(:all);
use Errno qw(ECONNREFUSED EINPROGRESS);
use POSIX qw(setsid _exit);

my ($port, $linger, $mine, $peers, $extra) = @ARGV;
$extra //= '';
$| = 1;
# Sub-second clock where Time::HiRes is installed (it is core perl, but some minimal
# images split it out); whole seconds otherwise.
# Debian's perl-base has no Time::HiRes: then `now` (src/scripts/clock.pl, put in front
# of this file by src/verify/tcp.rs); whole seconds only where neither works (a refused
# connect would then wait a second per retry).
my $clock = eval { require Time::HiRes; \&Time::HiRes::time }
    || (defined now() ? \&now : sub { time });

sub sockaddr_of {
    my ($addr, $p) = @_;
    my ($err, @res) = getaddrinfo($addr, $p // $port, { flags => AI_NUMERICHOST, socktype => SOCK_STREAM });
    return $err ? undef : $res[0];
}

# The listener: bound before the fork, so a failure is reported here.
my @listen;
my $listen_error = '';
for my $addr (split ' ', $mine) {
    my $ai = sockaddr_of($addr) or next;
    my $s;
    if (!socket($s, $ai->{family}, SOCK_STREAM, 0)
        || !setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1)
        || !bind($s, $ai->{addr}) || !listen($s, 128)) {
        $listen_error = "$addr: $!";
        next;
    }
    push @listen, $s;
    for my $p (split ' ', $extra) {
        my $ai2 = sockaddr_of($addr, $p) or next;
        my $s2;
        socket($s2, $ai2->{family}, SOCK_STREAM, 0) or next;
        setsockopt($s2, SOL_SOCKET, SO_REUSEADDR, 1);
        # In use: the service on that port answers the peers instead.
        push @listen, $s2 if bind($s2, $ai2->{addr}) && listen($s2, 128);
    }
}
print "\@\@meshup:verify:tcp-listen\n", ($listen_error eq '' && @listen ? "ok\n" : "failed $listen_error\n");

my $pid = fork();
if (defined $pid && $pid == 0) {
    # Detached: no fd of the SSH channel stays open, so the probe ends without waiting.
    setsid();
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
    _exit(0);
}
close($_) for @listen;

# The client: every peer at once, non-blocking, retried until the deadline.
my $start = $clock->();
my @todo;
for my $item (split ' ', $peers) {
    my ($peer, $rest) = split /=/, $item, 2;
    my ($addr, $p, $flag) = split /,/, $rest;
    $p //= $port;
    push @todo, { peer => $peer, addr => $addr, port => $p, ai => sockaddr_of($addr, $p), result => 'timeout',
                  deadline => $start + (($flag // '') eq 'd' ? 3 : 8) };
}
sub attempt {
    my ($t) = @_;
    my $ai = $t->{ai} or do { $t->{result} = 'error bad address'; $t->{done} = 1; return };
    socket(my $s, $ai->{family}, SOCK_STREAM, 0) or do { $t->{result} = "error $!"; $t->{done} = 1; return };
    my $flags = fcntl($s, 3, 0);    # F_GETFL
    fcntl($s, 4, $flags | 04000);   # F_SETFL O_NONBLOCK
    if (connect($s, $ai->{addr})) { $t->{result} = 'ok'; $t->{done} = 1; close $s; return }
    if ($! != EINPROGRESS) { $t->{result} = $! == ECONNREFUSED ? 'refused' : "error $!"; $t->{retry} = $clock->() + 0.3; return }
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
        my $err = unpack('i', getsockopt($t->{sock}, SOL_SOCKET, SO_ERROR) // pack('i', 0));
        close(delete $t->{sock});
        if ($err == 0) { $t->{result} = 'ok'; $t->{done} = 1; next }
        local $! = $err;
        $t->{result} = $err == ECONNREFUSED ? 'refused' : "error $!";
        $t->{retry} = $clock->() + 0.3;
    }
}
for my $t (@todo) {
    my $at = $t->{port} == $port ? '' : " $t->{port}";
    print "\@\@meshup:verify:tcp $t->{peer} $t->{addr}$at\n$t->{result}\n";
}
