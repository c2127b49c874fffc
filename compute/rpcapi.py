"""ComputeAPI: the client side of the compute RPC API, for a scheduler or
computectl.  Casts return at once (follow progress with get_instance or the
notifications); calls return the answer.  Payloads are validated here too,
so a malformed request fails before it is sent, with the same
compute.exception.InvalidRequest the server would answer.

    api = ComputeAPI(conf)
    api.build_and_run_instance("host1", uuid, "web1",
                               {"vcpus": 1, "memory_mb": 128, "root_gb": 1}, image_id)
    api.get_instance("host1", uuid)["vm_state"]
"""
import uuid as uuidlib

import oslo_messaging as messaging

from compute import rpc, schemas


class ComputeAPI:
    def __init__(self, conf, transport=None, timeout=None):
        self.transport = transport or rpc.get_transport(conf)
        target = messaging.Target(topic=rpc.TOPIC, version=rpc.RPC_VERSION)
        self.client = messaging.get_rpc_client(self.transport, target, timeout=timeout,
                                               serializer=rpc.ContextSerializer())

    def _prepare(self, host, timeout=None):
        kwargs = {"server": host}
        if timeout is not None:
            kwargs["timeout"] = timeout
        return self.client.prepare(**kwargs)

    @staticmethod
    def _ctxt():
        return {"request_id": "req-" + str(uuidlib.uuid4())}

    def _cast(self, host, method, **payload):
        schemas.validate(method, payload)
        self._prepare(host).cast(self._ctxt(), method, **payload)

    def _call(self, host, method, timeout=None, **payload):
        schemas.validate(method, payload)
        return self._prepare(host, timeout).call(self._ctxt(), method, **payload)

    # -- casts ------------------------------------------------------------------

    def build_and_run_instance(self, host, instance_uuid, name, flavor, image_id,
                               metadata=None):
        """Create and boot an instance on host.  flavor: vcpus, memory_mb,
        root_gb (0 = the image's size), optional ephemeral_gb, swap_mb, name.

        The agent handles messages concurrently, so a get_instance sent right
        after this cast may be answered InstanceNotFound until the agent has
        recorded the instance (milliseconds): pollers should retry that."""
        payload = {"instance_uuid": instance_uuid, "name": name, "flavor": flavor,
                   "image_id": image_id}
        if metadata:
            payload["metadata"] = metadata
        self._cast(host, "build_and_run_instance", **payload)

    def terminate_instance(self, host, instance_uuid):
        """Destroy the instance and its disks; deleting twice is fine."""
        self._cast(host, "terminate_instance", instance_uuid=instance_uuid)

    # -- calls ------------------------------------------------------------------

    def get_instance(self, host, instance_uuid, timeout=None):
        """The instance record as a dict (vm_state, task_state, power_state,
        fault, ...); deleted instances are still answered."""
        return self._call(host, "get_instance", timeout, instance_uuid=instance_uuid)

    def list_instances(self, host):
        """Records of the instances on host that are not deleted."""
        return self._call(host, "list_instances")

    def get_console_output(self, host, instance_uuid, length=None):
        """The last `length` lines (all when None) of the serial console log."""
        return self._call(host, "get_console_output", instance_uuid=instance_uuid,
                          length=length)

    def ping(self, host, timeout=None):
        return self._call(host, "ping", timeout)
