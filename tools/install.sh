#!/bin/bash
# Install what compute-agent needs on Debian 12 (run as root): the system
# packages (libvirt, QEMU and its iSCSI/RBD clients, RabbitMQ, tools to
# build the test guest and the Debian cloud image, SSH for the cloud-image
# tests, Ceph and tgt for the volume tests, PostgreSQL for the shared
# database tests) and a
# virtualenv in .venv with the agent and its pinned Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  qemu-system-x86 qemu-utils rabbitmq-server
  python3 python3-venv python3-dev gcc pkg-config
  iptables nftables bridge-utils dnsmasq-base iproute2 procps socat bindfs fuse3
  cpio lz4 busybox-static e2fsprogs binutils util-linux curl libc6-dev tcpdump
  mmdebstrap openssh-client sshpass novnc swtpm swtpm-tools ovmf
  qemu-block-extra libibverbs1 librdmacm1 libconfig-general-perl sg3-utils libaio1
  ceph-mon ceph-osd ceph-mgr ceph-common
  postgresql
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo ">> apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# tgt, the iSCSI target the volume tests serve LUNs from: extracted, not
# installed (its package would start a system service on the machine)
TGT=/opt/compute-agent-tgt
if [ ! -x $TGT/usr/sbin/tgtd ]; then
  echo ">> extracting tgt into $TGT"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq tgt >/dev/null 2>&1 ||
     { apt-get update -qq && apt-get download -qq tgt; })
  dpkg -x "$tmp"/tgt_*.deb $TGT
  rm -rf "$tmp"
fi
# the agent's own user, in the group that may use libvirt's read-write socket
# and in QEMU's group, to read the files libvirt hands QEMU while a guest
# runs (dynamic ownership: the guest's disks and bases are libvirt-qemu's,
# mode 0640, until it stops)
getent group libvirt >/dev/null || groupadd -r libvirt
id libvirt-qemu >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin libvirt-qemu
id compute-agent >/dev/null 2>&1 || useradd -r -M -d /var/lib/compute-agent \
  -s /usr/sbin/nologin -G libvirt compute-agent
id -nG compute-agent | grep -qw libvirt || usermod -a -G libvirt compute-agent
qemu_group=$(id -gn libvirt-qemu)
id -nG compute-agent | grep -qw "$qemu_group" || usermod -a -G "$qemu_group" compute-agent
# the agent's user runs code from this checkout: let it through the
# directories above it (search only, not list) when it cannot
if ! setpriv --reuid compute-agent --regid compute-agent --init-groups test -r "$PWD/setup.cfg"; then
  d=$PWD
  while [ "$d" != / ]; do
    [ -x "$d" ] && setpriv --reuid compute-agent --regid compute-agent --init-groups \
      test -x "$d" || { echo ">> chmod o+x $d (compute-agent runs code under it)"; chmod o+x "$d"; }
    d=$(dirname "$d")
  done
fi
# Debian's python3 (3.11): the agent runs as compute-agent, which must be
# able to read the interpreter (one under /root, say pyenv's, it cannot)
PY=${PYTHON:-/usr/bin/python3}
agent_can_read_venv() {
  local home; home=$(sed -n 's/^home = //p' .venv/pyvenv.cfg)
  setpriv --reuid compute-agent --regid compute-agent --init-groups test -r "$home/../lib"
}
if [ -x .venv/bin/python ] && ! agent_can_read_venv; then
  echo ">> .venv's interpreter is not readable by compute-agent: making it again"
  rm -rf .venv .tox
fi
if [ ! -x .venv/bin/python ]; then
  echo ">> creating .venv"
  "$PY" -m venv .venv
fi
echo ">> installing compute-agent into .venv"
.venv/bin/pip install -q --disable-pip-version-check -U pip
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' tox ruff
