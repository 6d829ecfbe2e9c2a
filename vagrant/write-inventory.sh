#!/usr/bin/env bash
# Writes ssh_config (next to this script) from `vagrant ssh-config` for the four
# mesh nodes, for user `meshup` and the operator's key, and points
# inventory.yaml's identity_file at that key. Run it after `vagrant up`, and
# again after `vagrant reload` or `up` on VirtualBox, whose forwarded SSH ports
# can change.
#
#   MESHUP_SSH_KEY   private key authorized for `meshup` (default ~/.ssh/id_ed25519)
set -euo pipefail

nodes=(node-a node-b node-c node-d)
# As written in inventory.yaml (meshup expands ~) and expanded for ssh_config.
key_spelled=${MESHUP_SSH_KEY:-\~/.ssh/id_ed25519}
case $key_spelled in
    '~'* | /*) ;;
    *) key_spelled=$PWD/$key_spelled ;;
esac
key=${key_spelled/#\~/$HOME}
cd "$(dirname "$0")"

die() {
    echo "write-inventory: $*" >&2
    exit 1
}

[ -f "$key" ] || die "no private key at $key (set MESHUP_SSH_KEY)"
command -v vagrant >/dev/null || die "vagrant not found"

raw=$(mktemp)
out=$(mktemp)
trap 'rm -f "$raw" "$out"' EXIT

vagrant ssh-config "${nodes[@]}" >"$raw" ||
    die "vagrant ssh-config failed: are the VMs up? (vagrant status)"

# Keep where each VM is reached (HostName, Port); drop Vagrant's own user,
# key and its host-key settings (StrictHostKeyChecking no, known hosts in
# /dev/null): meshup checks host keys against ./known_hosts.
{
    echo "# Written by write-inventory.sh from \`vagrant ssh-config\`. Do not edit."
    awk -v key="$key" '
        $1 == "Host" { if (host != "") finish(); host = $2; hostname = ""; port = ""; next }
        $1 == "HostName" { hostname = $2; next }
        $1 == "Port" { port = $2; next }
        function finish() {
            if (hostname == "" || port == "") { print "missing HostName or Port for " host > "/dev/stderr"; exit 1 }
            printf "\nHost %s\n  HostName %s\n  Port %s\n  User meshup\n  IdentityFile %s\n  IdentitiesOnly yes\n", host, hostname, port, key
            count++
        }
        END { if (host != "") finish(); if (count != 4) { print "expected 4 hosts, got " count > "/dev/stderr"; exit 1 } }
    ' "$raw"
} >"$out" || die "could not parse the output of vagrant ssh-config"
mv "$out" ssh_config
chmod 0644 ssh_config

# identity_file in inventory.yaml: one line, replaced in place when it differs.
grep -q '^  identity_file: ' inventory.yaml ||
    die "inventory.yaml has no '  identity_file:' line under ssh: to update"
if ! grep -qxF "  identity_file: $key_spelled" inventory.yaml; then
    escaped=$(printf '%s' "$key_spelled" | sed 's/[\/&]/\\&/g')
    sed -i "s/^\(  identity_file:\).*/\1 $escaped/" inventory.yaml
fi

echo "wrote $(pwd)/ssh_config:"
awk '$1 == "Host" { h = $2 } $1 == "HostName" { n = $2 } $1 == "Port" { printf "  %-7s %s:%s\n", h, n, $2 }' ssh_config
echo "inventory.yaml: identity_file $key_spelled"
if [ -s known_hosts ]; then
    echo "note: known_hosts exists; after destroying and recreating the VMs, delete it (new host keys)."
fi
