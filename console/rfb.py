"""The RFB (VNC) security handshake the console proxy does for its users.

Every guest's VNC server has a password of its own (the agent sets a
random one at each definition; it travels only inside the console token,
which only the proxy reads), so nobody who reaches the console address,
a guest included, gets a screen without a token.  The proxy answers the
server's VNC authentication challenge (RFB 3.8, security type 2: DES of
the challenge under the password) and then offers its own client no
authentication (type 1): the token was the client's proof.  After both
handshakes the proxy relays bytes as for any console.

Pure but for the two byte streams, passed as functions: recv_exact(n)
and send(data) of each side."""
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

VERSION = b"RFB 003.008\n"
NONE, VNC_AUTH = 1, 2
OK = b"\x00\x00\x00\x00"


class HandshakeError(Exception):
    """A side did not speak RFB 3.8 as expected; the message says how."""


def _reverse_bits(byte):
    return int(f"{byte:08b}"[::-1], 2)


def vnc_response(password, challenge):
    """The 16-byte answer to a VNC authentication challenge: DES-ECB of
    the challenge under the password (at most 8 bytes, NUL-padded), each
    key byte's bits reversed as the RFB protocol has it."""
    key = bytes(_reverse_bits(b) for b in password.encode("latin-1")[:8].ljust(8, b"\0"))
    des = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()   # K1=K2=K3: single DES
    return des.update(challenge) + des.finalize()


def authenticate_to_server(recv_exact, send, password):
    """Log in to a guest's VNC server with its password."""
    version = recv_exact(12)
    if not version.startswith(b"RFB 003.") or version[8:11] < b"008":
        raise HandshakeError(f"the VNC server speaks {version!r}, not RFB 3.8")
    send(VERSION)
    count = recv_exact(1)[0]
    if count == 0:
        reason = recv_exact(int.from_bytes(recv_exact(4), "big"))
        raise HandshakeError(f"the VNC server refused: {reason.decode('latin-1')}")
    types = recv_exact(count)
    if VNC_AUTH not in types:
        raise HandshakeError(f"the VNC server offers no password login (types {list(types)})")
    send(bytes([VNC_AUTH]))
    send(vnc_response(password, recv_exact(16)))
    if recv_exact(4) != OK:
        raise HandshakeError("the VNC server refused the guest's password")


def greet_client(recv_exact, send):
    """Give the proxy's client an RFB 3.8 server that asks for nothing."""
    send(VERSION)
    version = recv_exact(12)
    if not version.startswith(b"RFB 003.008"):
        raise HandshakeError(f"the client speaks {version!r}, not RFB 3.8")
    send(bytes([1, NONE]))
    if recv_exact(1) != bytes([NONE]):
        raise HandshakeError("the client chose a security type it was not offered")
    send(OK)


class Buffered:
    """recv_exact over a source of chunks (socket.recv, a websocket's
    messages); what is left after a handshake is in .rest."""

    def __init__(self, next_chunk):
        self.next_chunk, self.rest = next_chunk, b""

    def recv_exact(self, n):
        while len(self.rest) < n:
            chunk = self.next_chunk()
            if not chunk:
                raise HandshakeError("the other side closed during the handshake")
            self.rest += chunk
        data, self.rest = self.rest[:n], self.rest[n:]
        return data
