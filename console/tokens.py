"""Console tokens: what an agent hands a user so that the console proxy
lets them through to one guest's serial port or VNC server, once.

A token is a Fernet token (AES-CBC + HMAC-SHA256, with its issue time)
over a small JSON document: the console kind, the instance uuid, the
address and port the proxy must connect to, and when it expires.  Agents
and the proxy share the key ([console] token_key); nobody else can make
or read one, so the guest's address never reaches the user and a token
cannot be altered to point at another guest.

The proxy (TokenChecker) refuses a token that is forged or altered, that
names another instance or kind than the URL it came with, that expired
(by its own expiry or by the proxy's ttl cap), that was issued before the
proxy started (its record of used tokens starts empty), or that was
already used.  All checks are pure functions of the token, the key and
the clock, except the used-token record the checker holds."""
import dataclasses
import hashlib
import json
import threading
import time

from cryptography import fernet

KINDS = ("serial", "vnc")


class TokenRefused(Exception):
    """The token does not open this console; the message says why."""


@dataclasses.dataclass(frozen=True)
class Target:
    kind: str
    instance_uuid: str
    host: str
    port: int
    expires: float


def new_key():
    """A fresh key for [console] token_key (urlsafe base64 of 32 bytes)."""
    return fernet.Fernet.generate_key().decode()


def issue(key, kind, instance_uuid, host, port, ttl, now=None):
    """A token opening instance_uuid's `kind` console at host:port for ttl
    seconds (str)."""
    if kind not in KINDS:
        raise ValueError(f"console kind {kind!r} is not one of {KINDS}")
    now = time.time() if now is None else now
    body = json.dumps({"k": kind, "u": instance_uuid, "h": host, "p": int(port),
                       "x": now + ttl}, separators=(",", ":")).encode()
    return fernet.Fernet(key).encrypt_at_time(body, int(now)).decode()


def read(key, token, max_ttl, now):
    """The Target a token names, after its signature and age are checked;
    raises TokenRefused.  Pure: no record of use."""
    try:
        raw = token.encode("ascii")
        body = fernet.Fernet(key).decrypt_at_time(raw, max_ttl, int(now))
        doc = json.loads(body)
        target = Target(doc["k"], doc["u"], doc["h"], int(doc["p"]), float(doc["x"]))
    except fernet.InvalidToken:
        raise TokenRefused("the token is forged, altered or older than the proxy "
                           "accepts") from None
    except (UnicodeError, ValueError, KeyError, TypeError):
        raise TokenRefused("the token is not a console token") from None
    if target.expires <= now:
        raise TokenRefused("the token has expired")
    return target


class TokenChecker:
    """Redeems tokens for the proxy: each at most once, none issued before
    the checker was made.  Thread-safe."""

    def __init__(self, key, max_ttl, clock=time.time):
        self.key, self.max_ttl, self.clock = key, max_ttl, clock
        self.started = int(clock())
        self._used = {}                      # sha256 of a token -> when it expires
        self._lock = threading.Lock()

    def redeem(self, token, kind, instance_uuid):
        """The Target token opens for this kind and instance; raises
        TokenRefused.  A token is spent even when the connection it opens
        fails afterwards."""
        now = self.clock()
        target = read(self.key, token, self.max_ttl, now)
        if target.kind != kind or target.instance_uuid != instance_uuid:
            raise TokenRefused(f"the token is not for the {kind} console of {instance_uuid}")
        issued = fernet.Fernet(self.key).extract_timestamp(token.encode("ascii"))
        if issued < self.started:
            raise TokenRefused("the token was issued before the proxy started")
        digest = hashlib.sha256(token.encode("ascii")).hexdigest()
        with self._lock:
            self._used = {d: x for d, x in self._used.items() if x > now}
            if digest in self._used:
                raise TokenRefused("the token was already used")
            self._used[digest] = min(target.expires, issued + self.max_ttl) + 1
        return target
