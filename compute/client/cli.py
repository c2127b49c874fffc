"""What computectl's commands share: the errors it prints, the flavor
and file arguments it reads, the waits on a record (state changes or a
progress line) and how results are printed."""
import json
import sys
import time

from compute.core import exception

FLAVOR_KEYS = {"vcpus": "vcpus", "ram": "memory_mb", "memory_mb": "memory_mb",
               "disk": "root_gb", "root_gb": "root_gb", "ephemeral": "ephemeral_gb",
               "ephemeral_gb": "ephemeral_gb", "swap": "swap_mb", "swap_mb": "swap_mb",
               "name": "name"}


class CLIError(Exception):
    pass


def parse_flavor(text):
    flavor = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in FLAVOR_KEYS:
            raise CLIError(f"bad flavor item {item!r}; use vcpus=N,ram=MiB,disk=GiB"
                           "[,ephemeral=GiB,swap=MiB]")
        flavor[FLAVOR_KEYS[key]] = value if key == "name" else _int(value, key)
    return flavor


def _int(value, key):
    try:
        return int(value)
    except ValueError:
        raise CLIError(f"flavor {key} must be an integer, not {value!r}")


def wait_for(api, host, uuid, done, quiet, timeout=600, error_ends=True):
    """Poll get_instance until done(record) and show each state change;
    ERROR ends the wait with its fault unless error_ends is false (a
    delete of an instance in ERROR)."""
    deadline, last = time.monotonic() + timeout, None
    grace = time.monotonic() + 10   # a just-cast build may not be recorded yet
    while time.monotonic() < deadline:
        try:
            rec = api.get_instance(host, uuid)
        except exception.InstanceNotFound:
            if time.monotonic() > grace:
                raise
            time.sleep(0.05)
            continue
        state = (rec["vm_state"], rec["task_state"], rec["power_state"])
        if state != last and not quiet:
            print(f"  {uuid}: vm_state={state[0]} task_state={state[1]} power={state[2]}",
                  file=sys.stderr)
            last = state
        if rec["vm_state"] == "error" and error_ends:
            raise CLIError(f"instance {uuid} went to ERROR: {rec['fault']}")
        if done(rec):
            return rec
        time.sleep(0.2)
    raise CLIError(f"timed out waiting for instance {uuid}")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise CLIError(f"{path}: {e}") from None


def read_file(path, binary=False):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except OSError as e:
        raise CLIError(f"{path}: {e.strerror}") from None


def key_pairs(specs):
    """--key NAME=FILE (an OpenSSH public key file) as key_pairs."""
    pairs = []
    for spec in specs or ():
        name, sep, path = spec.partition("=")
        if not sep or not name:
            raise CLIError(f"--key {spec!r}: expected NAME=PUBLIC_KEY_FILE")
        pairs.append({"name": name, "type": "ssh", "public_key": read_file(path).strip()})
    return pairs


def follow_progress(api, host, uuid, label, quiet, timeout=3600):
    """Poll host's record of uuid until its task settles, with a progress
    line; the last record."""
    deadline, shown = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        rec = api.get_instance(host, uuid)
        now = (rec["task_state"], rec["progress"])
        if now != shown and rec["task_state"] and not quiet:
            print(f"  {label} {rec['task_state']:20} {rec['progress'] or 0:3d}%", file=sys.stderr)
            shown = now
        if rec["task_state"] is None:
            return rec
        time.sleep(0.2)
    raise CLIError(f"timed out waiting for {uuid} on {host}")


def render(result, as_json):
    if result is None:
        return
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif isinstance(result, str):
        print(result)
    elif isinstance(result, dict) and any(isinstance(v, (dict, list)) for v in result.values()):
        print(json.dumps(result, indent=2, sort_keys=True))
    elif isinstance(result, list):
        if not result:
            return
        keys = [k for k in ("uuid", "name", "host", "binary", "vm_state", "task_state",
                            "power_state", "status", "updated_at", "action", "start",
                            "finish", "result", "events", "image_id", "size_bytes", "hits",
                            "misses", "present") if k in result[0]]
        rows = [keys] + [[str(r.get(k)) for k in keys] for r in result]
        widths = [max(len(row[i]) for row in rows) for i in range(len(keys))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    else:
        for k in sorted(result):
            print(f"{k:14} {result[k]}")
