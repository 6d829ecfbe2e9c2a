#!/bin/sh
# The one thing a fresh cloud server has besides its network: a login user
# with sudo and the operator's public key. Nothing else is installed or changed.
#
#   user.sh "ssh-ed25519 AAAA... comment"
set -eu

USER_NAME=meshup
KEY=${1:-}

die() {
    echo "meshup-user: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root"
case $KEY in
    ssh-* | ecdsa-* | sk-*) ;;
    '') die "no public key: set MESHUP_SSH_PUBKEY, or MESHUP_SSH_KEY to a private key whose .pub exists (default ~/.ssh/id_ed25519), then run: vagrant provision --provision-with meshup-user" ;;
    *) die "this does not look like an OpenSSH public key: $KEY" ;;
esac
[ "$(printf '%s\n' "$KEY" | wc -l)" -eq 1 ] || die "expected exactly one public key line"

if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$USER_NAME"
fi
home=$(getent passwd "$USER_NAME" | cut -d: -f6)

sudoers=/etc/sudoers.d/90-meshup
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$USER_NAME" >"$sudoers.tmp"
chmod 0440 "$sudoers.tmp"
if command -v visudo >/dev/null 2>&1; then
    visudo -cqf "$sudoers.tmp" || die "visudo rejected the sudoers snippet"
fi
mv "$sudoers.tmp" "$sudoers"

install -d -m 0700 -o "$USER_NAME" -g "$(id -gn "$USER_NAME")" "$home/.ssh"
printf '%s\n' "$KEY" >"$home/.ssh/authorized_keys"
chown "$USER_NAME:$(id -gn "$USER_NAME")" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
# Fedora runs SELinux enforcing: sshd only reads keys labelled ssh_home_t.
if command -v restorecon >/dev/null 2>&1; then
    restorecon -R "$home/.ssh"
fi

echo "meshup-user: $USER_NAME can log in with $(printf '%s' "$KEY" | cut -d' ' -f1,3) and sudo without a password"
