#!/bin/bash
# Quickstart on a fresh Debian 12 machine (run as root): install everything,
# start libvirtd, virtlogd and RabbitMQ, run compute-images, compute-agent and
# compute-console-proxy with a local config, boot the test guest (a shell on
# its serial console) through the agent and show its console.  Everything
# lives in .quickstart/ (config, logs, state).
#   tools/quickstart.sh           set up and boot a guest
#   tools/quickstart.sh stop      delete the guest, stop the two services
# VIRT_TYPE=kvm uses hardware virtualisation (default qemu: TCG emulation,
# which works everywhere, including VMs where nested KVM does not).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
Q=$ROOT/.quickstart
CTL=(.venv/bin/computectl --config-file "$Q/compute-agent.conf")
HOST=quickstart

stop_services() {
  for svc in compute-agent compute-images compute-console-proxy; do
    if [ -f "$Q/$svc.pid" ]; then
      kill "$(cat "$Q/$svc.pid")" 2>/dev/null || true
      rm -f "$Q/$svc.pid"
    fi
  done
}

if [ "${1:-}" = stop ]; then
  if [ -f "$Q/guest.uuid" ]; then
    "${CTL[@]}" delete --host $HOST "$(cat "$Q/guest.uuid")" >/dev/null && rm -f "$Q/guest.uuid"
  fi
  stop_services
  echo "stopped"
  exit 0
fi

tools/install.sh
tools/start-daemons.sh
mkdir -p "$Q"
if [ -f "$Q/guest.uuid" ] && [ -f "$Q/compute-agent.pid" ]; then
  "${CTL[@]}" delete --host $HOST "$(cat "$Q/guest.uuid")" >/dev/null 2>&1 || true
fi
stop_services

echo ">> building the test guest (Debian cloud kernel + busybox initramfs)"
GUEST=$(.venv/bin/python -c 'from tests.harness import guest; print(guest.build())')

[ -s "$Q/console.key" ] || .venv/bin/python -c \
  'from console.tokens import new_key; print(new_key())' > "$Q/console.key"
KEY=$(cat "$Q/console.key")
cat > "$Q/compute-agent.conf" <<CONF
[DEFAULT]
host = $HOST
state_path = $Q/state
transport_url = rabbit://guest:guest@127.0.0.1:5672/
log_file = $Q/compute-agent.log
[libvirt]
connection_uri = qemu:///system
virt_type = ${VIRT_TYPE:-qemu}
serial_console = true
[image]
api_servers = http://127.0.0.1:9292
[console]
token_key = $KEY
CONF
# the proxy opens this host's consoles only: its key, its console address
# (serial_listen and vnc_listen: loopback here), its port ranges
cat > "$Q/console-hosts.json" <<JSON
{"$HOST": {"token_key": "$KEY", "addresses": ["127.0.0.1"],
           "serial_ports": "10000:10999", "vnc_ports": "5900:6099"}}
JSON
cat > "$Q/compute-console-proxy.conf" <<CONF
[console_proxy]
hosts_file = $Q/console-hosts.json
CONF
chown compute-agent:compute-agent "$Q/compute-console-proxy.conf" "$Q/console-hosts.json"
chmod 0600 "$Q/compute-console-proxy.conf" "$Q/console-hosts.json"

echo ">> starting compute-images on 127.0.0.1:9292 and compute-agent (host '$HOST')"
.venv/bin/python -m devtools.imageservice serve --data-dir "$Q/images" --port 9292 >"$Q/compute-images.log" 2>&1 &
echo $! > "$Q/compute-images.pid"
# as etc/systemd/compute-agent.service runs it: its own user, with the
# capabilities of its privsep daemons as ambient ones, never root
mkdir -p "$Q/state" && touch "$Q/compute-agent.log"
chown -R compute-agent:compute-agent "$Q/state" "$Q/compute-agent.log"
CAPS=+net_admin,+net_raw,+net_bind_service,+dac_read_search
setpriv --reuid=compute-agent --regid=compute-agent --init-groups --inh-caps=$CAPS \
  --ambient-caps=$CAPS --bounding-set=-all,$CAPS \
  .venv/bin/compute-agent --config-file "$Q/compute-agent.conf" >"$Q/compute-agent.out" 2>&1 &
echo $! > "$Q/compute-agent.pid"
# one proxy for every host's consoles: its own user, no capability
setpriv --reuid=compute-agent --regid=compute-agent --clear-groups --bounding-set=-all \
  .venv/bin/compute-console-proxy --config-file "$Q/compute-console-proxy.conf" \
  >"$Q/compute-console-proxy.log" 2>&1 &
echo $! > "$Q/compute-console-proxy.pid"
for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9292/v2/images >/dev/null 2>&1 && break; sleep 0.1
done

upload() { .venv/bin/python -m devtools.imageservice upload "$@"; }
KERNEL=$(upload --name test-guest-kernel --disk-format aki "$GUEST/vmlinux")
RAMDISK=$(upload --name test-guest-ramdisk --disk-format ari "$GUEST/initrd.img")
DISK=$(upload --name test-guest --disk-format qcow2 --property kernel_id="$KERNEL" \
  --property ramdisk_id="$RAMDISK" --property "os_command_line=console=ttyS0 quiet tb.name=quickstart tb.shell=1" \
  "$GUEST/disk.qcow2")
echo ">> images registered: disk $DISK (kernel $KERNEL, ramdisk $RAMDISK)"

for _ in $(seq 1 100); do
  "${CTL[@]}" list --host $HOST >/dev/null 2>&1 && break; sleep 0.2
done
UUID=$(.venv/bin/python -c 'import uuid; print(uuid.uuid4())')
echo "$UUID" > "$Q/guest.uuid"
echo ">> computectl boot --host $HOST --image $DISK --flavor vcpus=1,ram=128,disk=1 quickstart-guest"
"${CTL[@]}" boot --host $HOST --image "$DISK" --flavor vcpus=1,ram=128,disk=1 --uuid "$UUID" \
  quickstart-guest >/dev/null

echo ">> waiting for the guest's console line"
for _ in $(seq 1 240); do
  CONSOLE=$("${CTL[@]}" console-log --host $HOST "$UUID")
  if grep -q "TB: disk-marker" <<<"$CONSOLE"; then
    grep "^TB: " <<<"$CONSOLE" | head -4
    echo
    echo "The guest $UUID is running. Try:"
    echo "  ${CTL[*]} list --host $HOST"
    echo "  ${CTL[*]} console-log --host $HOST --length 5 $UUID"
    echo "  ${CTL[*]} console --host $HOST $UUID     # a shell; Ctrl-] detaches"
    echo "  tools/quickstart.sh stop"
    exit 0
  fi
  sleep 0.5
done
echo "the guest did not print its console line in 120 s; see $Q/compute-agent.log" >&2
exit 1
