"""Typing into a guest's serial console through compute-console-proxy,
as a user would: the websocket URL from get_serial_console, a command
line sent, output read until an expected answer appears."""
import time

from websockets.sync.client import connect

SHELL_READY = "TB: shell on ttyS0"      # tools/test-guest/init with tb.shell=1


def open_ws(url):
    return connect(url, compression=None, proxy=None, open_timeout=10, subprotocols=["binary"])


def type_and_read(ws, command, wanted, timeout=60):
    """Type command into the console; all output until wanted appears.
    Compute wanted in the guest ($((...))): the terminal echoes the command
    itself, so a literal would be found in the echo."""
    ws.send(command.encode() + b"\n")
    seen, deadline = b"", time.monotonic() + timeout
    while wanted.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{wanted!r} never came back; console said {seen[-500:]!r}"
        try:
            seen += ws.recv(timeout=remaining)
        except TimeoutError:
            continue
    return seen.decode(errors="replace")


def run(agent, uuid, command, wanted, timeout=60):
    """command typed into uuid's serial console through a fresh console URL."""
    with open_ws(agent.api.get_serial_console(agent.host, uuid)["url"]) as ws:
        return type_and_read(ws, command, wanted, timeout)


VNC_CLIENT = r"""
import sys
from websockets.sync.client import connect
from console import rfb
with connect(sys.argv[1], compression=None, proxy=None, open_timeout=10,
             subprotocols=["binary"]) as ws:
    stream = rfb.Buffered(lambda: ws.recv(timeout=20))
    version = stream.recv_exact(12)
    ws.send(rfb.VERSION)
    types = list(stream.recv_exact(stream.recv_exact(1)[0]))
    ws.send(bytes([rfb.NONE]) + b"\x01")              # no security, then ClientInit
    result = stream.recv_exact(4)
    init = stream.recv_exact(24)
    name = stream.recv_exact(int.from_bytes(init[20:24], "big"))
    print(version.decode().strip(), types, result.hex(), name.decode())
"""


def vnc_through_proxy(ns, url):
    """What a VNC client in netns ns learns through the proxy at url: the
    RFB version, the security types offered, the result and the desktop
    name (the guest's screen is there once this prints)."""
    import subprocess
    import sys
    run = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", VNC_CLIENT, url],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def vnc_security_types(ns, address, port):
    """The security types a VNC server at address:port offers a client in
    netns ns (2 alone: it wants a password)."""
    import subprocess
    import sys
    code = ("import json,socket,sys\n"
            "s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)\n"
            "v=s.recv(12); s.sendall(v); n=s.recv(1)[0]; print(json.dumps(list(s.recv(n))))\n")
    run = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, address,
                          str(port)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    import json
    return json.loads(run.stdout)

