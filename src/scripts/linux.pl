# meshup verify: what the perl probes (ping.pl, tcp.pl) need from Linux, without loading
# a single perl module (loading Socket, POSIX and Errno cost ~25 ms of CPU per host, more
# than a probe's work; Debian's perl-base has no Time::HiRes). Put in front of each of
# them by src/verify/script.rs and src/verify/tcp.rs. Constants that differ between
# architectures are chosen by the ELF machine of the perl binary.
my $machine = 0;
if (open(my $exe, "<", "/proc/self/exe")) {
	binmode $exe;
	my $hdr = "";
	if (read($exe, $hdr, 20) == 20 && substr($hdr, 0, 4) eq "\x7fELF") {
		$machine = unpack(ord(substr($hdr, 5, 1)) == 2 ? "n" : "v", substr($hdr, 18, 2));
	}
	close $exe;
}
# gettimeofday(2): x86_64, aarch64, riscv, loongarch; i386, arm, ppc, ppc64, s390 (the
# old number 78).
my $nr = {62 => 96, 183 => 169, 243 => 169, 258 => 169, 3 => 78, 40 => 78, 20 => 78,
	21 => 78, 22 => 78}->{$machine};
# O_NONBLOCK, ECONNREFUSED, EINPROGRESS, SOL_SOCKET, SO_REUSEADDR, SO_ERROR, SO_REUSEPORT:
# the asm-generic values, except MIPS (8, 10), SPARC (2, 18, 43), Alpha (0x9026) and
# PA-RISC (15).
my ($O_NONBLOCK, $ECONNREFUSED, $EINPROGRESS, $SOL_SOCKET, $SO_REUSEADDR, $SO_ERROR,
	$SO_REUSEPORT) = @{ {
	8 => [0x80, 146, 150, 0xffff, 4, 0x1007, 0x200],
	10 => [0x80, 146, 150, 0xffff, 4, 0x1007, 0x200],
	2 => [0x4000, 61, 36, 0xffff, 4, 0x1007, 0x200],
	18 => [0x4000, 61, 36, 0xffff, 4, 0x1007, 0x200],
	43 => [0x4000, 61, 36, 0xffff, 4, 0x1007, 0x200],
	0x9026 => [4, 61, 36, 0xffff, 4, 0x1007, 0x200],
	15 => [0x10004, 239, 245, 0xffff, 4, 0x1007, 0x200],
	}->{$machine} || [04000, 111, 115, 1, 2, 4, 15] };

# Seconds since the epoch with microseconds, or undef.
sub now {
	return undef unless $nr;
	my $tv = pack("l!l!", 0, 0);
	return undef unless syscall($nr, $tv, 0) == 0;
	my ($s, $us) = unpack("l!l!", $tv);
	return $s + $us / 1e6;
}

# Numeric address text -> packed address (4 or 16 bytes), or undef.
sub packed4 {
	my @b = $_[0] =~ /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/ or return undef;
	return (grep { $_ > 255 } @b) ? undef : pack("C4", @b);
}

sub packed6 {
	my $a = shift;
	return undef unless $a =~ /^[0-9a-fA-F:]+$/ && $a !~ /:::/;
	my ($l, $r) = $a =~ /::/ ? split(/::/, $a, 2) : ($a, undef);
	my @l = length($l) ? split(/:/, $l, -1) : ();
	my @r = defined $r && length($r) ? split(/:/, $r, -1) : ();
	my $fill = 8 - @l - @r;
	return undef if defined $r ? $fill < 1 : $fill != 0;
	my @w = (@l, (defined $r ? ("0") x $fill : ()), @r);
	return undef if grep { !/^[0-9a-fA-F]{1,4}$/ } @w;
	return pack("n8", map { hex } @w);
}

sub packed { return index($_[0], ":") >= 0 ? packed6($_[0]) : packed4($_[0]) }

# Packed address, port -> sockaddr_in / sockaddr_in6 (AF_INET 2, AF_INET6 10; the family
# in host byte order, the rest in network order).
sub sockaddr {
	my ($p, $port) = @_;
	return length($p) == 4 ? pack("S n a4 x8", 2, $port || 0, $p)
		: pack("S n N a16 L", 10, $port || 0, 0, $p, 0);
}
