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
  conf=/etc/libvirt/qemu.conf
  if ! grep -q '^# compute-agent test settings' "$conf"; then
    cat >> "$conf" <<'CONF'
# compute-agent test settings
user = "root"
group = "root"
swtpm_user = "root"
swtpm_group = "root"
CONF
  fi
  # the agent runs as compute-agent, in the libvirt group (tools/install.sh):
  # that group may use the read-write socket (no polkit without systemd);
  # QEMU runs as root here (see above), so libvirt leaves the agent's files
  # their owner (no dynamic ownership) and QEMU keeps the capabilities to
  # open them
  restart=
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
  conf=/etc/libvirt/qemu.conf
  if ! grep -q '^# compute-agent files' "$conf"; then
    cat >> "$conf" <<'CONF'
# compute-agent files
dynamic_ownership = 0
clear_emulator_capabilities = 0
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
