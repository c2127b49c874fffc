"""A TLS client connection that two threads may use at once, one reading
and one writing, as the console proxy's relay does.

Python's ssl.SSLSocket must not be read and written from two threads at
the same moment (OpenSSL's SSL object is not safe for it: bytes went
missing when it was).  Here the TLS state is an ssl.SSLObject over two
memory BIOs: every call on it runs under one lock and never blocks (it
only moves bytes between the BIOs), and the blocking reads and writes of
the TCP socket happen outside that lock."""
import ssl
import threading

CHUNK = 64 * 1024


class TLSStream:
    def __init__(self, sock, context, server_hostname):
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._lock = threading.Lock()           # the SSLObject and the BIOs
        self._send_lock = threading.Lock()      # the socket's write side, in order
        self._handshake()

    def _flush(self):
        with self._send_lock:
            with self._lock:
                data = self._out.read()
            if data:
                self.sock.sendall(data)

    def _feed(self):
        data = self.sock.recv(CHUNK)
        with self._lock:
            if data:
                self._in.write(data)
            else:
                self._in.write_eof()
        return bool(data)

    def _handshake(self):
        while True:
            try:
                with self._lock:
                    self._tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise ssl.SSLEOFError("the server closed during the TLS handshake")

    def sendall(self, data):
        with self._send_lock:
            with self._lock:
                self._tls.write(data)
                pending = self._out.read()
            self.sock.sendall(pending)

    def recv(self, n):
        """Up to n bytes of plaintext; b"" once the server closed."""
        while True:
            try:
                with self._lock:
                    return self._tls.read(n)
            except ssl.SSLWantReadError:
                self._flush()                   # what reading produced (key updates)
                if not self._feed():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def settimeout(self, value):
        self.sock.settimeout(value)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()
