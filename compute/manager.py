"""ComputeManager: what each RPC operation does, step by step, in the order
an operator's runbook would list them.  Spawn, delete and the queries are
here; power operations in compute.lifecycle; restart reconcile and power
sync in compute.reconcile; the image cache in compute.image_cache.
Locking, action records, notifications and faults come from
compute.operation; payloads were validated at the RPC boundary
(compute.endpoint) before anything reaches here."""
import logging
from concurrent.futures import ThreadPoolExecutor

from compute import exception, states
from compute.db.models import utcnow
from compute.image_cache import ImageCacheMixin
from compute.lifecycle import LifecycleMixin
from compute.live_migration import LiveMigrationMixin
from compute.networking import NetworkingMixin
from compute.operation import Operations
from compute.reconcile import BUILD_TASK_STATES, ReconcileMixin
from compute.resize import ResizeMixin
from compute.snapshot import SnapshotMixin
from imagecache.glance import split_properties
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)


def instance_view(inst, fault=None):
    """The JSON answer of get_instance/list_instances."""
    return {
        "uuid": inst.uuid, "name": inst.display_name, "host": inst.host,
        "vm_state": inst.vm_state, "task_state": inst.task_state, "progress": inst.progress,
        "power_state": virt_driver.POWER_STATE_NAMES.get(inst.power_state, "NOSTATE"),
        "flavor": inst.flavor, "image_id": inst.image_ref, "metadata": inst.metadata_,
        "created_at": _iso(inst.created_at), "launched_at": _iso(inst.launched_at),
        "updated_at": _iso(inst.updated_at),
        "fault": fault.message if fault is not None else None,
    }


def _iso(ts):
    return ts.isoformat() + "Z" if ts else None


class ComputeManager(LifecycleMixin, ReconcileMixin, ImageCacheMixin, NetworkingMixin,
                     SnapshotMixin, LiveMigrationMixin, ResizeMixin):
    def __init__(self, conf, db, driver, image_cache, glance, vif_plugin, notifier=None):
        self.conf, self.db, self.driver = conf, db, driver
        self.cache, self.glance, self.vifs = image_cache, glance, vif_plugin
        self.host = conf.host
        self.ops = Operations(db, notifier, self.host)
        self.builds = ThreadPoolExecutor(conf.max_concurrent_builds, thread_name_prefix="build")
        self.workers = ThreadPoolExecutor(conf.max_concurrent_operations,
                                          thread_name_prefix="op")
        self._init_networking(conf)
        self._init_snapshots(conf)
        self._init_resize()

    def submit(self, fn, *args):
        """Run an accepted operation in the worker pool."""
        return self.workers.submit(fn, *args)

    def shutdown(self):
        for pool in (self.builds, self.workers):
            pool.shutdown(wait=True)

    @staticmethod
    def virt_instance(inst):
        """The driver's view of an instance record."""
        return virt_driver.Instance(
            uuid=inst.uuid, display_name=inst.display_name,
            flavor=virt_driver.Flavor(**inst.flavor), image_id=inst.image_ref,
            created_at=inst.created_at.strftime("%Y-%m-%d %H:%M:%S") if inst.created_at else "",
            disk_formats=dict(inst.disk_formats or {}))

    # -- spawn ------------------------------------------------------------------

    def build_and_run_instance(self, ctxt, uuid):
        """Runs in the build pool after the endpoint recorded the instance.
        On failure the fault is recorded (by ops.run) before the instance is
        moved to ERROR, so ERROR always comes with its reason."""
        try:
            with self.ops.run(ctxt, uuid, "create"):
                self._build(uuid)
        except Exception as e:
            LOG.error("instance %s: build failed: %s", uuid, e)
            try:
                self.db.instance_update(uuid, expected_task_state=BUILD_TASK_STATES,
                                        vm_state=states.ERROR, task_state=None,
                                        power_state=virt_driver.NOSTATE)
            except exception.ComputeError as e2:
                LOG.warning("instance %s: not moved to ERROR: %s", uuid, e2)

    def _build(self, uuid):
        inst = self.db.instance_get(uuid)
        plugged = False
        try:
            self.db.instance_update(uuid, expected_task_state=states.SCHEDULING,
                                    task_state=states.NETWORKING)
            network_info = self._plug_vifs(inst)
            plugged = True
            self.db.instance_update(uuid, expected_task_state=states.NETWORKING,
                                    task_state=states.SPAWNING)
            image_meta = split_properties(self.glance.show(inst.image_ref))
            files = self._image_files(inst, image_meta)
            formats = self.driver.spawn(self.virt_instance(inst), image_meta, files,
                                        network_info)
            power = self._power_state(inst)
        except Exception:
            self._cleanup_failed_build(inst, unplug=plugged)
            raise
        self.db.instance_update(uuid, expected_task_state=states.SPAWNING,
                                vm_state=states.ACTIVE, task_state=None, power_state=power,
                                launched_at=utcnow(), image_meta=image_meta,
                                disk_formats=formats)

    def _cleanup_failed_build(self, inst, unplug=True):
        """Undo what a failed build created: guest, disks, instance dir, VIFs
        (_plug_vifs undid its own partial work, hence unplug=False)."""
        try:
            self.driver.destroy(self.virt_instance(inst), [], destroy_disks=True)
            if unplug:
                self._unplug_vifs(inst)
        except Exception:
            LOG.exception("instance %s: cleanup after failed build failed", inst.uuid)

    # -- delete -----------------------------------------------------------------

    def terminate_instance(self, ctxt, uuid):
        """Destroy the guest (running, paused, suspended with a save file,
        stopped or in error), its disks and directory; unplug; mark deleted.
        An instance already deleted is not an error; the base stays cached."""
        try:
            inst = self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            LOG.info("instance %s: already deleted", uuid)
            return
        with self.ops.run(ctxt, uuid, "delete"):
            self.db.instance_update(uuid, task_state=states.DELETING)
            self.driver.destroy(self.virt_instance(inst), [], destroy_disks=True)
            self.db.floating_ip_remove(instance_uuid=uuid)
            self._unplug_vifs(inst)
            self.db.instance_update(uuid, expected_task_state=states.DELETING,
                                    vm_state=states.DELETED, task_state=None,
                                    power_state=virt_driver.NOSTATE, deleted=True,
                                    terminated_at=utcnow())

    # -- queries ----------------------------------------------------------------

    def get_instance(self, uuid):
        inst = self.db.instance_get(uuid, include_deleted=True)
        fault = self.db.fault_latest(uuid) if inst.vm_state == states.ERROR else None
        return instance_view(inst, fault)

    def list_instances(self):
        return [instance_view(i) for i in self.db.instance_list(host=self.host)]

    def list_instance_actions(self, uuid):
        self.db.instance_get(uuid, include_deleted=True)
        actions, events = self.db.actions_for(uuid)
        return [{"action": a.action, "request_id": a.request_id,
                 "start_time": _iso(a.start_time), "finish_time": _iso(a.finish_time),
                 "message": a.message,
                 "events": [{"event": e.event, "result": e.result, "details": e.details,
                             "start_time": _iso(e.start_time),
                             "finish_time": _iso(e.finish_time)}
                            for e in events if e.action_id == a.id]}
                for a in actions]

    def get_console_output(self, uuid, length=None):
        inst = self.db.instance_get(uuid)
        text = self.driver.get_console_output(self.virt_instance(inst), 1024 * 1024)
        lines = text.splitlines()
        return "\n".join(lines[-length:] if length else lines)

    def get_host_status(self):
        node = self.db.compute_node_get(self.host)
        return {"host": self.host,
                "node": {c: getattr(node, c) for c in node.__table__.columns.keys()
                         if c != "updated_at"} if node else None,
                "saved_state_bytes": self.driver.saved_state_bytes()}

    # -- periodic resource report -------------------------------------------------

    def update_available_resource(self):
        res = self.driver.get_available_resource()
        instances = self.db.instance_list(host=self.host)
        gib = 1024 ** 3
        saved_gb = -(-self.driver.saved_state_bytes() // gib)
        self.db.compute_node_update(
            self.host, hypervisor_type=res.hypervisor_type,
            hypervisor_version=res.hypervisor_version, hypervisor_hostname=res.hostname,
            vcpus=res.vcpus, memory_mb=res.memory_mb, local_gb=res.local_gb,
            vcpus_used=sum(i.flavor["vcpus"] for i in instances),
            memory_mb_used=sum(i.flavor["memory_mb"] for i in instances),
            local_gb_used=saved_gb + sum(i.flavor["root_gb"] + i.flavor.get("ephemeral_gb", 0)
                                         for i in instances),
            free_ram_mb=res.memory_mb_free, free_disk_gb=res.local_gb_free,
            running_vms=len(instances))
