"""The proxy's TLS stream to a serial console (console.tlsstream), against
a real TLS server that wants a client certificate of its CA, as QEMU's
chardev_tls with verification does: bytes written by one thread while
another reads all arrive, in order; a server certificate for another
address, or no client certificate, opens nothing."""
import os
import queue
import random
import socket
import ssl
import threading

import pytest

from console import proxy, tlsstream
from tests.harness import pki


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    ca = pki.CA("tls-test CA")
    server, client = tmp_path_factory.mktemp("server"), tmp_path_factory.mktemp("client")
    ca.issue(str(server), "console-host", "127.0.0.1")
    ca.issue(str(client), "console-proxy", "127.0.0.9")
    return ca, str(server), str(client)


def tls_echo_server(server_dir, want_client_cert=True):
    """A TLS server on 127.0.0.1 echoing what it reads, upper-cased; (socket,
    outcomes): one entry per connection once it has ended, the exception that
    ended it or None, put on a queue so a test can wait for it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(server_dir, "server-cert.pem"),
                        os.path.join(server_dir, "server-key.pem"))
    if want_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(os.path.join(server_dir, "ca-cert.pem"))
    srv = socket.create_server(("127.0.0.1", 0))
    outcomes = queue.Queue()

    def run():
        while True:
            try:
                raw, _ = srv.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(raw, server_side=True) as conn:
                    while data := conn.recv(65536):
                        conn.sendall(data.upper())
                outcomes.put(None)
            except (ssl.SSLError, OSError) as e:
                outcomes.put(e)
    threading.Thread(target=run, daemon=True).start()
    return srv, outcomes


def test_one_thread_writes_while_another_reads_and_nothing_is_lost(certs):
    _, server, client = certs
    srv, _ = tls_echo_server(server)
    stream = tlsstream.TLSStream(socket.create_connection(srv.getsockname(), 5),
                                 proxy.serial_tls_context(client), "127.0.0.1")
    rng = random.Random(7)
    chunks = [bytes(rng.choice(b"abcdefghij") for _ in range(rng.randint(1, 3000)))
              for _ in range(600)]
    sent = b"".join(chunks)
    got = []

    def reader():
        total = 0
        while total < len(sent):
            data = stream.recv(4096)
            if not data:
                return
            got.append(data)
            total += len(data)
    t = threading.Thread(target=reader)
    t.start()
    for c in chunks:
        stream.sendall(c)
    t.join(60)
    stream.close()
    srv.close()
    assert b"".join(got) == sent.upper()


def test_a_server_certificate_for_another_address_is_refused(certs):
    _, server, client = certs
    srv, _ = tls_echo_server(server)
    with pytest.raises(ssl.SSLCertVerificationError):
        tlsstream.TLSStream(socket.create_connection(srv.getsockname(), 5),
                            proxy.serial_tls_context(client), "127.0.0.2")
    srv.close()


def test_without_a_client_certificate_the_server_lets_nothing_through(certs):
    _, server, client = certs
    srv, outcomes = tls_echo_server(server)
    ctx = ssl.create_default_context(cafile=os.path.join(client, "ca-cert.pem"))
    try:
        stream = tlsstream.TLSStream(socket.create_connection(srv.getsockname(), 5), ctx,
                                     "127.0.0.1")
        stream.sendall(b"hello")
        assert stream.recv(100) == b""       # TLS 1.3: refused after the handshake
    except (ssl.SSLError, OSError):
        pass                                 # or during it
    outcome = outcomes.get(timeout=10)       # the server's side of it, however it ended
    srv.close()
    assert isinstance(outcome, ssl.SSLError), \
        f"the server accepted a client without a certificate ({outcome!r})"
