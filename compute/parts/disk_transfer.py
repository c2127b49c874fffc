"""Disk transfer between agents for a cold migration or resize: the
instance's own disk files (qcow2 overlays, never the bases, which the
destination has from the image service), sparse-aware, over one TCP
connection that only the peer holding this migration's token can use, and
encrypted, as scp would be, but without SSH between hypervisors.

The destination opens a Receiver for a migration and hands its address,
port and a fresh random token to the source in the prep_resize answer (over
RabbitMQ, whose users are authenticated).  The source connects and sends:

    receiver -> sender   MAGIC + 32-byte random challenge
    sender -> receiver   HMAC-SHA256(token, challenge)
    receiver -> sender   b"\\x01" (accepted) or closes the connection

Both then hold a key for this connection alone, HMAC-SHA256(token, KEY_LABEL
+ challenge), and the sender sends frames, each a clear header followed by
its payload sealed with AES-256-GCM (the header is the associated data, the
frame's number the nonce):

    F  u16 name length, u64 logical size | sealed name    a file starts (name
                                                         from the allowed set)
    D  u64 offset, u32 length            | sealed data    a data extent of it
    Z                                    | sealed nothing the end

A frame altered, dropped, repeated or reordered fails its tag, and a stream
cut short lacks its Z: the end-to-end check is the sum of the frames' tags.
Only extents that hold data are sent (SEEK_DATA/SEEK_HOLE, and all-zero
blocks are skipped), so the copy stays sparse.  The receiver answers
b"\\x01", or b"\\x00" and the reason; any failure removes what was
received.  The token is single-use: the receiver accepts one connection
and then closes.

Neither side fsyncs here: the source keeps its copy (<uuid>_resize) until
the resize is confirmed, and the destination makes its files durable
(ComputeDriver.sync_disks) before it lets the source drop that copy.
"""
import hashlib
import hmac
import logging
import os
import secrets
import socket
import struct
import threading
import time

from virt.sparse import data_extents

LOG = logging.getLogger(__name__)
MAGIC = b"CAXF2\n"
KEY_LABEL = b"compute-agent disk transfer key"
CHUNK = 4 * 1024 * 1024
ZERO = bytes(CHUNK)
TAG = 16
MAX_NAME = 255
FILE = struct.Struct("!cHQ")
DATA = struct.Struct("!cQI")


class TransferError(Exception):
    """The transfer failed or was refused; nothing received is kept."""


def new_token():
    return secrets.token_hex(32)


class Sealer:
    """AES-256-GCM over a connection's frames, in order: the nonce is the
    frame's number, so each side keeps its own count."""

    def __init__(self, token, challenge):
        # cryptography (with OpenSSL, about 9 MB resident) is loaded by the
        # first migration, not by every agent at start
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        self._aead = AESGCM(hmac.digest(bytes.fromhex(token), KEY_LABEL + challenge,
                                        hashlib.sha256))
        self._count = 0

    def _nonce(self):
        self._count += 1
        return self._count.to_bytes(12, "big")

    def seal(self, payload, header):
        return self._aead.encrypt(self._nonce(), payload, header)

    def open(self, sealed, header):
        from cryptography.exceptions import InvalidTag
        try:
            return self._aead.decrypt(self._nonce(), sealed, header)
        except InvalidTag:
            raise TransferError("checksum mismatch: the data arrived altered") from None


def _zero(buf, n):
    """buf[:n] is all zero bytes (bytearray == bytes is one memcmp; a
    memoryview comparison would go byte by byte)."""
    return buf == ZERO if n == len(buf) else buf[:n] == ZERO[:n]


def _recv_exact(sock, view):
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise TransferError("the connection closed mid-transfer")
        got += n
    return view


def _recv(sock, n):
    return bytes(_recv_exact(sock, memoryview(bytearray(n))))


# -- the sending side -----------------------------------------------------------

def send(address, port, token, files, progress=None, timeout=300):
    """Send files [(name, path)] to a Receiver; returns the data bytes sent.
    progress(bytes_done, bytes_total) is called as data goes out."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
        hello = _recv(sock, len(MAGIC) + 32)
        if not hello.startswith(MAGIC):
            raise TransferError(f"{address}:{port} is not a disk transfer receiver")
        challenge = hello[len(MAGIC):]
        sock.sendall(hmac.digest(bytes.fromhex(token), challenge, hashlib.sha256))
        ok = sock.recv(1)
        if ok != b"\x01":
            raise TransferError(f"{address}:{port} refused this migration's token")
        try:
            done = _stream(sock, Sealer(token, challenge), files, progress)
        except OSError as e:          # the receiver gave up: its reason, if it sent one
            raise TransferError(f"{address}:{port} rejected the transfer: "
                                f"{_reason(sock) or e}") from None
        answer = sock.recv(4096)
        if answer[:1] != b"\x01":
            raise TransferError(f"{address}:{port} rejected the transfer: "
                                f"{answer[1:].decode('utf-8', 'replace') or 'no answer'}")
        return done


def _reason(sock):
    try:
        sock.settimeout(2)
        answer = sock.recv(4096)
    except OSError:
        return ""
    return answer[1:].decode("utf-8", "replace") if answer[:1] == b"\x00" else ""


def _stream(sock, sealer, files, progress):
    """Every frame of files, then the end; the data bytes read."""
    total = sum(os.path.getsize(p) for _, p in files)
    done = 0
    buf = bytearray(CHUNK)
    for name, path in files:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = FILE.pack(b"F", len(name.encode()), size)
            sock.sendall(head + sealer.seal(name.encode(), head))
            for offset, length in data_extents(f.fileno(), size):
                end = offset + length
                while offset < end:
                    n = os.preadv(f.fileno(), [memoryview(buf)[:min(CHUNK, end - offset)]],
                                  offset)
                    if n == 0:
                        break
                    if not _zero(buf, n):
                        head = DATA.pack(b"D", offset, n)
                        sealed = sealer.seal(memoryview(buf)[:n], head)
                        sock.sendall(head)
                        sock.sendall(sealed)
                    offset += n
                    done += n
                    if progress:
                        progress(done, total)
    sock.sendall(b"Z" + sealer.seal(b"", b"Z"))
    return done


# -- the receiving side -----------------------------------------------------------

class Receiver:
    """Accepts one authenticated transfer into directory (created when the
    sender connects; it must not exist then).  allowed: the file names that
    may arrive; max_bytes: the most data accepted in all, and the largest
    size a file may declare."""

    def __init__(self, directory, allowed, max_bytes, bind_address, timeout=300):
        self.directory, self.allowed, self.max_bytes = directory, set(allowed), max_bytes
        self.token = new_token()
        self.timeout = timeout
        self.files = []
        self.error = None
        self._made_dir = False
        self._done = threading.Event()
        self._sock = socket.create_server((bind_address, 0))
        self._sock.settimeout(timeout)
        self.address, self.port = bind_address, self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="disk-receiver", daemon=True)
        self._thread.start()

    def offer(self):
        """What the source needs to connect."""
        return {"address": self.address, "port": self.port, "token": self.token}

    def wait(self, timeout):
        """The names received; raises TransferError if it failed or did not
        end in timeout seconds."""
        if not self._done.wait(timeout):
            raise TransferError("no disk transfer arrived in time")
        if self.error:
            raise TransferError(self.error)
        return list(self.files)

    def close(self):
        try:
            self._sock.close()
        except OSError:
            pass

    def _serve(self):
        try:
            conn, peer = self._sock.accept()
        except OSError as e:
            self.error = f"no sender connected: {e}"
            self._done.set()
            return
        finally:
            self.close()
        with conn:
            conn.settimeout(self.timeout)
            try:
                sealer = self._authenticate(conn)
            except (OSError, TransferError) as e:
                LOG.warning("disk transfer from %s refused: %s", peer, e)
                self.error = f"sender {peer[0]} failed authentication: {e}"
                self._done.set()
                return
            started = time.monotonic()
            try:
                received = self._receive(conn, sealer)
                conn.sendall(b"\x01")
                LOG.info("received %d bytes of disk data from %s in %.3f s", received,
                         peer[0], time.monotonic() - started)
            except (OSError, TransferError) as e:
                self.error = str(e)
                self._discard()
                try:
                    conn.sendall(b"\x00" + str(e).encode()[:1000])
                except OSError:
                    pass
        self._done.set()

    def _authenticate(self, conn):
        """The challenge answered with the token; the connection's Sealer."""
        challenge = secrets.token_bytes(32)
        conn.sendall(MAGIC + challenge)
        answer = _recv(conn, 32)
        want = hmac.digest(bytes.fromhex(self.token), challenge, hashlib.sha256)
        if not hmac.compare_digest(answer, want):
            raise TransferError("wrong token")
        conn.sendall(b"\x01")
        return Sealer(self.token, challenge)

    def _receive(self, conn, sealer):
        os.mkdir(self.directory)
        os.chmod(self.directory, 0o751)      # virt.libvirt.files.DIR_MODE: QEMU passes
        self._made_dir = True
        buf = memoryview(bytearray(CHUNK + TAG))
        fd, size, received = None, 0, 0
        try:
            while True:
                kind = _recv(conn, 1)
                if kind == b"Z":
                    sealer.open(_recv(conn, TAG), b"Z")
                    break
                if kind == b"F":
                    head = kind + _recv(conn, FILE.size - 1)
                    _, name_len, size = FILE.unpack(head)
                    if name_len > MAX_NAME:
                        raise TransferError("a file name too long")
                    name = sealer.open(_recv(conn, name_len + TAG), head)
                    fd = self._open(name.decode("utf-8", "replace"), size, fd)
                elif kind == b"D":
                    head = kind + _recv(conn, DATA.size - 1)
                    _, offset, length = DATA.unpack(head)
                    if fd is None or length > CHUNK or offset + length > size:
                        raise TransferError("a data extent outside its file")
                    received += length
                    if received > self.max_bytes:
                        raise TransferError(f"more than {self.max_bytes} bytes sent")
                    sealed = _recv_exact(conn, buf[:length + TAG])
                    os.pwrite(fd, sealer.open(sealed, head), offset)
                else:
                    raise TransferError(f"unknown frame {kind!r}")
        finally:
            if fd is not None:
                os.close(fd)
        return received

    def _open(self, name, size, previous):
        if previous is not None:
            os.close(previous)
        if name not in self.allowed or name in self.files:
            raise TransferError(f"file {name!r} was not expected")
        if size > self.max_bytes:
            raise TransferError(f"file {name!r} of {size} bytes is larger than its disk "
                                "can be")
        fd = os.open(os.path.join(self.directory, name),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)   # as a disk made here
        os.ftruncate(fd, size)
        self.files.append(name)
        return fd

    def _discard(self):
        for name in self.files:
            try:
                os.unlink(os.path.join(self.directory, name))
            except OSError:
                pass
        self.files = []
        if self._made_dir:                 # never a directory that existed before
            try:
                os.rmdir(self.directory)
            except OSError:
                pass
