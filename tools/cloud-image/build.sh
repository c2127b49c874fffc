#!/bin/bash
# Build a Debian 12 cloud image from Debian packages with mmdebstrap: the
# cloud kernel, systemd, cloud-init, openssh-server and qemu-guest-agent,
# with no password and no key inside (cloud-init's default user `debian`
# gets the key from the config drive or the metadata service).
#
# Usage: build.sh OUTDIR.  Writes vmlinuz, initrd.img and disk.qcow2 (an
# ext4 filesystem without partition table, root=/dev/vda: the guest boots
# its own kernel directly, as the test guest does, so no boot loader is
# installed).  Needs root, mmdebstrap, e2fsprogs and qemu-utils; a finished
# OUTDIR is left alone.  About 3-5 minutes and 330 MiB of downloads once.
set -euo pipefail
OUT=${1:?usage: build.sh OUTDIR}
SIZE=${CLOUD_IMAGE_SIZE:-2G}
[ -f "$OUT/.complete" ] && exit 0
command -v mmdebstrap >/dev/null || apt-get install -y -q mmdebstrap >/dev/null
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
PKGS=linux-image-cloud-amd64,systemd-sysv,udev,cloud-init,openssh-server,qemu-guest-agent
PKGS=$PKGS,ifupdown,isc-dhcp-client,iproute2,netbase,sudo,ca-certificates,e2fsprogs
mmdebstrap --variant=minbase --include="$PKGS" \
  --customize-hook='echo "LABEL=cloudimg-rootfs / ext4 defaults 0 1" > "$1/etc/fstab"' \
  --customize-hook='printf "datasource_list: [ ConfigDrive, OpenStack, None ]\nlocale: C.UTF-8\n" > "$1/etc/cloud/cloud.cfg.d/90-compute-agent.cfg"' \
  --customize-hook='rm -f "$1/etc/ssh/ssh_host_"*' \
  --customize-hook='rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id"; touch "$1/etc/machine-id"' \
  --customize-hook='chroot "$1" passwd -l root' \
  --customize-hook='chroot "$1" systemctl enable serial-getty@ttyS0.service' \
  bookworm "$ROOT" http://deb.debian.org/debian
KVER=$(ls "$ROOT/lib/modules" | head -1)
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
rm -rf "$ROOT/var/cache/apt/archives/"*.deb "$ROOT/var/lib/apt/lists/"*
mkfs.ext4 -q -F -L cloudimg-rootfs -d "$ROOT" "$WORK/disk.raw" "$SIZE"
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
mv "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/disk.qcow2" "$OUT/"
echo "$KVER" > "$OUT/.complete"
