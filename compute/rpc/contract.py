"""The compute RPC contract, declared once.  Each method of topic 'compute'
is one Method: whether it is a CALL (answered) or a CAST, the API version
it appeared in, whether only a peer agent sends it, whether a cast of it
is dropped past cast_deadline, and the rows of compute.core.optable it starts;
its payload schema is compute.rpc.schemas.SCHEMAS[name].  A method that only
accepts a row and submits it (`starts`) has no code of its own: the
endpoint's and the client's methods are made from its declaration, so
adding such an operation is its row, its part method, its schema and
this line (tests/functional/test_lifecycle_functional.py adds one).  A
method whose client only sends its arguments declares them (`params`):
its client method is made too; the client writes by hand only the
methods that shape a payload or an answer.  A method whose endpoint
only hands its params to a part method names it (`serves`): its
endpoint method is made too; the endpoint writes by hand only the
methods that check what a schema cannot say or shape an answer.

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
    params: tuple | None = None  # the client's method is made from the declaration:
                                 # api.<name>(host, *params), each sent by its name
    serves: str | None = None    # "part.method" the endpoint's made method calls with
                                 # the params from the payload (ctxt first if ctxt)
    ctxt: bool = False
    doc: str = ""                # the made client method's docstring

    def __post_init__(self):
        if self.starts:
            object.__setattr__(self, "ops", (self.starts,))
            object.__setattr__(self, "params", ("instance_uuid",))


def _m(name, kind=CALL, *ops, **kw):
    return Method(name, kind, tuple(ops), **kw)


def _starts(name, op, doc=""):
    return Method(name, CALL, starts=op, doc=doc)


METHODS = {m.name: m for m in (
    # builds, deletes and pre-caching: casts
    _m("build_and_run_instance", CAST, "build", deadline=True),
    _m("terminate_instance", CAST, "delete", params=("instance_uuid",),
       doc="Destroy the instance and its disks; deleting twice is fine."),
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
    _m("live_migration_abort", params=("instance_uuid",),
       doc="Abort a running live migration (host: the source); the guest stays where it was."),
    _m("live_migration_force_complete", params=("instance_uuid",),
       doc="Make a migration that does not converge finish: post-copy when allowed, else the "
           "guest is paused until it completes."),
    _m("check_can_live_migrate_destination", peer=True),
    _m("check_can_live_migrate_source", peer=True, params=("instance_uuid", "dest_check_data"),
       serves="live_migrations.check_can_live_migrate_source"),
    _m("pre_live_migration", CALL, "live_migration_destination", peer=True,
       params=("instance", "block_migration", "migration_id", "source_host"),
       serves="live_migrations.pre_live_migration", ctxt=True),
    _m("post_live_migration_at_destination", CALL, "live_migration_destination", peer=True,
       params=("instance_uuid",),
       serves="live_migrations.post_live_migration_at_destination"),
    _m("rollback_live_migration_at_destination", peer=True,
       params=("instance_uuid", "shared_storage"),
       serves="live_migrations.rollback_live_migration_at_destination"),
    # cold migration and resize
    _m("migrate_instance", CALL, "resize"),
    _m("confirm_resize", CALL, "confirm_resize", params=("instance_uuid",),
       doc="host: where the instance is now; the source drops its copy."),
    _m("revert_resize", CALL, "revert_resize", params=("instance_uuid",),
       doc="host: where the instance is now; it goes back to the source with its old flavor, "
           "running if it was."),
    _m("list_migrations"),
    _m("prep_resize", CALL, "resize_destination", peer=True,
       params=("migration", "instance", "probe")),
    _m("finish_resize", CALL, "resize_destination", peer=True, params=("migration_id",),
       serves="resizes.finish_resize", ctxt=True),
    _m("abort_resize_at_destination", CALL, "resize_abort", peer=True, params=("migration_id",),
       serves="resizes.abort_resize_at_destination", ctxt=True),
    _m("confirm_resize_at_source", CALL, "resize_confirm_source", peer=True,
       params=("migration_id",),
       serves="resizes.confirm_resize_at_source", ctxt=True),
    _m("finish_revert_resize", CALL, "resize_revert_source", peer=True, params=("migration_id",),
       serves="resizes.finish_revert_resize", ctxt=True),
    # rebuild, rescue, shelve, evacuate, volumes, snapshots
    _m("rebuild_instance", CALL, "rebuild"),
    _m("rescue_instance", CALL, "rescue"),
    _starts("unrescue_instance", "unrescue",
            "Boot the instance's own disks again; answers once accepted."),
    _m("shelve_instance", CALL, "shelve", params=("instance_uuid",),
       doc="Shut down, upload the root disk as an image; offloaded at once when the host's "
           "shelved_offload_time is 0."),
    _starts("shelve_offload_instance", "shelve_offload",
            "Remove a shelved instance's guest, disks and ports from host."),
    _m("unshelve_instance", CALL, "unshelve", "unshelve_hand_over"),
    _m("take_shelved_instance", CALL, "unshelve", peer=True,
       params=("instance", "shelved_image_id", "source_host"),
       doc="Agent to agent: unshelve an offloaded instance on host."),
    _m("evacuate_instance", CALL, "evacuate"),
    _m("attach_volume", CALL, "attach_volume",
       params=("instance_uuid", "volume_id", "connection_info"),
       doc="Attach a volume (Cinder's connection_info: driver_volume_type and data); answers "
           "the guest's device. Follow task_state."),
    _m("detach_volume", CALL, "detach_volume", params=("instance_uuid", "volume_id")),
    _m("extend_volume", CALL, "extend_volume", params=("instance_uuid", "volume_id", "new_size"),
       doc="After the storage grew the volume to new_size bytes: the running guest sees the "
           "new size. Follow task_state."),
    _m("snapshot_instance", CALL, "snapshot", params=("instance_uuid", "name"),
       doc="Snapshot an instance into a new image; answers with its id once accepted. The "
           "instance's task_state goes image_snapshot -> image_pending_upload -> "
           "image_uploading -> None, with a progress percentage in get_instance."),
    # networking
    _m("refresh_security_group_rules", params=("security_group",),
       doc="Replace a group's rules (and remote members); answers once the host's firewall is "
           "updated."),
    _m("attach_interface", CALL, "attach_interface"),
    _m("detach_interface", CALL, "detach_interface", params=("instance_uuid", "port_id"),
       serves="networking.detach_interface", ctxt=True),
    _m("associate_floating_ip", CALL, "associate_floating_ip"),
    _m("disassociate_floating_ip", CALL, "disassociate_floating_ip", params=("address",),
       serves="networking.disassociate_floating_ip", ctxt=True),
    _m("get_network_status", params=(),
       serves="networking.get_network_status"),
    # queries and admin
    _m("get_instance"),
    _m("list_instances", params=(),
       doc="Records of the instances on host that are not deleted."),
    _m("list_instance_actions", params=("instance_uuid",),
       doc="Every operation on the instance with its events and results."),
    _m("get_console_output"),
    _m("get_serial_console", params=("instance_uuid",),
       doc="{type, url, websocket, expires_in}: the console proxy's websocket URL for the "
           "guest's serial console, with a one-time token."),
    _m("get_vnc_console", params=("instance_uuid",),
       doc="{type, url, websocket, expires_in}: the noVNC page (url) and the websocket URL of "
           "the guest's VNC console, with a one-time token."),
    _m("get_diagnostics", params=("instance_uuid",),
       serves="lifecycle.get_diagnostics",
       doc="CPU time, memory and per-disk/per-interface counters."),
    _m("get_host_status", params=(),
       doc="The host's resource record and its saved-state disk usage."),
    _m("get_image_cache_status", params=(),
       serves="images.status",
       doc="The bases in host's cache: sizes, hit and miss counts."),
    _m("manage_image_cache", params=(),
       serves="images.manage",
       doc="Admin: run the cache manager now; returns removed and kept bases."),
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


def serving(name):
    """The declaration of name when the endpoint's method is made from it
    (it serves a part method), else None."""
    declared = METHODS.get(name)
    return declared if declared is not None and declared.serves else None


def made_client(name):
    """The declaration of name when the client's method is made from it
    (its params), else None."""
    declared = METHODS.get(name)
    return declared if declared is not None and declared.params is not None else None


def payload_of(declared, args, kwargs):
    """The payload of a made client method's call: its positional args in
    the declared order, then its keyword args, each a declared param (pure)."""
    if len(args) > len(declared.params):
        raise TypeError(f"{declared.name}() takes {len(declared.params)} arguments after host "
                        f"({', '.join(declared.params)}), {len(args)} given")
    payload = dict(zip(declared.params, args, strict=False))
    for key, value in kwargs.items():
        if key not in declared.params or key in payload:
            raise TypeError(f"{declared.name}() got an unexpected or repeated argument {key!r}")
        payload[key] = value
    missing = [p for p in declared.params if p not in payload]
    if missing:
        raise TypeError(f"{declared.name}() is missing {', '.join(missing)}")
    return payload


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
