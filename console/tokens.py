"""Console tokens: what an agent hands a user so that the console proxy
lets them through to one guest's serial port or VNC server, once.

A token is `HOST~FERNET`: the name of the host that signed it, then a
Fernet token (AES-CBC + HMAC-SHA256, with its issue time) under that
host's own key ([console] token_key, a key per host) over a small JSON
document: the console kind, the instance uuid, the signing host's name
again, the address and port the proxy must connect to, when it expires,
and for VNC the guest's VNC password (which only the proxy reads).
Nobody but that host and the proxy can make or read one.

The proxy knows each host (ConsoleHosts: its key, the addresses its
consoles listen on, the port ranges of its serial consoles and VNC
servers) and refuses, before any connection, a token whose host it does
not know, that its key does not open, whose target is not one of that
host's console addresses and ports (a token one host minted for another
host's guest, or for the database's address, names nothing it may
reach), that names another instance or kind than the URL it came with,
that expired (its own expiry, or the proxy's ttl cap from its issue
time), that was issued before the proxy started, or that was used
already.  All checks are pure functions of the token, the hosts, the
clock, except the used-token record the checker holds."""
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import threading
import time

from cryptography import fernet

KINDS = ("serial", "vnc")
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
SEPARATOR = "~"


class TokenRefused(Exception):
    """The token does not open this console; the message says why."""


@dataclasses.dataclass(frozen=True)
class Target:
    kind: str
    instance_uuid: str
    host: str                     # the address the proxy connects to
    port: int
    expires: float
    signer: str = ""              # the name of the host that signed it
    password: str | None = None   # the guest's VNC password, for the proxy only


@dataclasses.dataclass(frozen=True)
class ConsoleHost:
    """What the proxy knows of one host's consoles."""

    name: str
    key: bytes
    addresses: frozenset
    ports: dict                   # kind -> (low, high)

    def allows(self, kind, address, port):
        low, high = self.ports[kind]
        return address in self.addresses and low <= port <= high


def new_key():
    """A fresh key for [console] token_key (urlsafe base64 of 32 bytes)."""
    return fernet.Fernet.generate_key().decode()


def issue(key, signer, kind, instance_uuid, host, port, ttl, now=None, password=None):
    """A token, signed by host `signer` with its key, opening
    instance_uuid's `kind` console at host:port for ttl seconds (str)."""
    if kind not in KINDS:
        raise ValueError(f"console kind {kind!r} is not one of {KINDS}")
    if not HOST_NAME.match(signer):
        raise ValueError(f"host name {signer!r} cannot sign console tokens")
    now = time.time() if now is None else now
    doc = {"k": kind, "u": instance_uuid, "n": signer, "h": host, "p": int(port),
           "x": now + ttl}
    if password is not None:
        doc["w"] = password
    body = json.dumps(doc, separators=(",", ":")).encode()
    return signer + SEPARATOR + fernet.Fernet(key).encrypt_at_time(body, int(now)).decode()


def _split(token):
    signer, sep, body = token.partition(SEPARATOR) if isinstance(token, str) else ("", "", "")
    if not sep or not HOST_NAME.match(signer):
        raise TokenRefused("the token names no host")
    return signer, body


def read(hosts, token, max_ttl, now):
    """The Target a token names, after its signature, its host's limits
    and its age are checked; hosts(name) gives a ConsoleHost or None.
    Raises TokenRefused.  Pure: no record of use."""
    signer, body = _split(token)
    host = hosts(signer)
    if host is None:
        raise TokenRefused(f"host {signer!r} is not one whose consoles this proxy opens")
    try:
        raw = body.encode("ascii")
        doc = json.loads(fernet.Fernet(host.key).decrypt_at_time(raw, max_ttl, int(now)))
        target = Target(doc["k"], doc["u"], doc["h"], int(doc["p"]), float(doc["x"]),
                        doc["n"], doc.get("w"))
    except fernet.InvalidToken:
        raise TokenRefused("the token is forged, altered, not signed by its host, or older "
                           "than the proxy accepts") from None
    except (UnicodeError, ValueError, KeyError, TypeError):
        raise TokenRefused("the token is not a console token") from None
    if target.signer != signer or target.kind not in KINDS:
        raise TokenRefused("the token is not a console token")
    if not host.allows(target.kind, target.host, target.port):
        raise TokenRefused(f"the token names {target.host}:{target.port}, which is not a "
                           f"{target.kind} console of host {signer}")
    if target.expires <= now:
        raise TokenRefused("the token has expired")
    return target


class TokenChecker:
    """Redeems tokens for the proxy: each at most once, none issued before
    the checker was made.  hosts(name) -> ConsoleHost or None.
    Thread-safe."""

    def __init__(self, hosts, max_ttl, clock=time.time):
        self.hosts, self.max_ttl, self.clock = hosts, max_ttl, clock
        self.started = int(clock())
        self._used = {}                      # sha256 of a token -> when it expires
        self._lock = threading.Lock()

    def redeem(self, token, kind, instance_uuid):
        """The Target token opens for this kind and instance; raises
        TokenRefused.  A token is spent even when the connection it opens
        fails afterwards."""
        now = self.clock()
        target = read(self.hosts, token, self.max_ttl, now)
        if target.kind != kind or target.instance_uuid != instance_uuid:
            raise TokenRefused(f"the token is not for the {kind} console of {instance_uuid}")
        key = self.hosts(target.signer).key
        issued = fernet.Fernet(key).extract_timestamp(_split(token)[1].encode("ascii"))
        if issued < self.started:
            raise TokenRefused("the token was issued before the proxy started")
        digest = hashlib.sha256(token.encode("ascii")).hexdigest()
        with self._lock:
            self._used = {d: x for d, x in self._used.items() if x > now}
            if digest in self._used:
                raise TokenRefused("the token was already used")
            self._used[digest] = min(target.expires, issued + self.max_ttl) + 1
        return target


# -- the proxy's list of hosts --------------------------------------------------------

def _range(text, where):
    try:
        low, high = (int(p) for p in str(text).split(":"))
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not LOW:HIGH") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"{where}: {text!r} is not within 1-65535")
    return low, high


def parse_hosts(doc):
    """{name: ConsoleHost} of a hosts file's JSON document:
    {"HOST": {"token_key": KEY, "addresses": [IP, ...],
              "serial_ports": "LOW:HIGH", "vnc_ports": "LOW:HIGH"}, ...}"""
    if not isinstance(doc, dict):
        raise ValueError("the console hosts file is not a JSON object of hosts")
    hosts = {}
    for name, entry in doc.items():
        if not HOST_NAME.match(name) or not isinstance(entry, dict):
            raise ValueError(f"console host {name!r}: not a host name with its settings")
        unknown = set(entry) - {"token_key", "addresses", "serial_ports", "vnc_ports"}
        if unknown or "token_key" not in entry or not entry.get("addresses"):
            raise ValueError(f"console host {name}: needs token_key and addresses "
                             f"(unknown keys: {sorted(unknown)})")
        key = str(entry["token_key"]).encode()
        try:
            fernet.Fernet(key)
            addresses = frozenset(str(ipaddress.ip_address(a)) for a in entry["addresses"])
        except (ValueError, TypeError) as e:
            raise ValueError(f"console host {name}: {e}") from None
        hosts[name] = ConsoleHost(name, key, addresses, {
            "serial": _range(entry.get("serial_ports", "10000:10999"), f"{name} serial_ports"),
            "vnc": _range(entry.get("vnc_ports", "5900:6099"), f"{name} vnc_ports")})
    return hosts


class ConsoleHosts:
    """The hosts file, read again whenever it changes (a host added needs
    no restart of the proxy); a file that no longer parses keeps the last
    good list (and says why in the log, once per change)."""

    def __init__(self, path, log=None):
        self.path, self.log = path, log
        self._seen, self._hosts = None, {}
        self._lock = threading.Lock()
        self._load()

    def _load(self):
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._seen:
            return
        self._seen = stamp
        try:
            with open(self.path) as f:
                self._hosts = parse_hosts(json.load(f))
        except ValueError as e:
            if self.log is None or not self._hosts:
                raise
            self.log.error("console hosts file %s refused, keeping the last one: %s",
                           self.path, e)

    def __call__(self, name):
        with self._lock:
            try:
                self._load()
            except OSError:
                pass
            return self._hosts.get(name)
