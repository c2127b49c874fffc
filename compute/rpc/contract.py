"""The compute RPC contract, declared once.  Each method of topic 'compute'
is one Method: whether it is a CALL (answered) or a CAST, the API version
it appeared in, whether only a peer agent sends it, whether a cast of it
is dropped past cast_deadline, and the rows of compute.core.optable it starts;
its payload schema is compute.rpc.schemas.SCHEMAS[name].  A method that only
accepts a row and submits it (`starts`) has no code of its own: the
endpoint's and the client's methods are made from its declaration, so
adding such an operation is its row, its part method, its schema and
this line (tests/functional/test_lifecycle_functional.py adds one).

What reads it: the server's target version and the payload check in the
endpoint's wrapper chain (PayloadCheck, beside the stale-cast guard, the
outage guard and the timing); the stale-cast guard; the client, which
sends each method as its kind says and asks for the version it needs
(compute.rpc.client).  tests/unit/test_contract.py shows that the endpoint,
the client and the schemas have exactly these methods, and that every row
of the table is started by one of them."""
import dataclasses
import logging

from compute.rpc import schemas
from compute.rpc.endpoint_wrapper import EndpointWrapper

LOG = logging.getLogger(__name__)
CALL, CAST = "call", "cast"


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    kind: str                    # CALL or CAST
    ops: tuple = ()              # the rows of compute.core.optable it starts or runs
    peer: bool = False           # only another agent sends it (a migration's steps)
    deadline: bool = False       # a cast dropped once older than cast_deadline
    since: str = "1.0"           # the API version that has it
    starts: str | None = None    # a row it only accepts and submits, its payload
                                 # {instance_uuid}: the endpoint's and the client's
                                 # method are made from this declaration
    doc: str = ""                # the made client method's docstring

    def __post_init__(self):
        if self.starts:
            object.__setattr__(self, "ops", (self.starts,))


def _m(name, kind=CALL, *ops, **kw):
    return Method(name, kind, tuple(ops), **kw)


def _starts(name, op, doc=""):
    return Method(name, CALL, starts=op, doc=doc)


METHODS = {m.name: m for m in (
    # builds, deletes and pre-caching: casts
    _m("build_and_run_instance", CAST, "build", deadline=True),
    _m("terminate_instance", CAST, "delete"),
    _m("cache_images", CAST, deadline=True),
    # power operations: accepted or refused at once
    _m("reboot_instance", CALL, "reboot_soft", "reboot_hard"),
    _starts("suspend_instance", "suspend",
            "Save the guest's memory to disk and stop it (ACTIVE -> SUSPENDED)."),
    _starts("resume_instance", "resume", "Restore a suspended guest (SUSPENDED -> ACTIVE)."),
    _starts("pause_instance", "pause", "Stop the vCPUs, keep memory (ACTIVE -> PAUSED)."),
    _starts("unpause_instance", "unpause", "Run a paused guest again (PAUSED -> ACTIVE)."),
    _starts("stop_instance", "stop",
            "Graceful shutdown (shutdown_timeout), then power off (-> STOPPED)."),
    _starts("start_instance", "start", "Start a stopped instance from a regenerated "
                                       "definition."),
    _m("set_admin_password", CALL, "set_admin_password"),
    _m("reset_state", CALL, "reset_state"),
    # live migration: client -> source, then source <-> destination
    _m("live_migrate_instance", CALL, "live_migration"),
    _m("live_migration_abort"),
    _m("live_migration_force_complete"),
    _m("check_can_live_migrate_destination", peer=True),
    _m("check_can_live_migrate_source", peer=True),
    _m("pre_live_migration", CALL, "live_migration_destination", peer=True),
    _m("post_live_migration_at_destination", CALL, "live_migration_destination", peer=True),
    _m("rollback_live_migration_at_destination", peer=True),
    # cold migration and resize
    _m("migrate_instance", CALL, "resize"),
    _m("confirm_resize", CALL, "confirm_resize"),
    _m("revert_resize", CALL, "revert_resize"),
    _m("list_migrations"),
    _m("prep_resize", CALL, "resize_destination", peer=True),
    _m("finish_resize", CALL, "resize_destination", peer=True),
    _m("abort_resize_at_destination", CALL, "resize_abort", peer=True),
    _m("confirm_resize_at_source", CALL, "resize_confirm_source", peer=True),
    _m("finish_revert_resize", CALL, "resize_revert_source", peer=True),
    # rebuild, rescue, shelve, evacuate, volumes, snapshots
    _m("rebuild_instance", CALL, "rebuild"),
    _m("rescue_instance", CALL, "rescue"),
    _starts("unrescue_instance", "unrescue",
            "Boot the instance's own disks again; answers once accepted."),
    _m("shelve_instance", CALL, "shelve"),
    _starts("shelve_offload_instance", "shelve_offload",
            "Remove a shelved instance's guest, disks and ports from host."),
    _m("unshelve_instance", CALL, "unshelve", "unshelve_hand_over"),
    _m("take_shelved_instance", CALL, "unshelve", peer=True),
    _m("evacuate_instance", CALL, "evacuate"),
    _m("attach_volume", CALL, "attach_volume"),
    _m("detach_volume", CALL, "detach_volume"),
    _m("extend_volume", CALL, "extend_volume"),
    _m("snapshot_instance", CALL, "snapshot"),
    # networking
    _m("refresh_security_group_rules"),
    _m("attach_interface", CALL, "attach_interface"),
    _m("detach_interface", CALL, "detach_interface"),
    _m("associate_floating_ip", CALL, "associate_floating_ip"),
    _m("disassociate_floating_ip", CALL, "disassociate_floating_ip"),
    _m("get_network_status"),
    # queries and admin
    _m("get_instance"),
    _m("list_instances"),
    _m("list_instance_actions"),
    _m("get_console_output"),
    _m("get_serial_console"),
    _m("get_vnc_console"),
    _m("get_diagnostics"),
    _m("get_host_status"),
    _m("get_image_cache_status"),
    _m("manage_image_cache"),
    _m("ping"),
)}


def _version(text):
    return tuple(int(part) for part in text.split("."))


# the version this agent serves: the newest any method needs
VERSION = max((m.since for m in METHODS.values()), key=_version)
WITH_DEADLINE = frozenset(m.name for m in METHODS.values() if m.deadline)


def starting(name):
    """The declaration of name when it only starts a row, else None."""
    declared = METHODS.get(name)
    return declared if declared is not None and declared.starts else None


class PayloadCheck(EndpointWrapper):
    """The endpoint with every payload checked against its method's schema
    before the method runs (InvalidRequest naming the field, nothing
    written, a `<method>.rejected` notification); a public name the
    contract does not declare is not served."""

    def __init__(self, endpoint, notify):
        super().__init__(endpoint)
        self._notify = notify

    def __getattr__(self, name):
        if not name.startswith("_") and name not in METHODS:
            raise AttributeError(name)
        return super().__getattr__(name)

    def _around(self, name, method):
        def checked(ctxt, **payload):
            try:
                schemas.validate(name, payload)
            except Exception as e:
                LOG.warning("rejected %s: %s", name, e)
                self._notify(f"{name}.rejected", {"reason": str(e)})
                raise
            return method(ctxt, **payload)
        return checked
