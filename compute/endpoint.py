"""The RPC endpoint on topic 'compute': the boundary where untrusted
payloads arrive.  Each method validates its payload against its schema
(compute.schemas) before anything is written, then hands over to the
manager; casts that take long (builds) go to a bounded worker pool."""
import logging
from concurrent.futures import ThreadPoolExecutor

import oslo_messaging as messaging

from compute import rpc, schemas, states
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)


class ComputeEndpoint:
    target = messaging.Target(namespace=None, version=rpc.RPC_VERSION)

    def __init__(self, manager, max_concurrent_builds):
        self.manager = manager
        self.db = manager.db
        self.builds = ThreadPoolExecutor(max_concurrent_builds, thread_name_prefix="build")

    def _check(self, method, payload):
        try:
            schemas.validate(method, payload)
        except Exception as e:
            LOG.warning("rejected %s: %s", method, e)
            self.manager.ops.notify(f"{method}.rejected", {"reason": str(e)}, error=True)
            raise

    # -- casts ------------------------------------------------------------------

    def build_and_run_instance(self, ctxt, **payload):
        self._check("build_and_run_instance", payload)
        uuid = payload["instance_uuid"]
        self.db.instance_create(
            uuid=uuid, display_name=payload["name"], host=self.manager.host,
            vm_state=states.BUILDING, task_state=states.SCHEDULING,
            power_state=virt_driver.NOSTATE,
            flavor={"ephemeral_gb": 0, "swap_mb": 0, "name": "", **payload["flavor"]},
            image_ref=payload["image_id"], networks=payload.get("networks", []),
            metadata_=payload.get("metadata", {}))
        self.builds.submit(self.manager.build_and_run_instance, ctxt, uuid)

    def terminate_instance(self, ctxt, **payload):
        self._check("terminate_instance", payload)
        self.manager.terminate_instance(ctxt, payload["instance_uuid"])

    # -- calls ------------------------------------------------------------------

    def get_instance(self, ctxt, **payload):
        self._check("get_instance", payload)
        return self.manager.get_instance(payload["instance_uuid"])

    def list_instances(self, ctxt, **payload):
        self._check("list_instances", payload)
        return self.manager.list_instances()

    def get_console_output(self, ctxt, **payload):
        self._check("get_console_output", payload)
        return self.manager.get_console_output(payload["instance_uuid"], payload.get("length"))

    def ping(self, ctxt, **payload):
        self._check("ping", payload)
        return {"host": self.manager.host, "status": "ok"}
