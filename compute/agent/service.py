"""The compute-agent service: wires the pieces together (database, image
client and cache, driver, VIF plugin, manager, RPC server) and runs the
periodic duties (heartbeat into services, resource report into
compute_nodes, power-state sync) on threads."""
import logging
import os
import threading

import oslo_messaging as messaging

from compute.agent import systemd
from compute.agent.manager import ComputeManager
from compute.core.sealing import Sealer
from compute.db.api import Database, unreachable
from compute.rpc import contract, outage
from compute.rpc import transport as rpc
from compute.rpc.endpoint import ComputeEndpoint
from compute.rpc.stale_casts import StaleCastGuard
from imagecache import qemu_img
from imagecache.cache import ImageCache
from imagecache.glance import GlanceClient
from network import base as vif_base
from virt.libvirt.driver import LibvirtDriver

LOG = logging.getLogger(__name__)
BINARY = rpc.BINARY


class ComputeService:
    def __init__(self, conf, transport=None):
        self.conf = conf
        os.makedirs(conf.state_path, mode=0o750, exist_ok=True)
        # others may pass through (dnsmasq reads its hosts file as nobody),
        # not list: every file in it is the agent's alone
        os.chmod(conf.state_path, 0o751)
        self.lock_dir = os.path.join(conf.state_path, "locks")
        self.db = Database.from_conf(conf, owner=conf.host,
                                     sealer=Sealer.from_file(conf.seal_key_file))
        qemu_img.configure_limits(conf.image.qemu_img_cpu_seconds,
                                  conf.image.qemu_img_address_space_mb)
        glance = GlanceClient.from_conf(conf)
        cache = ImageCache.from_conf(conf, glance, self.lock_dir)
        self.transport = transport or rpc.get_transport(conf)
        notifier = rpc.get_notifier(conf, conf.host)
        self.metrics = None
        if conf.metrics.enabled:        # prometheus_client loaded only then (~1.5 MB)
            from compute.agent.metrics import Metrics
            self.metrics = Metrics()
        self.manager = ComputeManager(conf, self.db, LibvirtDriver(conf, cache), cache, glance,
                                      vif_base.load(conf.network.vif_plugin, conf), notifier,
                                      self.transport, self.metrics)
        self.endpoint = ComputeEndpoint(self.manager)
        if self.metrics is not None:
            self.metrics.watch_state(self.manager.metrics_state)
            self.metrics.count_reconnects()
        target = messaging.Target(topic=rpc.TOPIC, server=conf.host)
        # No executor argument: it is deprecated, and oslo.messaging picks its
        # threading executor whenever threads are not eventlet-patched.
        self.db_watch = outage.DatabaseWatch()
        def notify(event, payload):
            self.manager.ops.notify(event, payload, error=True)
        # the contract's payload check innermost, so a cast past its deadline
        # is dropped unread, and the outage guard and the timing see it all
        endpoint = outage.OutageGuard(
            StaleCastGuard(contract.PayloadCheck(self.endpoint, notify), conf.cast_deadline,
                           notify), self.db_watch, notify)
        if self.metrics is not None:
            from compute.agent.metrics import TimedEndpoint
            endpoint = TimedEndpoint(endpoint, self.metrics)
        self.server = messaging.get_rpc_server(self.transport, target, [endpoint],
                                               serializer=rpc.ContextSerializer())
        self._stop = threading.Event()
        self.watchdog = None
        self._threads = [
            threading.Thread(target=self._every, args=(conf.report_interval, self._report),
                             name="report", daemon=True)]
        if conf.image_cache.manager_interval:
            self._threads.append(threading.Thread(
                target=self._every,
                args=(conf.image_cache.manager_interval, self.manager.images.manage),
                name="image-cache-manager", daemon=True))
        if conf.sync_power_state_interval:
            self._threads.append(threading.Thread(
                target=self._every,
                args=(conf.sync_power_state_interval,
                      self.manager.reconciler.sync_power_states),
                name="sync-power-states", daemon=True))
        if conf.shelved_offload_time > 0:
            self._threads.append(threading.Thread(
                target=self._every,
                args=(min(60, conf.shelved_offload_time), self.manager.shelving.offload_expired),
                name="offload-shelved", daemon=True))

    def start(self):
        if self.conf.database.auto_migrate:
            self.db.sync()
        else:
            self.db.check_current()
        resealed = self.db.reseal_own()
        if resealed:
            LOG.info("sealed the credentials of %d records with this host's key", resealed)
        self.manager.init_host()
        self._report()
        if self.metrics is not None:
            self.metrics.serve(self.conf.metrics.listen_address, self.conf.metrics.port)
        self.server.start()
        for t in self._threads:
            t.start()
        LOG.info("compute-agent %s listening on topic %s", self.conf.host, rpc.TOPIC)
        interval = systemd.watchdog_interval()
        if interval:
            self.watchdog = systemd.Watchdog(self.health, interval)
            self.watchdog.start()
        systemd.notify("READY=1", f"STATUS=serving RPC as {self.conf.host}")

    def health(self):
        """(RPC server running, libvirt answering), for the watchdog."""
        return self.server._started, self.manager.driver.is_alive()

    def _report(self):
        try:
            self.db.service_heartbeat(self.conf.host, BINARY, rpc.TOPIC)
        except Exception as e:
            if not unreachable(e):
                raise
            self.db_watch.failed(e, "heartbeat")
            return
        self.db_watch.answered()
        try:
            self.manager.update_available_resource()
        except Exception:
            LOG.exception("resource report failed")

    def _every(self, interval, task):
        while not self._stop.wait(interval):
            try:
                task()
            except Exception:
                LOG.exception("periodic task %s failed", task.__name__)

    def stop(self):
        systemd.notify("STOPPING=1")
        if self.watchdog:
            self.watchdog.stop()
        self._stop.set()
        self.server.stop()
        self.manager.shutdown()
        self.server.wait()
