"""An iSCSI target for the test bed: tgtd (extracted by tools/install.sh,
TESTBED section 6) in the switch namespace, its portal on the management
network the hosts reach, LUNs on files in the bed's directory, CHAP per
target (or, with no namespace, on the machine itself).  volume() answers
Cinder's connection info for one LUN."""
import os
import random
import shutil
import signal
import subprocess
import uuid

from tests.harness.agent import wait_until

TGT = "/opt/compute-agent-tgt/usr/sbin"
IQN_PREFIX = "iqn.2026-11.bed.storage"


class IscsiTarget:
    def __init__(self, ns, address, directory):
        self.ns, self.address, self.dir = ns, address, directory
        self.control = random.randint(100, 9999)     # tgtd's control port: socket.N
        self.tids, self.accounts = {}, set()
        self.log = open(os.path.join(directory, "tgtd.log"), "w")
        # made here: tgtd run through `ip netns exec` does not make it itself
        os.makedirs("/var/run/tgtd", exist_ok=True)
        self.proc = subprocess.Popen(
            [*(["ip", "netns", "exec", ns] if ns else []), "setsid", os.path.join(TGT, "tgtd"),
             "-f",
             "-C", str(self.control), "--iscsi", f"portal={address}:3260"],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: os.path.exists(f"/var/run/tgtd/socket.{self.control}"), 20,
                       0.1, "tgtd's control socket")
        except TimeoutError:
            self.log.flush()
            with open(self.log.name) as f:
                raise TimeoutError(f"tgtd did not start: {f.read()[-2000:]}") from None

    def adm(self, *args):
        subprocess.run([os.path.join(TGT, "tgtadm"), "-C", str(self.control), "--lld",
                        "iscsi", *args], check=True, capture_output=True, text=True)

    def volume(self, name, size_mb=32, user=None, password=None, content=None):
        """A new LUN on a sparse file (holding the raw image content, when
        given: a volume made from an image); (volume id, connection info,
        path).  name: lower-case letters, digits, '-' and '.' (it ends the IQN)."""
        path = os.path.join(self.dir, f"{name}.img")
        if content:
            shutil.copyfile(content, path)
        with open(path, "ab") as f:
            f.truncate(max(size_mb * 2 ** 20, f.tell()))
        tid = len(self.tids) + 1
        iqn = f"{IQN_PREFIX}:{name}"
        self.adm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", "1",
                 "-b", path)
        self.adm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")
        data = {"target_portal": f"{self.address}:3260", "target_iqn": iqn, "target_lun": 1}
        if user:
            if user not in self.accounts:
                self.adm("--op", "new", "--mode", "account", "--user", user,
                         "--password", password)
                self.accounts.add(user)
            self.adm("--op", "bind", "--mode", "account", "--tid", str(tid), "--user", user)
            data.update(auth_method="CHAP", auth_username=user, auth_password=password)
        self.tids[name] = tid
        return str(uuid.uuid4()), {"driver_volume_type": "iscsi", "data": data}, path

    @staticmethod
    def read(path, length):
        """The first bytes of a LUN, from its backing file."""
        with open(path, "rb") as f:
            return f.read(length)

    def stop(self):
        """tgtd ignores SIGTERM while it has targets: delete them first."""
        for tid in self.tids.values():
            subprocess.run([os.path.join(TGT, "tgtadm"), "-C", str(self.control), "--lld",
                            "iscsi", "--op", "delete", "--mode", "target", "--tid", str(tid),
                            "--force"], capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for leftover in (f"/var/run/tgtd/socket.{self.control}",
                         f"/var/run/tgtd/socket.{self.control}.lock"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        self.log.close()
