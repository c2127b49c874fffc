"""Peers: the agent-to-agent steps both migrations share.  The RPC client
to other agents (whose answers are schema-checked, compute.rpc.schemas
ANSWERS), the instance record as a destination gets it and records it, the
shared-storage probe (a file the driver writes where instances live; the
other host looks for it), and the destination's view of the networks."""
import contextlib

from compute.core import exception, volume_rules
from compute.db.models import utcnow
from virt import driver as virt_driver

RECORD_FIELDS = ("uuid", "display_name", "vm_state", "flavor", "image_ref", "image_meta",
                 "disk_formats", "networks")      # and volumes, when it has any


class Peers:
    def __init__(self, conf, db, driver, runner, networking, host, transport=None):
        self.conf, self.db, self.driver, self.networking = conf, db, driver, networking
        self.runner, self.host, self.transport = runner, host, transport
        self._api = None

    @property
    def api(self):
        """The RPC client to other agents, on the service's own transport
        (made when first needed)."""
        if self._api is None:
            from compute.rpc.client import ComputeAPI
            self._api = ComputeAPI(self.conf, transport=self.transport,
                                   timeout=self.conf.rpc_peer_timeout)
        return self._api

    @contextlib.contextmanager
    def probe(self):
        """A shared-storage probe file for the length of the block; its name
        (the other host answers whether it sees it)."""
        name = self.driver.write_shared_probe(self.host)
        try:
            yield name
        finally:
            self.driver.remove_shared_probe(name)

    def sees_probe(self, name):
        return self.driver.has_shared_probe(name)

    def find(self, uuid):
        """The live record of uuid here, or None."""
        try:
            return self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            return None

    @staticmethod
    def check_networks_view(inst, networks):
        """The destination's view of the networks must name exactly the
        instance's ports."""
        if networks is None:
            return
        mine = sorted(item["port"]["id"] for item in inst.networks or ())
        if sorted(item["port"]["id"] for item in networks) != mine:
            raise exception.InvalidRequest(
                f"networks: the destination's view must list the instance's ports {mine}")

    def record_payload(self, inst, networks=None):
        """The record as the destination gets it (with its own view of the
        networks when the caller gave one)."""
        payload = {k: getattr(inst, k) for k in RECORD_FIELDS}
        if networks is not None:
            payload["networks"] = networks
        payload["metadata"] = inst.metadata_ or {}
        if inst.guest_data:
            payload["guest_data"] = inst.guest_data
        if inst.volumes:
            payload["volumes"] = list(inst.volumes)
        gids = {g for item in inst.networks or () for g in item["port"].get(
            "security_groups", ())}
        # the groups as the record's host has them (an evacuation reads a
        # dead host's record and groups; their bodies are checked as a build's)
        payload["security_groups"] = list(self.db.security_groups(gids, inst.owner).values())
        return payload

    def record_incoming(self, instance, op_name, **overrides):
        """Destination: the record of an instance arriving from another host
        (the payload of record_payload), with its security groups, in the
        first task state of op_name (the row of this host's half)."""
        volume_rules.check_all(instance.get("volumes") or [], self.conf.volume_allowed_networks)
        self.networking.add_peer_security_groups(instance["security_groups"])
        self.db.instance_purge(instance["uuid"], only_deleted=True)   # it lived here before
        values = dict(
            uuid=instance["uuid"], display_name=instance["display_name"], host=self.host,
            vm_state=instance["vm_state"],
            power_state=virt_driver.NOSTATE, flavor=instance["flavor"],
            image_ref=instance["image_ref"], image_meta=instance["image_meta"],
            disk_formats=instance["disk_formats"], networks=instance["networks"],
            metadata_=instance["metadata"], guest_data=instance.get("guest_data") or {},
            volumes=instance.get("volumes") or [], launched_at=utcnow())
        values.update(overrides)
        return self.runner.record(op_name, **values)
