"""A single-node Ceph cluster for the test bed (TESTBED section 8): one
monitor, one manager and one BlueStore OSD on a sparse file, all under
one directory, no systemd and no /etc/ceph (every command gets -c), the
daemons in a network namespace (the bed's switch) so the hosts reach the
monitor on the management network.  volume() answers Cinder's connection
info for a new RBD image with a cephx user that may use only its pool;
client() makes pools and a user for agents keeping instance disks there
(images_type = rbd), with a ceph.conf and keyring that user can read."""
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

from tests.harness.agent import AGENT_USER, wait_until

POOL = "volumes"
USER = "tbvol"


class CephCluster:
    def __init__(self, ns, address, directory):
        """ns: the namespace its daemons run in (None: this one)."""
        self.ns, self.address = ns, address
        self.dir = os.path.join(directory, "ceph")
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.procs = []
        for sub in ("run", "log", "mon", "mgr/ceph-x", "osd/ceph-0", "blocks"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.fsid = str(uuid.uuid4())
        self._write_conf()
        started = time.monotonic()
        self._bootstrap()
        self.startup_s = round(time.monotonic() - started, 1)

    def _write_conf(self):
        d, a = self.dir, self.address
        with open(self.conf, "w") as f:
            f.write(f"""[global]
fsid = {self.fsid}
mon_host = [v2:{a}:3300,v1:{a}:6789]
public_addr = {a}
ms_bind_ipv6 = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_data_avail_warn = 5
run_dir = {d}/run
pid_file = {d}/run/$name.pid
admin_socket = {d}/run/$name.asok
log_file = {d}/log/$name.log
keyring = {d}/keyring
[mon]
mon_data = {d}/mon/$cluster-$id
[mgr]
mgr_data = {d}/mgr/$cluster-$id
keyring = {d}/mgr/$cluster-$id/keyring
[osd]
osd_data = {d}/osd/$cluster-$id
keyring = {d}/osd/$cluster-$id/keyring
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = 4294967296
bluestore_block_path = {d}/blocks/$id.block
osd_memory_target = 939524096
""")

    def _in_ns(self):
        return ["ip", "netns", "exec", self.ns] if self.ns else []

    def _run(self, *argv, ns=False, input=None):
        prefix = self._in_ns() if ns else []
        return subprocess.run([*prefix, *argv], check=True, capture_output=True, text=True,
                              input=input, timeout=120).stdout

    def ceph(self, *args):
        return self._run("ceph", "-c", self.conf, *args, ns=True)

    def _daemon(self, *argv):
        log = open(os.path.join(self.dir, "log", f"{argv[0]}-{len(self.procs)}.out"), "w")
        self.procs.append(subprocess.Popen([*self._in_ns(), *argv, "-f"],
                                           stdout=log, stderr=subprocess.STDOUT))

    def _bootstrap(self):
        d, c = self.dir, self.conf
        mon_keyring = os.path.join(d, "mon.keyring")
        self._run("ceph-authtool", "--create-keyring", mon_keyring, "--gen-key", "-n", "mon.",
                  "--cap", "mon", "allow *")
        self._run("ceph-authtool", "--create-keyring", os.path.join(d, "keyring"), "--gen-key",
                  "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                  "--cap", "mgr", "allow *", "--cap", "mds", "allow *")
        self._run("ceph-authtool", mon_keyring, "--import-keyring", os.path.join(d, "keyring"))
        monmap = os.path.join(d, "monmap")
        self._run("monmaptool", "--create", "--addv", "a",
                  f"[v2:{self.address}:3300,v1:{self.address}:6789]", "--fsid", self.fsid,
                  monmap)
        self._run("ceph-mon", "-c", c, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring",
                  mon_keyring)
        self._daemon("ceph-mon", "-c", c, "-i", "a")
        wait_until(lambda: self._quiet("ceph", "-c", c, "--connect-timeout", "2", "mon",
                                       "stat"), 60, 0.5, "the Ceph monitor")
        self.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd",
                  "allow *", "mds", "allow *", "-o", os.path.join(d, "mgr/ceph-x/keyring"))
        self._daemon("ceph-mgr", "-c", c, "-i", "x")
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).strip()
        self.ceph("auth", "get-or-create", f"osd.{osd_id}", "mon", "allow profile osd", "mgr",
                  "allow profile osd", "osd", "allow *", "-o",
                  os.path.join(d, f"osd/ceph-{osd_id}/keyring"))
        self._run("ceph-osd", "-c", c, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid, ns=True)
        self._daemon("ceph-osd", "-c", c, "-i", osd_id)
        wait_until(lambda: json.loads(self.ceph("osd", "stat", "-f", "json"))
                   .get("num_up_osds") == 1, 90, 0.5, "the OSD up")
        self.ceph("osd", "pool", "create", POOL, "8")
        self._run("rbd", "-c", c, "pool", "init", POOL, ns=True)
        wait_until(self._clean, 90, 0.5, "every PG active+clean")
        self.key = self.ceph("auth", "get-or-create-key", f"client.{USER}", "mon",
                             "profile rbd", "osd", f"profile rbd pool={POOL}").strip()

    def _quiet(self, *argv):
        return subprocess.run([*self._in_ns(), *argv],
                              capture_output=True, timeout=30).returncode == 0

    def _clean(self):
        stat = json.loads(self.ceph("pg", "stat", "-f", "json"))
        states = stat.get("pg_summary", stat).get("num_pg_by_state", [])
        total = sum(s["num"] for s in states)
        return total > 0 and all(s["name"] == "active+clean" for s in states)

    def volume(self, name, size_mb=32, content=None):
        """A new RBD image (imported from a raw image file, when given: a
        volume made from an image); (volume id, connection info, image spec)."""
        if content:
            self._run("rbd", "-c", self.conf, "import", "--no-progress", content,
                      f"{POOL}/{name}", ns=True)
        else:
            self._run("rbd", "-c", self.conf, "create", f"{POOL}/{name}", "--size",
                      str(size_mb), ns=True)
        return str(uuid.uuid4()), {"driver_volume_type": "rbd", "data": {
            "name": f"{POOL}/{name}", "hosts": [self.address], "ports": ["6789"],
            "auth_enabled": True, "auth_username": USER, "key": self.key}}, f"{POOL}/{name}"

    def client(self, user, pools):
        """New pools and a cephx user allowed rbd on them; (ceph.conf, keyring)
        of that user, owned by the agents' user (no admin socket, no log)."""
        for pool in pools:
            self.ceph("osd", "pool", "create", pool, "8")
            self._run("rbd", "-c", self.conf, "pool", "init", pool, ns=True)
        caps = ", ".join(f"profile rbd pool={p}" for p in pools)
        key = self.ceph("auth", "get-or-create-key", f"client.{user}", "mon", "profile rbd",
                        "osd", caps).strip()
        wait_until(self._clean, 90, 0.5, "every PG active+clean")
        d = os.path.join(self.dir, f"client-{user}")
        os.makedirs(d, exist_ok=True)
        conf, keyring = os.path.join(d, "ceph.conf"), os.path.join(d, "keyring")
        with open(conf, "w") as f:
            f.write(f"[global]\nfsid = {self.fsid}\n"
                    f"mon_host = [v2:{self.address}:3300,v1:{self.address}:6789]\n"
                    "admin_socket =\nlog_file = /dev/null\n")
        with open(keyring, "w") as f:
            f.write(f"[client.{user}]\n\tkey = {key}\n")
        os.chmod(keyring, 0o600)
        for path in (d, keyring):
            shutil.chown(path, AGENT_USER, AGENT_USER)
        return conf, keyring

    def serve_instances(self, agents, pool="vms", user="tbcompute"):
        """The agents restarted with images_type = rbd on a new pool (and
        the pool images, for clone parents), as a user allowed rbd on
        both; one secret uuid on every host (a migrated guest's XML names
        it).  Builds from then on make their disks in the pool."""
        conf, keyring = self.client(user, (pool, "images"))
        secret = str(uuid.uuid4())
        for agent in agents:
            with open(agent.config_file, "a") as f:
                f.write(f"[libvirt]\nimages_type = rbd\nimages_rbd_pool = {pool}\n"
                        f"images_rbd_ceph_conf = {conf}\nimages_rbd_keyring = {keyring}\n"
                        f"rbd_user = {user}\nrbd_secret_uuid = {secret}\n")
            agent.kill_agent()
            agent.restart_agent()

    def images_of(self, u, pool="vms"):
        """The names of an instance's images in the pool."""
        return sorted(n for n in json.loads(self.rbd("ls", "--format", "json", pool))
                      if n.startswith(u))

    def rbd(self, *args):
        """The rbd command as the admin (its output)."""
        return self._run("rbd", "-c", self.conf, *args, ns=True)

    def size(self, spec):
        """The image's size in bytes."""
        return json.loads(self._run("rbd", "-c", self.conf, "info", "--format", "json", spec,
                                    ns=True))["size"]

    def resize(self, spec, size_mb):
        """Grow the image, as Cinder's extend does on the storage."""
        self._run("rbd", "-c", self.conf, "resize", "--size", str(size_mb), spec, ns=True)

    def read(self, spec, length):
        """The first bytes of an image, read with the admin's key."""
        out = subprocess.run([*self._in_ns(), "rbd", "-c", self.conf, "export", spec, "-"],
                             capture_output=True, timeout=60, check=True).stdout
        return out[:length]

    def stop(self):
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
