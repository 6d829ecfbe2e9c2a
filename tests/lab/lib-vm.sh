# shellcheck shell=bash disable=SC2015,SC2086,SC2016,SC2034
# meshup lab: hosts with a real kernel (`up --vm HOST,...`): a QEMU virtual machine (TCG, no
# KVM needed) booting Debian's own kernel (linux-image-amd64) and its initramfs, real
# systemd, its own kernel modules (WireGuard's among them), attached to the host's network
# namespace through a tap device bridged to the host's link there. Sourced by tests/lab/lab.
#
# Built once per machine under $LAB_CACHE/vm-<hash>/ (keyed by the base and by this file):
#   vmlinuz, initrd.img  Debian's kernel and the initramfs initramfs-tools made for it
#   rootfs.img           ext4 image of the base rootfs + the kernel's package and modules
# Per VM host (/var/lib/meshup-lab/<lab>/hosts/<host>/):
#   disk.qcow2           its disk: a copy-on-write layer over rootfs.img, kept by `reboot`
#   seed.tar             what the lab writes before first boot (hostname, machine-id, the
#                        lab's key, resolv.conf, SSH host keys), handed over through QEMU's
#                        fw_cfg and unpacked by lab-vm-seed.service at first boot
#   console.log          the serial console (kernel and systemd messages)

VM_VERSION=1
VM_PACKAGES="linux-image-amd64 udev zstd"
VM_MEMORY=${MESHUP_LAB_VM_MEMORY:-512}
VM_DISK_SIZE=3G

vm_hash() {
    {
        base_hash
        echo "$VM_VERSION $VM_PACKAGES $VM_DISK_SIZE"
        declare -f vm_build vm_files apt_into_root
    } | sha256sum | cut -c1-16
}

# QEMU on the machine (qemu-system-x86 in tests/packages.txt), else why not.
vm_qemu_missing() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 || { echo "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)"; return 0; }
    command -v qemu-img >/dev/null 2>&1 || { echo "qemu-img is not installed (Debian package qemu-utils)"; return 0; }
    return 1
}

# Make sure the VM image exists; sets VM.
ensure_vm() {
    local why
    if why=$(vm_qemu_missing); then die "--vm: $why"; fi
    VM=$LAB_CACHE/vm-$(vm_hash)
    cache_ensure "$VM" vm_build
}

vm_build() {
    local tmp=$1 r t0
    t0=$(now)
    log "building the VM image (Debian kernel + base; once per machine, ~3 min)"
    r=$tmp/rootfs
    cp -a "$BASE/rootfs" "$r"
    apt_into_root "$r" "$tmp/install.log" "$VM_PACKAGES"
    rm -f "$r/etc/resolv.conf" "$r/etc/apt/sources.list.d/lab-build.list" "$r/usr/sbin/policy-rc.d"
    : >"$r/etc/resolv.conf"
    rm -rf "$r"/var/lib/apt/lists/*
    mkdir -p "$r/var/lib/apt/lists/partial"
    cp -L "$r/vmlinuz" "$tmp/vmlinuz"
    cp -L "$r/initrd.img" "$tmp/initrd.img"
    vm_files "$r"
    truncate -s "$VM_DISK_SIZE" "$tmp/rootfs.img"
    mkfs.ext4 -q -F -L labroot -d "$r" "$tmp/rootfs.img" || die "mkfs.ext4 -d failed"
    rm -rf "$r"
    log "VM image built in $(since "$t0")s ($(du -sh "$tmp" | cut -f1))"
}

# What a VM has that a namespace host does not: its root on /dev/vda, the seed unpacked at
# first boot, its address from the kernel command line (lab.addr=, lab.gw=), the whole of
# /proc/sys its own (the namespace hosts' systemd-sysctl drop-in goes).
vm_files() {
    local r=$1
    echo 'LABEL=labroot / ext4 defaults 0 1' >"$r/etc/fstab"
    rm -rf "$r/etc/systemd/system/systemd-sysctl.service.d"
    cat >"$r/usr/local/sbin/lab-vm-seed" <<'EOF'
#!/bin/sh
# meshup lab VM: first boot unpacks what the lab wrote for this host (fw_cfg opt/meshup-lab/seed);
# every boot gives eth0 the host's address (kernel command line lab.addr= and lab.gw=).
set -e
if ! [ -e /etc/lab-vm-seeded ]; then
    modprobe qemu_fw_cfg
    tar -x -C / -f /sys/firmware/qemu_fw_cfg/by_name/opt/meshup-lab/seed/raw
    touch /etc/lab-vm-seeded
fi
for w in $(cat /proc/cmdline); do
    case $w in lab.addr=*) addr=${w#*=} ;; lab.gw=*) gw=${w#*=} ;; esac
done
ip link set lo up
ip link set eth0 up
ip addr replace "$addr/32" dev eth0
ip route replace default via "$gw" dev eth0 onlink
EOF
    chmod 755 "$r/usr/local/sbin/lab-vm-seed"
    cat >"$r/etc/systemd/system/lab-vm-seed.service" <<'EOF'
[Unit]
Description=meshup lab VM: first-boot seed, the host's address
DefaultDependencies=no
After=local-fs.target systemd-udev-settle.service sys-subsystem-net-devices-eth0.device
Wants=sys-subsystem-net-devices-eth0.device
Before=network-pre.target lab-firstboot.service ssh.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lab-vm-seed

[Install]
WantedBy=multi-user.target
EOF
    chroot "$r" systemctl enable lab-vm-seed.service >/dev/null 2>&1
    chroot "$r" systemctl mask serial-getty@ttyS0.service >/dev/null 2>&1 || true
}


# --vm HOST,...: public hosts that are VMs (Debian kind, booted by their own systemd).
declare -A HOST_VM=()
apply_vms() {
    local h
    [ -n "$1" ] || return 0
    for h in ${1//,/ }; do
        [ "$(host_role "$h")" = public ] || die "--vm: '$h' is not a public host of this scenario"
        [ "$(host_kind "$h")" = debian ] || die "--vm: '$h' is not a Debian host"
        [ -z "${HOST_INIT[$h]:-}" ] || die "--vm: '$h' has --init (a VM boots its own systemd)"
        HOST_VM[$h]=1
    done
}

# The host's network namespace becomes the VM's wire: its link to the internet router (eth0,
# addressed by net_setup) gives up its address and routes and joins a bridge with tap0, the
# VM's NIC; the VM holds the address (lab-vm-seed). tap0 is persistent: it outlives QEMU, as
# a switch port outlives the machine plugged into it.
vm_net_setup() {
    local n
    n=$(ns "h.$1")
    printf '%s\n' "addr flush dev eth0" "route flush table main" "link add br0 type bridge" \
        "link set eth0 master br0" "tuntap add tap0 mode tap" "link set tap0 master br0" \
        "link set tap0 up" "link set br0 up" | ip -n "$n" -batch -
}

# Before first boot: the lab's files (prepare_host's upper directory) and the host's SSH host
# keys (made here, so `up` and `reboot` check the key the VM serves), packed for fw_cfg; the
# VM's disk, copy-on-write over the shared image.
vm_prepare() {
    local name=$1 addr=$2 hd=$STATE/hosts/$1 u t
    u=$hd/upper
    for t in ed25519 ecdsa; do
        ssh-keygen -q -t "$t" -N '' -C "root@$name" -f "$u/etc/ssh/ssh_host_${t}_key"
    done
    mkdir -p "$u/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=4M\n' >"$u/etc/systemd/journald.conf.d/lab.conf"
    tar --numeric-owner -C "$u" -cf "$hd/seed.tar" .
    qemu-img create -q -f qcow2 -F raw -b "$VM/rootfs.img" "$hd/disk.qcow2"
    echo "$addr" >"$hd/vm"
}

# Power on: QEMU (TCG) in the host's network namespace and cgroups, Debian's kernel booting
# the disk; the serial console goes to console.log, QEMU's own messages to qemu.log.
vm_start() {
    local name=$1 hd=$STATE/hosts/$1 cg addr mac o2 o3 o4
    cg=$(host_cg "$name")
    addr=$(cat "$hd/vm")
    IFS=. read -r _ o2 o3 o4 <<<"$addr"
    mac=$(printf '52:54:00:%02x:%02x:%02x' "$o2" "$o3" "$o4")
    setsid bash -c '
        for r in '"$(cgroup_roots | tr '\n' ' ')"'; do echo $$ > "$r/'"$cg"'/cgroup.procs"; done
        exec ip netns exec "$0" "$@"' "$(ns "h.$name")" \
        qemu-system-x86_64 -name "$name" -machine pc -accel tcg,tb-size=64 -m "$VM_MEMORY" -smp 1 \
        -nodefaults -no-user-config -display none -vga none \
        -kernel "$VM/vmlinuz" -initrd "$VM/initrd.img" \
        -append "root=/dev/vda ro console=ttyS0 net.ifnames=0 lab.addr=$addr lab.gw=$GW_IP" \
        -drive "file=$hd/disk.qcow2,if=virtio,format=qcow2" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$mac" \
        -object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 \
        -fw_cfg "name=opt/meshup-lab/seed,file=$hd/seed.tar" \
        -serial "file:$hd/console.log" \
        </dev/null >"$hd/qemu.log" 2>&1 &
}
