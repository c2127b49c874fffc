"""The console proxy in-process against a TCP echo server standing in for a
guest's console: bytes both ways, HTTP 403 before the websocket opens for
any refused token, noVNC's files and nothing outside them, and the guest
side closed when the client goes."""
import socket
import subprocess
import threading
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from console import proxy, rfb, tokens

KEY = tokens.new_key().encode()
U = "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55"
ANY_PORT = {"serial": (1, 65535), "vnc": (1, 65535)}
HOSTS = {"hA": tokens.ConsoleHost("hA", KEY, frozenset({"127.0.0.1"}), ANY_PORT),
         "hB": tokens.ConsoleHost("hB", tokens.new_key().encode(),
                                  frozenset({"127.0.0.2"}), ANY_PORT)}


def issue(port, kind="serial", key=KEY, signer="hA", address="127.0.0.1", password=None):
    return tokens.issue(key, signer, kind, U, address, port, 60, password=password)


def serve_one_at_a_time(handle, address="127.0.0.1"):
    """A TCP server on address calling handle(conn) for each connection,
    one at a time, until closed; the listening socket."""
    srv = socket.create_server((address, 0))

    def run():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                handle(conn)
    threading.Thread(target=run, daemon=True).start()
    return srv


@pytest.fixture
def echo():
    """An echo server; its port and a record of closes."""
    closed = threading.Event()

    def handle(conn):
        while data := conn.recv(4096):
            conn.sendall(data.upper())
        closed.set()
    srv = serve_one_at_a_time(handle)
    yield srv.getsockname()[1], closed
    srv.close()


@pytest.fixture
def running(tmp_path):
    (tmp_path / "vnc_lite.html").write_text("<title>noVNC</title>")
    p = proxy.ConsoleProxy(tokens.TokenChecker(HOSTS.get, 600), str(tmp_path))
    server = p.serve("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield p.port
    p.shutdown()


def _url(port, token, kind="serial", uuid=U):
    return f"ws://127.0.0.1:{port}/{kind}/{uuid}?token={token}"


def test_bytes_go_both_ways_and_the_guest_side_closes_with_the_client(running, echo):
    guest_port, closed = echo
    token = issue(guest_port)
    with connect(_url(running, token), proxy=None) as ws:
        ws.send(b"hello guest")
        assert ws.recv(timeout=5) == b"HELLO GUEST"
        ws.send("text frames too")
        assert ws.recv(timeout=5) == b"TEXT FRAMES TOO"
    assert closed.wait(5)


def test_refused_tokens_get_403_before_any_connection(running, echo):
    guest_port, closed = echo
    token = issue(guest_port)
    other = "11111111-2222-3333-4444-555555555555"
    for url, why in [(_url(running, token, uuid=other), "not for the serial console"),
                     (_url(running, token, kind="vnc"), "not for the vnc console"),
                     (_url(running, token[:-3] + "xyz"), "forged"),
                     (_url(running, issue(guest_port, key=tokens.new_key().encode())),
                      "forged"),
                     # host A's key, host B's console address: refused, never connected
                     (_url(running, issue(guest_port, address="127.0.0.2")),
                      "not a serial console of host hA"),
                     (_url(running, issue(guest_port, signer="hC")), "not one whose")]:
        with pytest.raises(InvalidStatus) as e:
            connect(url, proxy=None)
        assert e.value.response.status_code == 403 and why in e.value.response.body.decode()
    assert not closed.is_set()      # none of them reached the guest
    with connect(_url(running, token), proxy=None):
        pass
    with pytest.raises(InvalidStatus) as e:
        connect(_url(running, token), proxy=None)
    assert b"already used" in e.value.response.body
    time.sleep(0.2)
    assert closed.is_set()          # the one accepted token reached the guest


@pytest.fixture
def vnc_server():
    """A VNC server that wants the password 'pw-1234': RFB 3.8, type 2
    only; after login it sends a ServerInit naming itself.  Its port and
    the list of logins it saw (True: right password)."""
    logins = []

    def handle(conn):
        conn.sendall(rfb.VERSION)
        if conn.recv(12) != rfb.VERSION:
            return
        conn.sendall(bytes([1, rfb.VNC_AUTH]))
        if conn.recv(1) != bytes([rfb.VNC_AUTH]):
            return
        challenge = bytes(range(16))
        conn.sendall(challenge)
        ok = conn.recv(16) == rfb.vnc_response("pw-1234", challenge)
        logins.append(ok)
        conn.sendall(rfb.OK if ok else b"\x00\x00\x00\x01")
        if ok and conn.recv(1) == b"\x01":            # ClientInit, shared
            conn.sendall(b"SERVERINIT guest-screen")
    srv = serve_one_at_a_time(handle)
    yield srv.getsockname()[1], logins
    srv.close()


def test_the_proxy_logs_in_to_vnc_with_the_tokens_password_and_asks_the_user_nothing(
        running, vnc_server):
    port, logins = vnc_server
    with connect(_url(running, issue(port, "vnc", password="pw-1234"), kind="vnc"),
                 proxy=None) as ws:
        assert ws.recv(timeout=5) == rfb.VERSION
        ws.send(rfb.VERSION)
        assert ws.recv(timeout=5) == bytes([1, rfb.NONE])       # no password asked
        ws.send(bytes([rfb.NONE]) + b"\x01")                   # and ClientInit at once
        assert ws.recv(timeout=5) == rfb.OK
        assert ws.recv(timeout=5) == b"SERVERINIT guest-screen"
    assert logins == [True]
    with connect(_url(running, issue(port, "vnc", password="wrong"), kind="vnc"),
                 proxy=None) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1011
    assert logins == [True, False]


def test_qemus_own_vnc_server_takes_the_login_and_refuses_a_wrong_password():
    """QEMU itself (no guest: -machine none) with a VNC password, as
    libvirt sets it from the domain's passwd: rfb's answer is QEMU's DES."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        display = s.getsockname()[1] - 5900
    if display < 0:
        pytest.skip("no free port above 5900")
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "none", "-display", "none",
                             "-vnc", f"127.0.0.1:{display},password=on", "-monitor", "stdio"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        qemu.stdin.write("set_password vnc pw-1234\n")
        qemu.stdin.flush()
        results = []
        for password in ("pw-1234", "pw-1235"):
            deadline = time.monotonic() + 20
            while True:
                try:
                    conn = socket.create_connection(("127.0.0.1", 5900 + display), 2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "QEMU's VNC server did not listen"
                    time.sleep(0.1)
            with conn:
                stream = rfb.Buffered(lambda c=conn: c.recv(4096))
                try:
                    rfb.authenticate_to_server(stream.recv_exact, conn.sendall, password)
                    results.append("in")
                except rfb.HandshakeError as e:
                    results.append(str(e))
        assert results == ["in", "the VNC server refused the guest's password"]
    finally:
        qemu.kill()
        qemu.wait()


def test_an_unreachable_guest_closes_the_websocket(running):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    token = issue(dead)
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



def test_another_hosts_console_and_the_database_are_never_connected_to(running):
    """Tokens signed with host A's key for host B's console address, and
    for the database's: 403, and the targets count no connection at all."""
    accepted = []
    host_b = serve_one_at_a_time(lambda conn: accepted.append("host B"), "127.0.0.2")
    database = serve_one_at_a_time(lambda conn: accepted.append("database"), "127.0.0.3")
    try:
        targets = [("127.0.0.2", host_b.getsockname()[1]),
                   ("127.0.0.3", database.getsockname()[1])]
        for address, port in targets:
            for kind in ("serial", "vnc"):
                for token in (issue(port, kind, address=address),             # A's key
                              "hB~" + issue(port, kind, address=address).split("~")[1]):
                    with pytest.raises(InvalidStatus) as e:
                        connect(_url(running, token, kind=kind), proxy=None)
                    assert e.value.response.status_code == 403
        time.sleep(0.3)
        assert accepted == []
        with socket.create_connection(targets[1], 2):     # they do accept connections
            pass
        assert wait_for(lambda: accepted == ["database"])
    finally:
        host_b.close()
        database.close()


def wait_for(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
