"""The console proxy in-process against a TCP echo server standing in for a
guest's console: bytes both ways, HTTP 403 before the websocket opens for
any refused token, noVNC's files and nothing outside them, and the guest
side closed when the client goes."""
import socket
import threading
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from console import proxy, tokens

KEY = tokens.new_key().encode()
U = "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55"


@pytest.fixture
def echo():
    """A one-connection-at-a-time echo server; its port and a record of closes."""
    srv = socket.create_server(("127.0.0.1", 0))
    closed = threading.Event()

    def run():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data.upper())
            closed.set()
    threading.Thread(target=run, daemon=True).start()
    yield srv.getsockname()[1], closed
    srv.close()


@pytest.fixture
def running(tmp_path):
    (tmp_path / "vnc_lite.html").write_text("<title>noVNC</title>")
    p = proxy.ConsoleProxy(tokens.TokenChecker(KEY, 600), str(tmp_path))
    server = p.serve("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield p.port
    p.shutdown()


def _url(port, token, kind="serial", uuid=U):
    return f"ws://127.0.0.1:{port}/{kind}/{uuid}?token={token}"


def test_bytes_go_both_ways_and_the_guest_side_closes_with_the_client(running, echo):
    guest_port, closed = echo
    token = tokens.issue(KEY, "serial", U, "127.0.0.1", guest_port, 60)
    with connect(_url(running, token), proxy=None) as ws:
        ws.send(b"hello guest")
        assert ws.recv(timeout=5) == b"HELLO GUEST"
        ws.send("text frames too")
        assert ws.recv(timeout=5) == b"TEXT FRAMES TOO"
    assert closed.wait(5)


def test_refused_tokens_get_403_before_any_connection(running, echo):
    guest_port, closed = echo
    token = tokens.issue(KEY, "serial", U, "127.0.0.1", guest_port, 60)
    other = "11111111-2222-3333-4444-555555555555"
    for url, why in [(_url(running, token, uuid=other), "not for the serial console"),
                     (_url(running, token, kind="vnc"), "not for the vnc console"),
                     (_url(running, token[:-3] + "xyz"), "forged"),
                     (_url(running, tokens.issue(tokens.new_key().encode(), "serial", U,
                                                 "127.0.0.1", guest_port, 60)), "forged")]:
        with pytest.raises(InvalidStatus) as e:
            connect(url, proxy=None)
        assert e.value.response.status_code == 403 and why in e.value.response.body.decode()
    with connect(_url(running, token), proxy=None):
        pass
    with pytest.raises(InvalidStatus) as e:
        connect(_url(running, token), proxy=None)
    assert b"already used" in e.value.response.body
    time.sleep(0.2)
    assert closed.is_set()          # the one accepted token reached the guest


def test_an_unreachable_guest_closes_the_websocket(running):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    token = tokens.issue(KEY, "serial", U, "127.0.0.1", dead, 60)
    with connect(_url(running, token), proxy=None) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1011


def test_novnc_files_and_nothing_else(running):
    base = f"http://127.0.0.1:{running}"
    page = requests.get(f"{base}/novnc/vnc_lite.html", timeout=5)
    assert page.status_code == 200 and "noVNC" in page.text
    assert page.headers["Content-Type"].startswith("text/html")
    for path in ("/novnc/%2e%2e/%2e%2e/etc/passwd", "/novnc/missing.js", "/etc/passwd",
                 f"/serial/{U}"):
        assert requests.get(base + path, timeout=5).status_code == 404, path
