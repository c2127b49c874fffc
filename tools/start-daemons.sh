#!/bin/bash
# Start libvirtd, virtlogd and RabbitMQ when they are not already running.
# Works with or without systemd (these CI machines have none): the libvirt
# daemons then run under tools/subreaper.py so destroyed QEMUs are reaped
# at once.  Idempotent.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
running() { pgrep -x "$1" >/dev/null; }

if [ -d /run/systemd/system ]; then
  systemctl start virtlogd libvirtd rabbitmq-server
else
  mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt /var/cache/libvirt
  id libvirt-qemu >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin libvirt-qemu
  # /dev/kvm as udev leaves it on Debian (root:kvm 0660, libvirt-qemu in kvm):
  # otherwise libvirt finds KVM unusable for QEMU's user but usable to its
  # capability probe, and probes QEMU again at every lookup
  getent group kvm >/dev/null || groupadd -r kvm
  id -nG libvirt-qemu | grep -qw kvm || usermod -a -G kvm libvirt-qemu
  if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm; chmod 0660 /dev/kvm; fi
  restart=
  # QEMU and swtpm run unprivileged, as on a Debian host: QEMU as
  # libvirt-qemu with no capabilities, libvirt handing it each guest's
  # files for the run and giving them back after (dynamic ownership,
  # remembered owners), swtpm as tss (libvirt's default); earlier versions
  # of this script ran both as root: their lines go
  conf=/etc/libvirt/qemu.conf
  touch "$conf"
  if ! grep -q '^# >>> compute-agent qemu' "$conf"; then
    sed -i -E '/^# compute-agent (test settings|files)$/d;
               /^(user|group|swtpm_user|swtpm_group|dynamic_ownership|clear_emulator_capabilities|remember_owner) = /d' "$conf"
    cat >> "$conf" <<'CONF'
# >>> compute-agent qemu (tools/start-daemons.sh)
user = "libvirt-qemu"
group = "libvirt-qemu"
dynamic_ownership = 1
remember_owner = 1
# <<< compute-agent qemu
CONF
    restart=1
  fi
  # the agent runs as compute-agent, in the libvirt group (tools/install.sh):
  # that group may use the read-write socket (no polkit without systemd)
  conf=/etc/libvirt/libvirtd.conf
  if ! grep -q '^# compute-agent socket access' "$conf" 2>/dev/null; then
    cat >> "$conf" <<'CONF'
# compute-agent socket access
unix_sock_group = "libvirt"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
CONF
    restart=1
  fi
  if [ -n "$restart" ] && running libvirtd; then
    kill "$(cat /run/libvirt/libvirtd.pid)"
    for i in $(seq 1 50); do running libvirtd || break; sleep 0.2; done
  fi
  if ! running virtlogd; then
    python3 "$HERE/subreaper.py" /run/compute-agent-virtlogd-reaper.pid virtlogd -d -p /run/libvirt/virtlogd.pid
  fi
  if ! running libvirtd; then
    python3 "$HERE/subreaper.py" /run/compute-agent-libvirtd-reaper.pid libvirtd -d -p /run/libvirt/libvirtd.pid
  fi
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
fi
for i in $(seq 1 60); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.5
done
virsh -c qemu:///system version >/dev/null
rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || rabbitmqctl wait --timeout 60 /var/lib/rabbitmq/mnesia/rabbit@$(hostname -s).pid
echo "libvirtd, virtlogd and RabbitMQ are up"
