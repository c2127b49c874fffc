"""ComputeAPI: the client side of the compute RPC API, for a scheduler or
computectl.  Casts return at once (follow progress with get_instance or the
notifications); calls return the answer.  Power operations (reboot,
suspend, resume, pause, unpause, stop, start) are calls that return as soon
as the agent has accepted them, or raise compute.core.exception.
InstanceInvalidState when the instance's state does not allow them; the
work itself then continues on the agent.  Payloads are validated here too,
so a malformed request fails before it is sent, with the same
compute.core.exception.InvalidRequest the server would answer.

    api = ComputeAPI(conf)
    api.build_and_run_instance("host1", uuid, "web1",
                               {"vcpus": 1, "memory_mb": 128, "root_gb": 1}, image_id)
    api.get_instance("host1", uuid)["vm_state"]
"""
import time
import uuid as uuidlib

import oslo_messaging as messaging

from compute.core import exception
from compute.rpc import contract, schemas
from compute.rpc import transport as rpc

# Every message is published with the mandatory flag: when no queue takes
# it (the agent has not declared its queue again since the broker came
# back, or there is no such host) the broker returns it at once instead of
# dropping it, and it is sent again for up to this long (never past the
# call's timeout) before AgentNotListening.  An agent declares its queues
# within a few seconds of the broker's return.
NOT_LISTENING_GRACE = 10.0
RESEND_INTERVAL = 0.1
_MANDATORY = messaging.TransportOptions(at_least_once=True)


class ComputeAPI:
    def __init__(self, conf, transport=None, timeout=None):
        self.transport = transport or rpc.get_transport(conf)
        self.timeout = timeout or conf.rpc_response_timeout
        target = messaging.Target(topic=rpc.TOPIC, version=contract.VERSION)
        self.client = messaging.get_rpc_client(self.transport, target, timeout=self.timeout,
                                               serializer=rpc.ContextSerializer(),
                                               transport_options=_MANDATORY)

    def __getattr__(self, name):
        """The methods compute.rpc.contract makes: api.<name>(host, *params,
        timeout=None) for a declaration with params (a method that only
        starts a row takes instance_uuid)."""
        declared = contract.made_client(name)
        if declared is None:
            raise AttributeError(name)

        def send(host, *args, timeout=None, **kwargs):
            return self._rpc(host, name, timeout, **contract.payload_of(declared, args, kwargs))
        send.__name__, send.__doc__ = name, declared.doc
        return send

    def _prepare(self, host, version, timeout=None):
        return self.client.prepare(server=host, version=version,
                                   timeout=timeout or self.timeout)

    def _send(self, host, version, timeout, send):
        """send(prepared client), again while the broker returns it as
        unroutable (see NOT_LISTENING_GRACE)."""
        timeout = timeout or self.timeout
        started = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - started)
            try:
                return send(self._prepare(host, version, max(left, 0.001)))
            except messaging.MessageUndeliverable:
                waited = time.monotonic() - started
                if waited + RESEND_INTERVAL > min(NOT_LISTENING_GRACE, timeout):
                    raise exception.AgentNotListening(
                        f"no compute agent listens for host {host!r} (the broker had no "
                        f"queue for it for {waited:.1f} s)") from None
                time.sleep(RESEND_INTERVAL)

    @staticmethod
    def _ctxt():
        # sent_at: wall-clock seconds; a cast older than the agent's
        # cast_deadline is dropped there (compute.rpc.stale_casts)
        return {"request_id": "req-" + str(uuidlib.uuid4()), "sent_at": time.time()}

    def _rpc(self, host, method, timeout=None, ctxt=None, **payload):
        """Send method as compute.rpc.contract declares it: checked against its
        schema, a cast or a call at the version that has it; a call's answer
        is checked when the method is agent-to-agent.  ctxt: the request's
        context (its request_id names the request's outcome), made anew when
        None."""
        declared = contract.METHODS[method]
        schemas.validate(method, payload)
        ctxt = ctxt or self._ctxt()
        if declared.kind == contract.CAST:
            self._send(host, declared.since, timeout,
                       lambda client: client.cast(ctxt, method, **payload))
            return None
        answer = self._send(host, declared.since, timeout,
                            lambda client: client.call(ctxt, method, **payload))
        schemas.validate_answer(method, answer)
        return answer

    # -- casts ------------------------------------------------------------------

    def build_and_run_instance(self, host, instance_uuid, name, flavor, image_id,
                               metadata=None, networks=None, security_groups=None,
                               user_data=None, key_pairs=None, hostname=None,
                               admin_pass=None, config_drive=False, boot_volume=None):
        """Create and boot an instance on host.  flavor: vcpus, memory_mb,
        root_gb (0 = the image's size), optional ephemeral_gb, swap_mb, name.

        The agent handles messages concurrently, so a get_instance sent right
        after this cast may be answered InstanceNotFound until the agent has
        recorded the instance (milliseconds): pollers should retry that.

        networks: [{"port": {...}, "network": {...}}] (see compute.rpc.schemas);
        security_groups: the groups the ports name that the host may not
        know yet.  What the guest is told about itself: user_data (base64),
        key_pairs ([{"name", "public_key"}]), hostname (default: from
        name), admin_pass (in the first config drive only), config_drive.
        boot_volume: {volume_id, connection_info} of a volume that holds
        the image already, booted as the root disk (the image gives the
        properties, kernel and ramdisk)."""
        payload = {"instance_uuid": instance_uuid, "name": name, "flavor": flavor,
                   "image_id": image_id}
        for key, value in (("metadata", metadata), ("networks", networks),
                           ("security_groups", security_groups), ("user_data", user_data),
                           ("key_pairs", key_pairs), ("hostname", hostname),
                           ("admin_pass", admin_pass), ("config_drive", config_drive),
                           ("boot_volume", boot_volume)):
            if value:
                payload[key] = value
        self._rpc(host, "build_and_run_instance", **payload)

    def cache_images(self, host, image_ids):
        """Fetch images into host's _base cache before a spawn needs them.
        Answers the request's id: get_image_cache_status lists the images
        this request could not cache under "failed", with that id."""
        ctxt = self._ctxt()
        self._rpc(host, "cache_images", ctxt=ctxt, image_ids=list(image_ids))
        return ctxt["request_id"]

    # -- power operations: accepted or refused at once, then run on the agent ----

    def reboot_instance(self, host, instance_uuid, reboot_type="SOFT"):
        """SOFT: ACPI shutdown, then start (hard reboot if the guest ignores
        it for wait_soft_reboot_seconds).  HARD: power off and start from a
        regenerated definition; works from any settled state."""
        return self._rpc(host, "reboot_instance", instance_uuid=instance_uuid,
                          reboot_type=reboot_type)







    def set_admin_password(self, host, instance_uuid, admin_pass, user=None):
        """Set the password of a guest user (default root) through the QEMU
        guest agent; answers once set.  GuestAgentUnavailable when the guest
        has no agent or it does not answer.  The password is never stored."""
        payload = {"instance_uuid": instance_uuid, "admin_pass": admin_pass}
        if user:
            payload["user"] = user
        return self._rpc(host, "set_admin_password", **payload)

    def reset_state(self, host, instance_uuid, state="error"):
        """Admin: set vm_state to 'active' or 'error' and clear task_state."""
        return self._rpc(host, "reset_state", instance_uuid=instance_uuid, state=state)

    # -- calls ------------------------------------------------------------------

    def live_migrate_instance(self, host, instance_uuid, dest_host, block_migration=False,
                              networks=None):
        """Ask host (the source) to live-migrate an instance to dest_host;
        answers once accepted (task_state migrating).  Follow it on the
        destination: the instance appears there, and leaves the source.
        networks: the instance's ports with the destination's view of
        their networks (host_address, VXLAN local_ip); needed when those
        differ per host."""
        payload = {"instance_uuid": instance_uuid, "dest_host": dest_host,
                   "block_migration": block_migration}
        if networks:
            payload["networks"] = networks
        return self._rpc(host, "live_migrate_instance", **payload)

    # agent-to-agent calls of a live migration
    def check_can_live_migrate_destination(self, host, instance, block_migration, probe,
                                           source_host, cpu=None):
        return self._rpc(host, "check_can_live_migrate_destination", instance=instance,
                          block_migration=block_migration, probe=probe,
                          source_host=source_host, cpu=cpu)

    def migrate_instance(self, host, instance_uuid, dest_host, flavor=None, networks=None):
        """Cold-migrate (flavor None) or resize an instance from host (its
        source) to dest_host, which may be host itself when the agent allows
        it.  Answers {migration_id} once accepted; the instance ends on
        dest_host in vm_state resized, to confirm_resize or revert_resize
        there.  A flavor with a smaller root or ephemeral disk is refused."""
        payload = {"instance_uuid": instance_uuid, "dest_host": dest_host}
        if flavor:
            payload["flavor"] = flavor
        if networks:
            payload["networks"] = networks
        return self._rpc(host, "migrate_instance", **payload)

    def list_migrations(self, host, instance_uuid=None):
        """The migrations host took part in, newest first."""
        payload = {"instance_uuid": instance_uuid} if instance_uuid else {}
        return self._rpc(host, "list_migrations", **payload)

    # agent-to-agent calls of a cold migration or resize
    def attach_interface(self, host, instance_uuid, port, network, security_groups=None):
        payload = {"instance_uuid": instance_uuid, "port": port, "network": network}
        if security_groups:
            payload["security_groups"] = security_groups
        return self._rpc(host, "attach_interface", **payload)

    def associate_floating_ip(self, host, instance_uuid, address, fixed_ip=None):
        payload = {"instance_uuid": instance_uuid, "address": address}
        if fixed_ip:
            payload["fixed_ip"] = fixed_ip
        return self._rpc(host, "associate_floating_ip", **payload)

    def get_instance(self, host, instance_uuid, timeout=None):
        """The instance record as a dict (vm_state, task_state, power_state,
        fault, ...); deleted instances are still answered."""
        return self._rpc(host, "get_instance", timeout, instance_uuid=instance_uuid)

    def get_console_output(self, host, instance_uuid, length=None):
        """The last `length` lines (all when None) of the serial console log."""
        return self._rpc(host, "get_console_output", instance_uuid=instance_uuid,
                          length=length)

    def rebuild_instance(self, host, instance_uuid, image_ref=None, preserve_ephemeral=False):
        """Reimage in place from image_ref (the instance's own when None):
        same uuid, ports and addresses; answers once accepted (ACTIVE when
        done)."""
        payload = {"instance_uuid": instance_uuid, "preserve_ephemeral": preserve_ephemeral}
        if image_ref:
            payload["image_ref"] = image_ref
        return self._rpc(host, "rebuild_instance", **payload)

    def rescue_instance(self, host, instance_uuid, rescue_image_ref=None):
        """Boot the rescue image (the instance's own when None) with the
        instance's disks after it; answers once accepted (RESCUED when done)."""
        payload = {"instance_uuid": instance_uuid}
        if rescue_image_ref:
            payload["rescue_image_ref"] = rescue_image_ref
        return self._rpc(host, "rescue_instance", **payload)


    def unshelve_instance(self, host, instance_uuid, dest_host=None, networks=None):
        """Unshelve on host (which has the instance) or, for an offloaded
        one, on dest_host: follow the instance there.  networks: the
        instance's ports with dest_host's view of their networks (as for
        live_migrate_instance)."""
        payload = {"instance_uuid": instance_uuid}
        if dest_host:
            payload["dest_host"] = dest_host
        if networks:
            payload["networks"] = networks
        return self._rpc(host, "unshelve_instance", **payload)

    def evacuate_instance(self, host, instance_uuid, source_host, networks=None,
                          connections=None, user_data=None):
        """Rebuild on host the instance of source_host, whose service is
        down (the hosts share a database): from its disks when host sees
        them (shared storage), otherwise from the image.  networks: host's
        view of the instance's ports' networks; connections ({volume id:
        connection info}) and user_data: what the down host's record seals
        with its own key, given again.  Answers the migration id."""
        payload = {"instance_uuid": instance_uuid, "source_host": source_host}
        if networks:
            payload["networks"] = networks
        if connections:
            payload["connections"] = connections
        if user_data is not None:
            payload["user_data"] = user_data
        return self._rpc(host, "evacuate_instance", **payload)


    def ping(self, host, timeout=None):
        return self._rpc(host, "ping", timeout)
