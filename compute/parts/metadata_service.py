"""The metadata service: what cloud-init's OpenStack and EC2 datasources
ask http://169.254.169.254/ for, answered per host.

A guest's request reaches here by the DNAT of network.firewall's
ca-meta-pre (only from its own tap, with its own fixed address, on a
network with `metadata` on), and ca-input drops anything that reached the
port otherwise.  So the source address names the guest: `lookup` (given by
the caller, reading the records) turns it into that instance's documents,
and a request can never name another instance (no uuid in any path).

`answer` is the tree, a pure function of a path and one guest's documents;
the WSGI app and the waitress server around it are thin.  waitress: a
pure-Python, threaded, production WSGI server, imported when the first
network with metadata is plugged.
"""
import json
import logging
import re
import threading

from compute.core import instance_data

LOG = logging.getLogger(__name__)
OPENSTACK_DOCS = ("meta_data.json", "network_data.json", "user_data", "vendor_data.json",
                  "vendor_data2.json")
EC2_VERSIONS = ("1.0", "2007-01-19", "2009-04-04", "latest")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def _listing(names):
    return 200, "\n".join(names).encode()


def _ec2_meta(meta, local_ip):
    keys = list(meta["public_keys"].items())
    tree = {"instance-id": meta["uuid"], "hostname": meta["hostname"],
            "local-hostname": meta["hostname"], "local-ipv4": local_ip or "",
            "placement/availability-zone": meta.get("availability_zone") or "",
            "ami-launch-index": str(meta.get("launch_index", 0))}
    if keys:
        tree["public-keys"] = "\n".join(f"{i}={name}" for i, (name, _) in enumerate(keys))
        for i, (_, key) in enumerate(keys):
            tree[f"public-keys/{i}"] = "openssh-key"
            tree[f"public-keys/{i}/openssh-key"] = key
    return tree


def answer(path, docs, local_ip=None):
    """(status, body bytes) of a GET of path for the guest whose documents
    are docs (instance_data.documents)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return _listing(EC2_VERSIONS + ("openstack",))
    if parts[0] == "openstack":
        if len(parts) == 1:
            return _listing(instance_data.VERSIONS)
        if parts[1] not in instance_data.VERSIONS and not _DATE.match(parts[1]):
            return 404, b"Not Found"
        if len(parts) == 2:
            return _listing([d for d in OPENSTACK_DOCS if d in docs])
        if len(parts) == 3 and parts[2] in docs:
            return 200, docs[parts[2]]
        return 404, b"Not Found"
    if parts[0] not in EC2_VERSIONS and not _DATE.match(parts[0]):
        return 404, b"Not Found"
    if len(parts) == 1:
        return _listing(["meta-data"] + (["user-data"] if "user_data" in docs else []))
    if parts[1] == "user-data" and len(parts) == 2:
        return (200, docs["user_data"]) if "user_data" in docs else (404, b"Not Found")
    if parts[1] != "meta-data":
        return 404, b"Not Found"
    tree = _ec2_meta(json.loads(docs["meta_data.json"]), local_ip)
    key = "/".join(parts[2:])
    if key in tree:
        return 200, tree[key].encode()
    prefix = key + "/" if key else ""
    below = set()
    for k in tree:
        if k.startswith(prefix):
            first = k[len(prefix):].split("/")[0]
            nested = any(o.startswith(prefix + first + "/") for o in tree)
            below.add(first + "/" if nested else first)
    return _listing(sorted(below)) if below else (404, b"Not Found")


class MetadataServer:
    """One per host, started by networking when a network with metadata
    is first plugged.  lookup(source address) gives (documents, the
    address) of the guest there, or None."""

    def __init__(self, port, lookup, threads=4):
        self.port, self.lookup, self.threads = port, lookup, threads
        self._server = self._thread = None

    def app(self, environ, start_response):
        source = environ.get("REMOTE_ADDR", "")
        status, body = 405, b"Method Not Allowed"
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            found = self.lookup(source)
            if found is None:
                LOG.warning("metadata request from %s: no guest of a metadata network has "
                            "that address here", source)
                status, body = 404, b"Not Found"
            else:
                status, body = answer(environ.get("PATH_INFO", "/"), *found)
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
        start_response(f"{status} {reason}", [("Content-Type", "text/plain"),
                                              ("Content-Length", str(len(body)))])
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else [b""]

    @property
    def running(self):
        return self._server is not None

    def start(self):
        import waitress  # loaded with the first metadata network

        self._server = waitress.create_server(self.app, host="0.0.0.0", port=self.port,
                                              threads=self.threads, ident="compute-agent")
        self._thread = threading.Thread(target=self._server.run, name="metadata",
                                        daemon=True)
        self._thread.start()
        LOG.info("metadata service listening on port %s", self.port)

    def stop(self):
        if self._server is not None:
            self._server.close()
            self._server = None
