"""The RPC endpoint on topic 'compute': the boundary where untrusted
payloads arrive.  Its methods are those of compute.rpc.contract; each payload
was checked against its schema (compute.rpc.contract.PayloadCheck, in the
wrapper chain) before the method runs; the method checks what a schema
cannot say, then hands over to the manager's parts.

- build_and_run_instance and terminate_instance are casts: the build is
  recorded here and runs in the build pool; a delete is allowed from any
  state.
- Power operations are calls that answer at once: the state transition is
  checked and taken here (a refused one raises InstanceInvalidState to the
  caller, and nothing changes), and the work runs in the worker pool.
- Queries are calls.
"""
import logging

import oslo_messaging as messaging

from compute.core import exception, faults, instance_data, optable, states, volume_rules
from compute.core.resource_tracker import claim_request
from compute.rpc import contract
from network import hostres
from network import model as net_model
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)

class ComputeEndpoint:
    target = messaging.Target(namespace=None, version=contract.VERSION)

    def __init__(self, manager):
        self.manager = manager
        self.db = manager.db

    def _check_networking(self, method, items, groups):
        """What the schema cannot say: addresses inside their subnets, rule
        prefixes of their ethertype, ports new to this host, every group a
        port names either sent along or known already, and networks this
        host can serve with what it owns (network.hostres)."""
        try:
            vifs = [net_model.vif_from_payload(item, f"networks[{i}]")
                    for i, item in enumerate(items)]
            ports = [p for _, p in vifs]
            self.manager.networking.check_networks([(f"networks[{i}].network", n)
                                         for i, (n, _) in enumerate(vifs)])
            for i, g in enumerate(groups):
                net_model.group_from_payload(g, f"security_groups[{i}]")
            ids = [p.id for p in ports]
            taken = set(ids) & set(self.manager.networking.host_ports()) if ids else set()
            if len(set(ids)) != len(ids) or taken:
                raise ValueError(f"networks: port ids must be new and unique: "
                                 f"{sorted(taken) or ids}")
            hostres.check_fixed_ips_unique(
                [(f"networks[{i}].port", n.id, p) for i, (n, p) in enumerate(vifs)],
                [(n.id, p) for n, p, _ in self.manager.networking.host_ports().values()])
            self.manager.networking.check_security_groups(ports, groups)
        except (ValueError, exception.InvalidRequest) as e:
            e = exception.InvalidRequest(f"{method}: {e}")
            LOG.warning("rejected %s: %s", method, e)
            raise e from None

    def __getattr__(self, name):
        """The methods compute.rpc.contract makes: a declaration that only
        starts a row (accepted or refused at once, then run in the worker
        pool), or one that serves a part method with its params."""
        declared = contract.starting(name)
        if declared is not None:
            def start(ctxt, instance_uuid):
                return self._start(ctxt, declared.starts, instance_uuid)
            start.__name__ = name
            return start
        declared = contract.serving(name)
        if declared is None:
            raise AttributeError(name)

        def serve(ctxt, **payload):
            method = self.manager.part_method(declared.serves)
            args = [payload[p] for p in declared.params]
            return method(ctxt, *args) if declared.ctxt else method(*args)
        serve.__name__ = name
        return serve

    def _start(self, ctxt, op, uuid):
        """Accept op by its row and submit the part method the row runs."""
        self.manager.runner.accept(op, uuid)
        self.manager.submit(self.manager.runs(op), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": op}

    # -- casts ------------------------------------------------------------------

    def build_and_run_instance(self, ctxt, **payload):
        groups = payload.get("security_groups", [])
        self._check_networking("build_and_run_instance", payload.get("networks", []), groups)
        conf = self.manager.conf
        try:
            guest_data = instance_data.guest_data_from_payload(
                payload, conf.force_config_drive, conf.default_availability_zone)
        except ValueError as e:
            LOG.warning("rejected build_and_run_instance: %s", e)
            raise exception.InvalidRequest(f"build_and_run_instance: {e}") from None
        uuid = payload["instance_uuid"]
        if self.db.uuid_elsewhere(uuid):
            # a build queued while this host was down, of an instance that
            # lives, or lived, on another host meanwhile: nobody wants it here
            LOG.warning("build_and_run_instance %s dropped, nothing done: another host "
                        "launched that instance", uuid)
            self.manager.ops.notify("build_and_run_instance.dropped",
                                    {"instance_uuid": uuid, "reason": "launched elsewhere"},
                                    error=True)
            return
        self.manager.networking.save_security_groups(groups)
        flavor = {"ephemeral_gb": 0, "swap_mb": 0, "name": "", **payload["flavor"]}
        boot = payload.get("boot_volume")
        volumes = [] if boot is None else [{**boot, "device": virt_driver.BOOT_DEVICE}]
        record = dict(uuid=uuid, display_name=payload["name"], host=self.manager.host,
                      vm_state=states.BUILDING, power_state=virt_driver.NOSTATE, flavor=flavor,
                      image_ref=payload["image_id"], networks=payload.get("networks", []),
                      metadata_=payload.get("metadata", {}), guest_data=guest_data,
                      image_meta={}, disk_formats={}, volumes=volumes)
        try:        # recorded inside the claim, so concurrent builds cannot over-commit
            volume_rules.check_all(volumes, conf.volume_allowed_networks)
            request = claim_request(flavor, volumes,
                                    new_disks_shared=self.manager.driver.new_disks_shared())
            with self.manager.tracker.claim(request, f"instance {uuid}"):
                self.manager.runner.record("build", **record)
        except (exception.ResourcesUnavailable, exception.InvalidRequest) as e:
            # the caller (a cast) reads the fault; a refused volume is not kept
            LOG.warning("build of %s refused: %s", uuid, e)
            self.manager.runner.record("build", failed=True, **dict(record, volumes=[]),
                                       fault=f"{type(e).__name__}: {e}")
            self.manager.ops.notify("create.error", {"instance_uuid": uuid, "message": str(e)},
                                    error=True)
            return
        self.manager.submit_build(self.manager.runs("build"), ctxt, uuid,
                                  payload.get("admin_pass"))

    def terminate_instance(self, ctxt, **payload):
        self.manager.submit(self.manager.runs("delete"), ctxt, payload["instance_uuid"])

    def cache_images(self, ctxt, **payload):
        self.manager.submit_build(self.manager.images.cache_images, ctxt, payload["image_ids"])

    # -- power operations (calls that answer once accepted) ---------------------

    def reboot_instance(self, ctxt, **payload):
        op = "reboot_hard" if payload["reboot_type"] == "HARD" else "reboot_soft"
        return self._start(ctxt, op, payload["instance_uuid"])

    # -- live migration (client -> source; source -> destination) -----------------

    def live_migrate_instance(self, ctxt, **payload):
        uuid = payload["instance_uuid"]
        lm = self.manager.live_migrations
        mig = lm.accept(uuid, payload["dest_host"], payload.get("networks"))
        self.manager.submit(self.manager.runs("live_migration"), ctxt, uuid, mig.id,
                            payload["dest_host"], payload["block_migration"],
                            payload.get("networks"))
        return {"instance_uuid": uuid, "migration_id": mig.id, "accepted": "live_migration"}

    def live_migration_abort(self, ctxt, **payload):
        return self.manager.live_migrations.control(payload["instance_uuid"], "abort")

    def live_migration_force_complete(self, ctxt, **payload):
        return self.manager.live_migrations.control(payload["instance_uuid"], "force_complete")

    def check_can_live_migrate_destination(self, ctxt, **payload):
        self._check_networking("check_can_live_migrate_destination",
                               payload["instance"]["networks"],
                               payload["instance"]["security_groups"])
        return self.manager.live_migrations.check_can_live_migrate_destination(
            payload["instance"], payload["block_migration"], payload["probe"],
            payload["source_host"], payload.get("cpu"))

    # -- cold migration and resize (client -> source or destination; agents) -----

    def migrate_instance(self, ctxt, **payload):
        """Cold-migrate (no flavor) or resize; accepted with the migration id."""
        uuid = payload["instance_uuid"]
        rs = self.manager.resizes
        mig = rs.accept_resize(uuid, payload["dest_host"], payload.get("flavor"),
                               payload.get("networks"))
        self.manager.submit(self.manager.runs("resize"), ctxt, uuid, mig.id,
                            payload.get("networks"))
        return {"instance_uuid": uuid, "migration_id": mig.id, "accepted": mig.migration_type}

    def confirm_resize(self, ctxt, **payload):
        return self._decide(ctxt, payload["instance_uuid"], "confirm_resize")

    def revert_resize(self, ctxt, **payload):
        return self._decide(ctxt, payload["instance_uuid"], "revert_resize")

    def _decide(self, ctxt, uuid, op_name):
        rs = self.manager.resizes
        mig = rs.accept_decision(uuid, op_name)
        self.manager.submit(self.manager.runs(op_name), ctxt, uuid, mig.id)
        return {"instance_uuid": uuid, "migration_id": mig.id,
                "accepted": optable.TABLE[op_name].tasks[0]}

    def list_migrations(self, ctxt, **payload):
        return self.manager.resizes.list_migrations(payload.get("instance_uuid"))

    def prep_resize(self, ctxt, **payload):
        mig, inst = payload["migration"], payload["instance"]
        if mig["source_host"] != self.manager.host:
            self._check_networking("prep_resize", inst["networks"], inst["security_groups"])
        return self.manager.resizes.prep_resize(ctxt, mig, inst, payload["probe"])

    def rebuild_instance(self, ctxt, **payload):
        """Accepted once the image is found; runs in the worker pool."""
        uuid = payload["instance_uuid"]
        image = self.manager.builds.accept_rebuild(uuid, payload.get("image_ref"),
                                                   payload.get("preserve_ephemeral", False))
        self.manager.submit(self.manager.runs("rebuild"), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": "rebuild", "image_ref": image}

    def rescue_instance(self, ctxt, **payload):
        """Accepted once the rescue image is found; runs in the worker pool."""
        uuid = payload["instance_uuid"]
        image = self.manager.rescues.accept_rescue(uuid, payload.get("rescue_image_ref"))
        self.manager.submit(self.manager.runs("rescue"), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": "rescue", "rescue_image_ref": image}


    def shelve_instance(self, ctxt, **payload):
        """Accepted at once; the guest is shut down and its root disk
        uploaded in the worker pool (then offloaded when
        shelved_offload_time is 0)."""
        uuid = payload["instance_uuid"]
        self.manager.shelving.accept_shelve(uuid)
        self.manager.submit(self.manager.runs("shelve"), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": "shelve"}


    def unshelve_instance(self, ctxt, **payload):
        """Here, or on dest_host: then the record is handed over before
        the call returns (and the destination spawns)."""
        uuid = payload["instance_uuid"]
        sh = self.manager.shelving
        if sh.accept_unshelve(uuid, payload.get("dest_host"), payload.get("networks")):
            self.manager.submit(self.manager.runs("unshelve"), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": "unshelve",
                "host": payload.get("dest_host") or self.manager.host}

    def attach_volume(self, ctxt, **payload):
        """Accepted once its driver takes the connection info; attached in
        the worker pool (a failure is the instance's fault, the guest as it
        was).  Answers the guest's device."""
        uuid, vols = payload["instance_uuid"], self.manager.volumes
        device = vols.accept_attach(uuid, payload["volume_id"], payload["connection_info"])
        self.manager.submit(self.manager.runs("attach_volume"), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": "attach_volume", "device": device}

    def detach_volume(self, ctxt, **payload):
        uuid, vols = payload["instance_uuid"], self.manager.volumes
        vols.accept_detach(uuid, payload["volume_id"])
        self.manager.submit(self.manager.runs("detach_volume"), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": "detach_volume"}

    def extend_volume(self, ctxt, **payload):
        """After the storage grew the volume: the running guest is told its
        new size (new_size, bytes); a size below what the guest sees is
        refused."""
        uuid, vols = payload["instance_uuid"], self.manager.volumes
        vols.accept_extend(uuid, payload["volume_id"], payload["new_size"])
        self.manager.submit(self.manager.runs("extend_volume"), ctxt, uuid)
        return {"instance_uuid": uuid, "accepted": "extend_volume"}

    def evacuate_instance(self, ctxt, **payload):
        """To the host that takes the instance of a host whose service is
        down (a database the hosts share); accepted with the migration
        id, rebuilt in the worker pool."""
        uuid, networks = payload["instance_uuid"], payload.get("networks")
        ev, peers = self.manager.evacuations, self.manager.peers
        migration_id = ev.open(uuid, payload["source_host"])
        faults.point("evacuate.opened")
        try:
            record = ev.source_record(uuid, payload["source_host"])
            peers.check_networks_view(record, networks)
            body = ev.given_credentials(peers.record_payload(record, networks), payload)
            self._check_networking("evacuate_instance", body["networks"],
                                   body["security_groups"])
            mig, keeps_disks = ev.accept(record, body, migration_id)
        except Exception:
            ev.abandon(migration_id)
            raise
        self.manager.submit(self.manager.runs("evacuate"), ctxt, uuid)
        return {"instance_uuid": uuid, "migration_id": mig["id"], "accepted": "evacuate",
                "shared_storage": keeps_disks}

    def take_shelved_instance(self, ctxt, **payload):
        """From the host that has an offloaded instance: unshelve it here."""
        inst = payload["instance"]
        self._check_networking("take_shelved_instance", inst["networks"],
                               inst["security_groups"])
        return self.manager.shelving.take_shelved(ctxt, inst, payload["shelved_image_id"],
                                                  payload["source_host"])

    def snapshot_instance(self, ctxt, **payload):
        """Accepted at once with the new image (queued); the copy and the
        upload run in the worker pool: follow task_state and progress."""
        uuid = payload["instance_uuid"]
        snapshots = self.manager.snapshots
        image = snapshots.accept_snapshot(uuid, payload["name"])
        self.manager.submit(self.manager.runs("snapshot"), ctxt, uuid, image["id"])
        return {"instance_uuid": uuid, "image_id": image["id"], "accepted": "snapshot"}

    def set_admin_password(self, ctxt, **payload):
        uuid = payload["instance_uuid"]
        self.manager.runner.accept("set_admin_password", uuid)
        self.manager.lifecycle.set_admin_password(ctxt, uuid, payload["admin_pass"],
                                                  payload.get("user", "root"))
        return self.manager.get_instance(uuid)

    def reset_state(self, ctxt, **payload):
        self.manager.lifecycle.reset_state(ctxt, payload["instance_uuid"], payload["state"])
        return self.manager.get_instance(payload["instance_uuid"])

    # -- networking (calls that answer once applied) -----------------------------

    def refresh_security_group_rules(self, ctxt, **payload):
        self._check_networking("refresh_security_group_rules", [],
                               [payload["security_group"]])
        return self.manager.networking.refresh_security_group_rules(payload["security_group"])

    def attach_interface(self, ctxt, **payload):
        item = {"port": payload["port"], "network": payload["network"]}
        groups = payload.get("security_groups", [])
        self._check_networking("attach_interface", [item], groups)
        return self.manager.networking.attach_interface(ctxt, payload["instance_uuid"], item,
                                                        groups)

    def associate_floating_ip(self, ctxt, **payload):
        return self.manager.networking.associate_floating_ip(
            ctxt, payload["instance_uuid"], payload["address"], payload.get("fixed_ip"))

    # -- queries ----------------------------------------------------------------

    def get_instance(self, ctxt, **payload):
        return self.manager.get_instance(payload["instance_uuid"])

    def list_instances(self, ctxt, **payload):
        return self.manager.list_instances()

    def list_instance_actions(self, ctxt, **payload):
        return self.manager.list_instance_actions(payload["instance_uuid"])

    def get_console_output(self, ctxt, **payload):
        return self.manager.get_console_output(payload["instance_uuid"], payload.get("length"))

    def get_serial_console(self, ctxt, **payload):
        return self.manager.consoles.get(payload["instance_uuid"], "serial")

    def get_vnc_console(self, ctxt, **payload):
        return self.manager.consoles.get(payload["instance_uuid"], "vnc")

    def get_host_status(self, ctxt, **payload):
        return self.manager.get_host_status()

    def ping(self, ctxt, **payload):
        return {"host": self.manager.host, "status": "ok"}
