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
