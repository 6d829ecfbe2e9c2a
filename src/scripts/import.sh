# meshup import (read-only): what a host's hand-made WireGuard setup is, secrets redacted
# on the host. POSIX sh. The Rust side puts `mu_gather_one` in front of this file: the
# gather (gather.sh after hold.sh) as one function, run here once per interface with
# MU_IF set, MU_PSK_LIVE on (set in front with MU_DIR) (the live preshared keys as digests) and no hold.
# Output: "@@meshup:import:v1", "@@meshup:hostname:NAME", "@@meshup:addr:DEV ADDR/LEN"
# per global address, "@@meshup:os:ID VERSION", "@@meshup:firewall:KIND", then per interface
# "@@meshup:iface:IF", "@@meshup:pubkey:KEY" (derived on the host from the config's
# PrivateKey, which only ever travels through a pipe into `wg pubkey`) and the gather's
# own output for it; finally "@@meshup:import-done".
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

# An interface name as the kernel takes it (and as a file name is safe to build from).
mu_iface_ok() {
	case $1 in
	'' | . | .. | *[!A-Za-z0-9_=+.-]*) return 1 ;;
	esac
	[ "${#1}" -le 15 ]
}

mu_import_ifaces() {
	{
		command -v wg >/dev/null 2>&1 && wg show interfaces 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) print $i }'
		for mu_f in "$MU_DIR"/*.conf; do
			[ -f "$mu_f" ] || continue
			mu_b=${mu_f##*/}
			printf '%s\n' "${mu_b%.conf}"
		done
	} | sort -u | while read -r mu_i; do
		mu_iface_ok "$mu_i" && printf '%s\n' "$mu_i"
	done
}

# The public key of the config's inline PrivateKey: awk prints the key into the pipe to
# `wg pubkey`, nothing else sees it.
mu_conf_pubkey() {
	[ -r "$MU_DIR/$1.conf" ] && command -v wg >/dev/null 2>&1 || return 0
	mu_pub=$(awk '/^[ \t]*[Pp]rivate[Kk]ey[ \t]*=/ { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t\r]*(#.*)?$/, "", v); print v; exit }' "$MU_DIR/$1.conf" 2>/dev/null | wg pubkey 2>/dev/null) || mu_pub=
	[ -n "$mu_pub" ] && printf '@@meshup:pubkey:%s\n' "$mu_pub"
	return 0
}

echo '@@meshup:import:v1'
printf '@@meshup:hostname:%s\n' "$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname 2>/dev/null)"
# For `meshup init`: the host's own addresses (is the one the workstation reached among
# them, or is the host behind NAT?), its distribution and which firewall is active.
if command -v ip >/dev/null 2>&1; then
	ip -o addr show scope global 2>/dev/null | awk '{ print "@@meshup:addr:" $2 " " $4 }'
fi
# shellcheck disable=SC1091 # the host's own file
(. /etc/os-release 2>/dev/null && printf '@@meshup:os:%s %s\n' "${ID:-unknown}" "${VERSION_ID:-}")
if command -v ufw >/dev/null 2>&1 && grep -qx 'ENABLED=yes' /etc/ufw/ufw.conf 2>/dev/null; then
	echo '@@meshup:firewall:ufw'
elif command -v firewall-cmd >/dev/null 2>&1 && firewall-cmd --state >/dev/null 2>&1; then
	echo '@@meshup:firewall:firewalld'
elif command -v nft >/dev/null 2>&1 && [ -n "$(nft list ruleset 2>/dev/null)" ]; then
	echo '@@meshup:firewall:nftables'
else
	echo '@@meshup:firewall:none'
fi
for MU_IF in $(mu_import_ifaces); do
	printf '@@meshup:iface:%s\n' "$MU_IF"
	mu_conf_pubkey "$MU_IF"
	(mu_gather_one)
done
echo '@@meshup:import-done'
