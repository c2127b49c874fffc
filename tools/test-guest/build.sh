#!/bin/bash
# Build the tiny test guest from Debian packages: an uncompressed PVH vmlinux
# (fast reboots under TCG; vmlinuz too, for UEFI), a busybox initramfs and a 64 MiB ext4 disk holding
# /marker.  Usage: build.sh OUTDIR.  Needs: apt-get, dpkg, lz4, cpio, gzip,
# busybox-static, e2fsprogs, qemu-utils, binutils (readelf), gcc and
# libc6-dev (the static tb-raw frame sender of the hostile-guest tests).  About 5 s once
# the kernel package is downloaded; a finished OUTDIR is left alone.
set -euo pipefail
OUT=${1:?usage: build.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$OUT/.complete" ] && exit 0
# The kernel package the cloud metapackage points at today (Debian removes
# old kernel ABIs from the archive, so a fixed name would break one day).
resolve_kernel() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null \
    | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
KPKG=${TEST_GUEST_KERNEL_PKG:-$(resolve_kernel)}
if [ -z "$KPKG" ]; then apt-get update -qq; KPKG=$(resolve_kernel); fi
[ -n "$KPKG" ] || { echo "cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
apt-get download "$KPKG" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$KPKG" >/dev/null; }
ls ./*.deb >/dev/null
dpkg -x ./*.deb k
KVER=$(ls k/lib/modules)
# vmlinux: cut vmlinuz at the lz4 legacy magic and decompress.
off=$(grep -obUaP '\x02\x21\x4c\x18' k/boot/vmlinuz-"$KVER" | head -1 | cut -d: -f1)
tail -c +$((off + 1)) k/boot/vmlinuz-"$KVER" | lz4 -dc > vmlinux 2>/dev/null || true
readelf -n vmlinux | grep -q 0x00000012 || { echo "no PVH note in vmlinux" >&2; exit 1; }
# vmlinuz as packaged: its EFI stub boots it under UEFI firmware (OVMF)
cp k/boot/vmlinuz-"$KVER" vmlinuz
# initramfs
R=root; mkdir -p $R/bin $R/lib/modules/"$KVER"
cp /bin/busybox $R/bin/busybox
gcc -static -Os -o $R/bin/tb-raw "$HERE/tb-raw.c"
cp "$HERE/init" $R/init; cp "$HERE/udhcpc.script" $R/bin/udhcpc.script
# busybox acpid runs /etc/acpi/<ACTION>/<PARAMETER>; the power button is
# PWRF/00000080: print a marker and power off cleanly.
mkdir -p $R/etc/acpi/PWRF
printf '#!/bin/sh\necho "TB: acpi-poweroff" > /dev/ttyS0\nsync\npoweroff -f\n' \
  > $R/etc/acpi/PWRF/00000080
chmod 755 $R/etc/acpi/PWRF/00000080
chmod 755 $R/init $R/bin/udhcpc.script
for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk \
         failover net_failover virtio_net virtio_balloon virtio-rng button evdev \
         scsi_common scsi_mod cdrom sr_mod libata ata_piix isofs efivarfs; do
  f=$(find k/lib/modules -name "$m.ko" | head -1)
  mkdir -p "$R/$(dirname "${f#k/}")"; cp "$f" "$R/${f#k/}"
done
cp k/lib/modules/"$KVER"/modules.order k/lib/modules/"$KVER"/modules.builtin* $R/lib/modules/"$KVER"/ 2>/dev/null || true
busybox depmod -b "$PWD/$R" "$KVER"
(cd $R && find . | cpio -o -H newc --quiet | gzip -1) > initrd.img
# disk
mkdir -p d; echo "test-guest-disk" > d/marker
mkfs.ext4 -q -F -L tbroot -d d disk.raw 64M >/dev/null
qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2
mv vmlinux vmlinuz initrd.img disk.raw disk.qcow2 "$OUT/"
echo "$KVER" > "$OUT/.complete"
