"""ComputeManager: the composition root of the agent's parts, and the
queries.  Each part receives what it uses in its constructor:

    Runner          accept/run/settle by the rows of compute.core.optable
    CachedImages    the _base cache as the manager uses it
    Networking      ports, firewall, DHCP, floating IPs
    Builds          spawn and delete
    Lifecycle       power operations, reset_state, diagnostics
    Snapshots       snapshots to the image service
    Peers           the agent-to-agent steps both migrations share
    LiveMigrations  live migration, both sides
    Resizes         cold migration and resize, both sides, confirm/revert
    Rescues         rescue and unrescue
    Shelving        shelve, shelve-offload and unshelve (here or elsewhere)
    Evacuations     a down host's instances rebuilt here; the clean-up on return
    VolumeAttachments  volumes attached and detached
    Reconciler      agent start and power-state sync
    ConsoleAccess   console URLs with one-time tokens for the proxy

Payloads were validated at the RPC boundary (compute.rpc.endpoint) before
anything reaches a part; locking, action records, notifications and
faults come from compute.core.operation."""
import collections
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from compute.core import exception, optable, states
from compute.core.instance import iso, view, virt_instance
from compute.core.operation import Operations, Runner
from compute.core.resource_tracker import ResourceTracker
from compute.parts.builds import Builds
from compute.parts.cached_images import CachedImages
from compute.parts.console_access import ConsoleAccess
from compute.parts.evacuate import Evacuations
from compute.parts.lifecycle import Lifecycle
from compute.parts.live_migration import LiveMigrations
from compute.parts.networking import Networking
from compute.parts.peers import Peers
from compute.parts.reconcile import Reconciler
from compute.parts.rescue import Rescues
from compute.parts.resize import Resizes
from compute.parts.shelve import Shelving
from compute.parts.snapshots import Snapshots
from compute.parts.volume_attachments import VolumeAttachments
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)


class ComputeManager:
    def __init__(self, conf, db, driver, image_cache, glance, vif_plugin, notifier=None,
                 transport=None, metrics=None):
        self.conf, self.db, self.driver, self.host = conf, db, driver, conf.host
        self.ops = Operations(db, notifier, self.host, metrics)
        self.runner = Runner(db, self.ops, driver)
        self.tracker = ResourceTracker(conf, db, driver, self.host)
        self.builds_pool = ThreadPoolExecutor(conf.max_concurrent_builds,
                                              thread_name_prefix="build")
        self.workers = ThreadPoolExecutor(conf.max_concurrent_operations,
                                          thread_name_prefix="op")
        self.images = CachedImages(conf, db, image_cache, glance, driver, self.host)
        self.networking = Networking(conf, db, vif_plugin, driver, self.runner, self.host)
        self.builds = Builds(db, driver, self.runner, self.networking, self.images, glance)
        self.lifecycle = Lifecycle(conf, db, driver, self.runner, self.networking, self.images)
        self.rescues = Rescues(db, driver, self.runner, self.networking, self.images, glance,
                               self.lifecycle.power_on)
        self.snapshots = Snapshots(conf, db, driver, self.runner, self.images, glance,
                                   self.host)
        self.consoles = ConsoleAccess(conf, db, driver)
        self.peers = Peers(conf, db, driver, self.runner, self.networking, self.host, transport)
        self.live_migrations = LiveMigrations(conf, db, driver, self.runner, self.networking,
                                              self.images, self.peers, self.tracker, self.host,
                                              self.submit)
        self.resizes = Resizes(conf, db, driver, self.runner, self.networking, self.images,
                               self.peers, self.tracker, self.host)
        self.shelving = Shelving(conf, db, driver, self.runner, self.networking, self.images,
                                 glance, self.snapshots, self.peers, self.tracker, self.host,
                                 self.submit, self.lifecycle.power_on)
        self.evacuations = Evacuations(conf, db, driver, self.runner, self.networking,
                                       self.images, glance, self.peers, self.tracker,
                                       self.host)
        self.volumes = VolumeAttachments(conf, db, driver, self.runner)
        # the parts the rows of compute.core.optable (Op.runs, Op.restart_with) and
        # the declarations of compute.rpc.contract (Method.serves) name
        self.parts = {"builds": self.builds, "lifecycle": self.lifecycle,
                      "rescues": self.rescues, "snapshots": self.snapshots,
                      "live_migrations": self.live_migrations, "resizes": self.resizes,
                      "shelving": self.shelving, "evacuations": self.evacuations,
                      "volumes": self.volumes, "networking": self.networking,
                      "images": self.images}
        self.reconciler = Reconciler(
            conf, db, driver, self.runner, self.networking, self.submit,
            restarts={op.name: self.part_method(op.restarts_with()) for op in optable.ROWS
                      if op.restart in (optable.RESUME, optable.ASK_PEER, optable.CLEAN_UP)},
            at_start=(self.evacuations.clean_up_evacuated, image_cache.remove_partial,
                      driver.remove_leftovers,
                      self.snapshots.recover_at_start),
            host=self.host)

    def part_method(self, ref):
        """The bound method a row names as "part.method"."""
        part, method = ref.split(".")
        return getattr(self.parts[part], method)

    def runs(self, op_name):
        """The part method that runs op_name once accepted (its row's runs)."""
        return self.part_method(optable.TABLE[op_name].runs)

    def submit(self, fn, *args):
        """Run an accepted operation in the worker pool."""
        return self.workers.submit(fn, *args)

    def submit_build(self, fn, *args):
        return self.builds_pool.submit(fn, *args)

    def init_host(self):
        self.reconciler.init_host()

    def shutdown(self):
        for pool in (self.builds_pool, self.workers):
            pool.shutdown(wait=True)
        self.networking.shutdown()

    # -- queries ----------------------------------------------------------------

    def get_instance(self, uuid):
        inst = self.db.instance_get(uuid, include_deleted=True)
        fault = self.db.fault_latest(uuid) if inst.vm_state == states.ERROR else None
        return view(inst, fault)

    def list_instances(self):
        return [view(i) for i in self.db.instance_list(host=self.host)]

    def list_instance_actions(self, uuid):
        self.db.instance_get(uuid, include_deleted=True)
        actions, events = self.db.actions_for(uuid)
        return [{"action": a.action, "request_id": a.request_id,
                 "start_time": iso(a.start_time), "finish_time": iso(a.finish_time),
                 "message": a.message,
                 "events": [{"event": e.event, "result": e.result, "details": e.details,
                             "start_time": iso(e.start_time),
                             "finish_time": iso(e.finish_time)}
                            for e in events if e.action_id == a.id]}
                for a in actions]

    def get_console_output(self, uuid, length=None):
        inst = self.db.instance_get(uuid)
        try:
            text = self.driver.get_console_output(virt_instance(inst), 1024 * 1024)
        except virt_errors.ConsoleUnavailable as e:
            raise exception.ConsoleUnavailable(str(e)) from None
        lines = text.splitlines()
        return "\n".join(lines[-length:] if length else lines)

    def get_host_status(self):
        node = self.db.compute_node_get(self.host)
        return {"host": self.host,
                "node": {c: getattr(node, c) for c in node.__table__.columns.keys()
                         if c != "updated_at"} if node else None,
                "saved_state_bytes": self.driver.saved_state_bytes(),
                # guests no record here names, as the last power-state sync found
                "unknown_guests": list(self.reconciler.unknown_guests)}

    def metrics_state(self):
        """What the metrics endpoint reads at each scrape (plain data)."""
        by_state = collections.Counter(i.vm_state for i in self.db.instance_list(host=self.host))
        cache = self.images.status()
        return {"instances": dict(by_state),
                "unknown_guests": len(self.reconciler.unknown_guests),
                "capacity": dataclasses.asdict(self.tracker.capacity()),
                "claimed": dataclasses.asdict(self.tracker.used()),
                "image_cache": {k: cache[k] for k in ("size_bytes", "bases", "hits", "misses")}}

    # -- periodic resource report -------------------------------------------------

    def update_available_resource(self):
        """The periodic resource report, from the tracker's own figures
        (plus the disk saved guest memory holds, and what is free now)."""
        res = self.driver.get_available_resource()
        figures = self.tracker.report()
        figures["local_gb_used"] += -(-self.driver.saved_state_bytes() // 1024 ** 3)
        self.db.compute_node_update(
            self.host, hypervisor_type=res.hypervisor_type,
            hypervisor_version=res.hypervisor_version, hypervisor_hostname=res.hostname,
            free_ram_mb=res.memory_mb_free, free_disk_gb=res.local_gb_free, **figures)
