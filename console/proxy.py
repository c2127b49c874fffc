"""The console proxy: one process, many hosts.  A browser (noVNC) or
computectl opens ws://PROXY/serial/UUID?token=T or /vnc/UUID?token=T; the
proxy redeems the token (console.tokens) before the websocket handshake
completes, so a refused token gets an HTTP 403 and no connection, then
relays bytes between the websocket and the guest's console port, which
listens only on the host's console address: for VNC after logging in to
the guest's VNC server with the password the token carries (console.rfb),
for serial consoles over TLS with the proxy's client certificate when
configured.  It also serves the noVNC
client's files under /novnc/.

Threads, no eventlet: websockets' synchronous server runs each client in
its own thread, and each relay adds one thread for the guest-to-client
direction."""
import logging
import mimetypes
import os
import re
import socket
import ssl
import threading
import urllib.parse

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response
from websockets.sync.server import serve

from console import rfb, tlsstream, tokens

LOG = logging.getLogger(__name__)
PATH = re.compile(r"^/(serial|vnc)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12})\Z")
STATIC_PREFIX = "/novnc/"
CHUNK = 64 * 1024


def parse_request_path(path):
    """(kind, uuid, token) of a console request path, or None (pure)."""
    if any(ord(c) < 0x21 or ord(c) > 0x7e for c in path):
        return None            # urlsplit would silently drop tabs and newlines
    url = urllib.parse.urlsplit(path)
    m = PATH.match(url.path)
    token = urllib.parse.parse_qs(url.query).get("token", [None])[0]
    if m is None or not token:
        return None
    return m.group(1), m.group(2), token


def static_file(root, path):
    """The file under root that an URL path below /novnc/ names, or None;
    never a file outside root (pure but for realpath)."""
    rel = urllib.parse.unquote(urllib.parse.urlsplit(path).path[len(STATIC_PREFIX):])
    if not root or not rel or "\x00" in rel:
        return None
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, rel))
    if not full.startswith(real_root + os.sep) or not os.path.isfile(full):
        return None
    return full


def _response(status, reason, body, content_type="text/plain; charset=utf-8"):
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Connection", "close")])
    return Response(status, reason, headers, body)


class ConsoleProxy:
    def __init__(self, checker, novnc_dir, connect_timeout=5, serial_tls=None):
        """serial_tls: an ssl.SSLContext for serial consoles (serial_tls_context)."""
        self.checker, self.novnc_dir = checker, novnc_dir
        self.connect_timeout, self.serial_tls = connect_timeout, serial_tls
        self._server = None

    # -- before the handshake: files, and the token --------------------------

    def process_request(self, connection, request):
        if request.path.startswith(STATIC_PREFIX) and "upgrade" not in \
                request.headers.get("Connection", "").lower():
            return self._serve_file(request.path)
        parsed = parse_request_path(request.path)
        if parsed is None:
            return _response(404, "Not Found", b"no such console path\n")
        kind, uuid, token = parsed
        try:
            target = self.checker.redeem(token, kind, uuid)
        except tokens.TokenRefused as e:
            LOG.warning("console %s/%s refused for %s: %s", kind, uuid,
                        connection.remote_address, e)
            return _response(403, "Forbidden", f"{e}\n".encode())
        connection.console_target = target
        LOG.info("console %s of %s opened for %s (guest port %s:%s)", kind, uuid,
                 connection.remote_address, target.host, target.port)
        return None

    def _serve_file(self, path):
        full = static_file(self.novnc_dir, path)
        if full is None:
            return _response(404, "Not Found", b"not found\n")
        with open(full, "rb") as f:
            body = f.read()
        kind = mimetypes.guess_type(full)[0] or "application/octet-stream"
        return _response(200, "OK", body, kind)

    # -- after the handshake: the relay -----------------------------------------

    def handle(self, connection):
        target = connection.console_target
        try:
            guest = self._connect(target)
        except OSError as e:
            LOG.warning("console %s of %s: guest port %s:%s unreachable: %s", target.kind,
                        target.instance_uuid, target.host, target.port, e)
            connection.close(1011, "the guest's console is unreachable")
            return
        try:
            early = self._handshake(target, guest, connection)
        except (rfb.HandshakeError, ConnectionClosed, OSError) as e:
            LOG.warning("console %s of %s: handshake failed: %s", target.kind,
                        target.instance_uuid, e)
            guest.close()
            connection.close(1011, "the guest's console refused the proxy")
            return
        guest.settimeout(None)
        pump = threading.Thread(target=self._guest_to_client, args=(guest, connection),
                                daemon=True, name=f"console-{target.instance_uuid[:8]}")
        pump.start()
        try:
            if early:
                guest.sendall(early)
            for message in connection:
                guest.sendall(message.encode() if isinstance(message, str) else message)
        except (ConnectionClosed, OSError):
            pass
        finally:
            try:
                guest.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            guest.close()
            pump.join(5)
        LOG.info("console %s of %s closed", target.kind, target.instance_uuid)

    def _connect(self, target):
        """The socket to the guest's console: over TLS with the proxy's client
        certificate for serial consoles when configured."""
        raw = socket.create_connection((target.host, target.port),
                                       timeout=self.connect_timeout)
        if target.kind != "serial" or self.serial_tls is None:
            return raw
        try:
            return tlsstream.TLSStream(raw, self.serial_tls, target.host)
        except OSError:
            raw.close()
            raise

    @staticmethod
    def _handshake(target, guest, connection):
        """For a VNC server with a password, log in to it and greet the
        client without one (console.rfb); the bytes the client sent past
        its handshake, to pass on."""
        if target.kind != "vnc" or target.password is None:
            return b""
        server = rfb.Buffered(lambda: guest.recv(CHUNK))
        rfb.authenticate_to_server(server.recv_exact, guest.sendall, target.password)
        client = rfb.Buffered(lambda: _as_bytes(connection.recv()))
        rfb.greet_client(client.recv_exact, connection.send)
        if server.rest:
            connection.send(server.rest)
        return client.rest

    @staticmethod
    def _guest_to_client(guest, connection):
        try:
            while data := guest.recv(CHUNK):
                connection.send(data)
        except (ConnectionClosed, OSError):
            pass
        connection.close()

    # -- serving ------------------------------------------------------------------

    def serve(self, host, port):
        """Serve until shutdown(); returns the bound port once listening
        (in a thread) through self.port."""
        self._server = serve(self.handle, host, port, process_request=self.process_request,
                             subprotocols=["binary"], select_subprotocol=_binary_if_asked,
                             compression=None, max_size=CHUNK * 4)
        self.port = self._server.socket.getsockname()[1]
        return self._server

    def shutdown(self):
        if self._server is not None:
            self._server.shutdown()


def serial_tls_context(cert_dir):
    """The client side of QEMU's chardev TLS: the proxy's certificate, the
    hosts' CA, and the host's certificate checked against its address."""
    ctx = ssl.create_default_context(cafile=os.path.join(cert_dir, "ca-cert.pem"))
    ctx.load_cert_chain(os.path.join(cert_dir, "client-cert.pem"),
                        os.path.join(cert_dir, "client-key.pem"))
    return ctx


def _as_bytes(message):
    return message.encode() if isinstance(message, str) else message


def _binary_if_asked(connection, offered):
    """noVNC asks for the 'binary' subprotocol; computectl asks for none."""
    return "binary" if "binary" in offered else None
