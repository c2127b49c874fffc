"""What crosses an interface, seen with tcpdump in the test's own
namespaces: the proof that a packet did or did not reach a guest's tap, an
uplink or the external network (a ping's answer alone can come from the
host, which also holds a floating address)."""
import subprocess
import time


class Capture:
    """tcpdump on iface of netns ns while the with-block runs; .lines are
    the packets (one line each, with link-level headers) that matched the
    BPF filter.  direction "out": only what the interface sends (for a
    guest's tap: what reaches the guest), "in": what it receives."""

    def __init__(self, ns, iface, bpf, direction=None, pcap=None):
        """pcap: write the whole packets there (tcpdump -w) instead of lines."""
        out = ["-w", pcap, "-U", "-s", "0"] if pcap else ["-e", "-l"]
        self.argv = ["ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-nn", *out,
                     *(["-Q", direction] if direction else []), bpf]
        self.lines = []

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "listening on" in line:
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"tcpdump did not start: {' '.join(self.argv)}")

    def __exit__(self, *exc):
        time.sleep(0.3)                   # packets in flight when the block ended
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self.lines = [line for line in out.splitlines() if line.strip()]
        return False
