"""Credentials at rest: what an instance record holds that opens something
(a volume's connection info, with its CHAP password or cephx key; the
user data the guest is given; an attach's volume in task_args) is sealed
with the host's own key before it is written to the database, and opened
when this host reads its record back.  Another host, or anyone who reads
the shared database, sees a Fernet token it has no key for.

A host's keys live in [DEFAULT] seal_key_file (made at the first start,
the agent's alone): the first seals, every one opens, so a rotation
(`compute-agent-manage seal-key rotate`, run with the agent's config)
puts a new key first, re-seals the host's rows and keeps the previous
key second, to open only.  The agent reads the file again (one stat) at
each read or write of records.
A record that moves is opened by the host that lets it go and sent to
the one that takes it (over RPC, as a build's are), which seals it with
its own key; an evacuation, whose source is down, is given the
credentials again by the operator (`computectl evacuate --connection`,
`--user-data`).

The transforms are pure functions over the record's column values."""
import json
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED = "sealed"           # {"sealed": token} stands where a secret was


class SealKeyError(Exception):
    pass


def is_sealed(value):
    return isinstance(value, dict) and set(value) == {SEALED}


class Sealer:
    """keys: Fernet keys, the first seals, all open; path: the key file
    they came from, read again when it changes (a rotation while the
    agent runs)."""

    def __init__(self, keys, path=None):
        self.path, self._stamp = path, self._file_stamp(path)
        self._use(keys)

    @classmethod
    def from_file(cls, path, create=True):
        return cls(load_keys(path, create), path)

    @staticmethod
    def _file_stamp(path):
        if path is None:
            return None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino, st.st_size

    def _use(self, keys):
        if not keys:
            raise SealKeyError("no seal key")
        self.keys = list(keys)
        self._fernet = MultiFernet([Fernet(k) for k in self.keys])
        self._first = Fernet(self.keys[0])

    def refresh(self):
        """The keys read again if the key file changed (one stat): once per
        record or batch of records, not per value."""
        if self.path is None:
            return
        stamp = self._file_stamp(self.path)
        if stamp != self._stamp:
            self._use(load_keys(self.path, create=False))
            self._stamp = stamp

    def seal(self, value):
        if value is None or is_sealed(value):
            return value
        return {SEALED: self._fernet.encrypt(json.dumps(value).encode()).decode()}

    def open(self, value):
        """The secret; a value sealed with a key this host does not have
        stays sealed (another host's record)."""
        if not is_sealed(value):
            return value
        try:
            return json.loads(self._fernet.decrypt(value[SEALED].encode()))
        except InvalidToken:
            return value

    def current(self, value):
        """Whether sealed value is sealed with the sealing key."""
        try:
            self._first.decrypt(value[SEALED].encode())
            return True
        except InvalidToken:
            return False


def _map_volume(volume, fn):
    return {**volume, "connection_info": fn(volume.get("connection_info"))}


def transform(values, fn):
    """values (column name -> value, as written or read) with every secret
    passed through fn (seal or open); other values as they are (pure)."""
    out = dict(values)
    if out.get("volumes"):
        out["volumes"] = [_map_volume(v, fn) for v in out["volumes"]]
    if out.get("guest_data") and "user_data" in out["guest_data"]:
        out["guest_data"] = {**out["guest_data"],
                             "user_data": fn(out["guest_data"]["user_data"])}
    if out.get("task_args") and isinstance(out["task_args"].get("volume"), dict):
        out["task_args"] = {**out["task_args"],
                            "volume": _map_volume(out["task_args"]["volume"], fn)}
    return out


SECRET_COLUMNS = ("volumes", "guest_data", "task_args")


def open_record(inst, sealer):
    """The ORM record inst (detached) with its secrets opened in place
    (transform builds new containers; the loaded ones are not changed)."""
    values = {c: getattr(inst, c) for c in SECRET_COLUMNS}
    for column, value in transform(values, sealer.open).items():
        setattr(inst, column, value)
    return inst


def secrets(values):
    """Every secret value of values, sealed or not (pure)."""
    found = []
    transform(values, lambda v: found.append(v) or v)
    return [v for v in found if v is not None]


def all_sealed(values, sealer=None):
    """Whether no secret of values is in the clear; with sealer, also
    whether each is sealed with its sealing key (a rotation's test)."""
    return all(is_sealed(v) and (sealer is None or sealer.current(v))
               for v in secrets(values))


def still_sealed(values):
    """What of a record opened here is still sealed (another host's key):
    ["volume <id>", "user data"] (pure)."""
    names = []
    for v in values.get("volumes") or ():
        if is_sealed(v.get("connection_info")):
            names.append(f"volume {v.get('volume_id')}")
    if is_sealed((values.get("guest_data") or {}).get("user_data")):
        names.append("user data")
    return names


def load_keys(path, create=True):
    """The keys of a key file (one per line, the sealing one first); a new
    file with one key, the agent's alone, when there is none and create."""
    try:
        with open(path) as f:
            keys = [line.strip().encode() for line in f if line.strip()]
    except FileNotFoundError:
        if not create:
            raise SealKeyError(f"seal key file {path} does not exist") from None
        keys = [Fernet.generate_key()]
        write_keys(path, keys)
    for k in keys:
        try:
            Fernet(k)
        except ValueError:
            raise SealKeyError(f"seal key file {path} holds a line that is no Fernet "
                               "key") from None
    if not keys:
        raise SealKeyError(f"seal key file {path} is empty")
    return keys


def write_keys(path, keys):
    """The key file replaced whole (0600, written aside then renamed)."""
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(k.decode() + "\n" for k in keys))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
