"""computectl console: a terminal attached to a guest's serial console
through the console proxy's websocket.  On a terminal, stdin goes raw and
Ctrl-] detaches; otherwise stdin is sent as it comes and, once it ends,
output is shown for `linger` more seconds (for scripts and tests)."""
import argparse
import contextlib
import os
import select
import sys
import termios
import threading
import tty

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

DETACH = b"\x1d"          # Ctrl-]


class ConsoleRefused(Exception):
    """The proxy refused the URL (its token); str() is the proxy's reason."""


@contextlib.contextmanager
def _raw(fd):
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _to_stdout(ws, out, done):
    try:
        for message in ws:
            out.write(message if isinstance(message, bytes) else message.encode())
            out.flush()
    except ConnectionClosed:
        pass
    done.set()


def attach(url, stdin_fd=0, out=None, linger=2.0):
    """Relay stdin_fd to the console at url and its output to out until
    Ctrl-] (terminal), the end of stdin plus linger seconds, or the proxy
    closing; raises ConsoleRefused when the proxy does not open it."""
    out = out or sys.stdout.buffer
    try:
        ws = connect(url, compression=None, proxy=None, open_timeout=10)
    except InvalidStatus as e:
        body = (e.response.body or b"").decode("utf-8", "replace").strip()
        raise ConsoleRefused(f"HTTP {e.response.status_code}: {body}") from None
    done = threading.Event()
    reader = threading.Thread(target=_to_stdout, args=(ws, out, done), daemon=True)
    reader.start()
    with ws, _raw(stdin_fd) as is_tty:
        if is_tty:
            out.write(b"[attached; Ctrl-] detaches]\r\n")
            out.flush()
        while not done.is_set():
            ready, _, _ = select.select([stdin_fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(stdin_fd, 4096)
            if not data or (is_tty and DETACH in data):
                if data:
                    ws.send(data.split(DETACH, 1)[0])
                break
            ws.send(data)
        done.wait(0 if is_tty else linger)


def main(argv=None):
    """python -m compute.client.terminal [--linger S] URL: attach to a
    console URL already in hand (computectl console asks the agent first)."""
    p = argparse.ArgumentParser(prog="console_client")
    p.add_argument("url")
    p.add_argument("--linger", type=float, default=2.0)
    args = p.parse_args(argv)
    try:
        attach(args.url, linger=args.linger)
    except ConsoleRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
