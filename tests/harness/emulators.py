"""Who the guests' emulators run as, read from /proc: every QEMU and
swtpm process on the machine (every bed's hosts share its pid namespace)
with its uids, gids and capabilities, and a sampler that records, for a
whole test session, any that ever ran as root or with a capability."""
import os
import threading

EMULATORS = ("qemu-system-x86_64", "qemu-system-x86", "swtpm")


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def emulators():
    """[{pid, comm, uids, gids, groups, cap_eff, cap_prm, guest}] of every
    QEMU and swtpm process now."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if not comm.startswith(EMULATORS):
                continue
            st = _status(pid)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue                 # gone meanwhile
        if st.get("State", "").startswith(("Z", "X")) or argv == [b""]:
            continue                 # exiting (a -daemonize parent): nothing runs in it
        guest = next((a.decode(errors="replace").split("=", 1)[1].split(",")[0]
                      for a in argv if a.startswith(b"guest=")), None)
        probe = guest is None and (
            (comm.startswith("qemu") and any(
                a.startswith(b"none") for prev, a in zip(argv, argv[1:], strict=False)
                if prev == b"-machine"))
            or (comm.startswith("swtpm") and b"--print-capabilities" in argv))
        found.append({"pid": int(pid), "comm": comm, "probe": probe,
                      "argv": b" ".join(argv).decode(errors="replace")[:200],
                      "uids": [int(u) for u in st["Uid"].split()],
                      "gids": [int(g) for g in st["Gid"].split()],
                      "groups": [int(g) for g in st.get("Groups", "").split()],
                      "cap_eff": int(st["CapEff"], 16), "cap_prm": int(st["CapPrm"], 16),
                      "guest": guest})
    return found


def privileged(found):
    """Those of found running as root (any of their uids or gids) or with
    any effective or permitted capability, but libvirt's capability probes,
    which run no guest code: QEMU with -machine none and no guest (libvirt
    gives it CAP_DAC_OVERRIDE for the probe) and swtpm --print-capabilities
    (libvirt runs it as itself to learn the emulator's features)."""
    return [p for p in found if not p["probe"] and (
        0 in p["uids"] or 0 in p["gids"] or p["cap_eff"] or p["cap_prm"])]


class Sampler:
    """Samples emulators() every interval seconds until stopped; .seen is
    how many distinct processes it saw, .offenders those privileged()."""

    def __init__(self, interval=1.0):
        self.interval, self.seen, self.offenders = interval, set(), {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="emulators")

    def _run(self):
        while not self._stop.is_set():
            found = emulators()
            self.seen.update((p["pid"], p["comm"]) for p in found)
            for p in privileged(found):
                self.offenders.setdefault((p["pid"], p["comm"]), p)
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)
