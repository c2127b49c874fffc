"""Every operation of the agent as one row of a table, pure data: the
states it accepts, the task states it passes through, how a failure settles
the record, and what agent start does when it finds the operation
interrupted.  The endpoint's accept (compute.operation.Runner.accept), the
settle on failure (Runner.run) and the restart reconcile
(compute.reconcile) read this table; nothing else decides.  Adding an
operation is one row here and one method on a part.

Restart decisions (`restart`):
- RESUME: issue the operation again (power operations, delete);
- CLEAN_UP: undo what it made and settle in ERROR with a fault (build);
- SETTLE: clear the task state, after the part's own clean-up (snapshot);
- ASK_PEER: the part that runs the operation decides with the other host
  (migrations): finish, roll back, or leave it to the side that owns it.
"""
import dataclasses

from compute import states as s

RESUME, CLEAN_UP, SETTLE, ASK_PEER = "resume", "clean_up", "settle", "ask_peer"
KEEP = "keep"         # done: clear the task state, keep the vm_state
SOURCE, DESTINATION = "source", "destination"
ANY = None            # vm_from/task_from: every state


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    action: str                      # the instance-action record's name
    vm_from: frozenset | None        # vm_states it is accepted in (ANY: all)
    task_from: tuple | None          # task_states it is accepted in (ANY: all)
    tasks: tuple                     # task_states it passes through; the first is taken
    done: str | None                 # vm_state on success (KEEP: unchanged; None: the
                                     # part settles the record itself)
    failed: str | None               # vm_state a failure leaves (None: unchanged)
    restart: str | None              # what agent start does (see above)
    side: str | None = None          # migrations: which host's half
    fault: bool = True               # a failure records an instance fault
    migration_failed: str | None = None   # the migration row's status on failure
    root_file: bool = False          # works on the root disk's file: refused for an
                                     # instance booted from volume
    peer: bool = False               # another host takes part: an instance in one of its
                                     # task states is not evacuated


_IDLE = (None,)
_SETTLED = frozenset({s.ACTIVE, s.STOPPED, s.PAUSED, s.SUSPENDED, s.ERROR})
_REBOOT_TASKS = (None, s.REBOOTING, s.REBOOTING_HARD)

ROWS = (
    # build: recorded by the endpoint in BUILDING/scheduling, not accepted by CAS
    Op("build", "create", ANY, ANY, (s.SCHEDULING, s.NETWORKING, s.SPAWNING), s.ACTIVE,
       s.ERROR, CLEAN_UP),
    # delete: from any state, and again when a delete was interrupted
    Op("delete", "delete", ANY, ANY, (s.DELETING,), None, s.ERROR, RESUME),
    Op("reboot_soft", "reboot", frozenset({s.ACTIVE}), _IDLE, (s.REBOOTING,), s.ACTIVE,
       s.ERROR, RESUME),
    # hard reboot is the "just fix it" operation: from any settled state,
    # and again while a reboot is pending or after one was interrupted
    Op("reboot_hard", "reboot", _SETTLED, _REBOOT_TASKS, (s.REBOOTING_HARD,), s.ACTIVE,
       s.ERROR, RESUME),
    Op("suspend", "suspend", frozenset({s.ACTIVE}), _IDLE, (s.SUSPENDING,), s.SUSPENDED,
       None, RESUME),
    Op("resume", "resume", frozenset({s.SUSPENDED}), _IDLE, (s.RESUMING,), s.ACTIVE, None,
       RESUME),
    Op("pause", "pause", frozenset({s.ACTIVE}), _IDLE, (s.PAUSING,), s.PAUSED, None, RESUME),
    Op("unpause", "unpause", frozenset({s.PAUSED}), _IDLE, (s.UNPAUSING,), s.ACTIVE, None,
       RESUME),
    Op("stop", "stop", frozenset({s.ACTIVE, s.PAUSED, s.SUSPENDED, s.ERROR}), _IDLE,
       (s.POWERING_OFF,), s.STOPPED, None, RESUME),
    Op("start", "start", frozenset({s.STOPPED}), _IDLE, (s.POWERING_ON,), s.ACTIVE, None,
       RESUME),
    # the password reaches only the guest agent: an interrupted change is
    # settled (the caller saw its call fail), never resumed
    Op("set_admin_password", "set_admin_password", frozenset({s.ACTIVE}), _IDLE,
       (s.UPDATING_PASSWORD,), KEEP, None, SETTLE),
    # rebuild: a new root disk from the (same or a new) image, recorded at
    # accept; taken up again after a restart, since the old disk may be gone
    Op("rebuild", "rebuild", frozenset({s.ACTIVE, s.STOPPED, s.ERROR}), _IDLE,
       (s.REBUILDING,), s.ACTIVE, s.ERROR, RESUME, root_file=True),
    # rescue boots the rescue image's fresh disk with the instance's own
    # disks after it; both are definitions made again from the record, so
    # an interrupted one is simply issued again.  A failure leaves ERROR
    # with its fault; a hard reboot from there boots the own disks.
    Op("rescue", "rescue", frozenset({s.ACTIVE, s.STOPPED, s.ERROR}), _IDLE, (s.RESCUING,),
       s.RESCUED, s.ERROR, RESUME, root_file=True),
    Op("unrescue", "unrescue", frozenset({s.RESCUED}), _IDLE, (s.UNRESCUING,), s.ACTIVE,
       s.ERROR, RESUME),
    # shelve: the guest off, its root disk uploaded as an image (whose id is
    # recorded before the image is made, so a restart finds it, keeps it
    # when active and makes it anew otherwise); a failure leaves the vm
    # state (the guest off: the power sync says STOPPED) with its fault
    Op("shelve", "shelve", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.SHELVING, s.SHELVING_IMAGE_PENDING_UPLOAD, s.SHELVING_IMAGE_UPLOADING), s.SHELVED,
       None, RESUME, root_file=True),
    # offload: guest, disks, ports, rules and claim go; taken up again
    Op("shelve_offload", "shelve_offload", frozenset({s.SHELVED}), _IDLE,
       (s.SHELVING_OFFLOADING,), s.SHELVED_OFFLOADED, None, RESUME),
    # unshelve: here (power on a shelved guest, or spawn from the image of
    # an offloaded one), or handed over to another host that spawns it;
    # the resume of an interrupted one decides which (compute.shelve)
    Op("unshelve", "unshelve", frozenset({s.SHELVED, s.SHELVED_OFFLOADED}), _IDLE,
       (s.UNSHELVING,), s.ACTIVE, None, RESUME, peer=True),
    # evacuate: recorded here by the accept (with its migration row), not
    # by CAS; the rebuild is issued again after a restart (shared disks are
    # only defined again; disks from the image are made anew)
    Op("evacuate", "evacuate", ANY, ANY, (s.REBUILD_SPAWNING,), None, s.ERROR, RESUME,
       migration_failed="error"),
    # volumes: the volume (or its id) recorded at accept; both steps find
    # the disk by its serial, so an interrupted one is issued again
    Op("attach_volume", "attach_volume", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.ATTACHING_VOLUME,), KEEP, None, RESUME),
    Op("detach_volume", "detach_volume", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.DETACHING_VOLUME,), KEEP, None, RESUME),
    # extend: the storage grew the volume; a running guest is told the new
    # size (asking again for the same size is harmless)
    Op("extend_volume", "extend_volume", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.EXTENDING_VOLUME,), KEEP, None, RESUME),
    # admin: no task state, nothing to settle or resume
    Op("reset_state", "reset_state", ANY, ANY, (), None, None, None, fault=False),
    Op("snapshot", "snapshot", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED, s.SUSPENDED}),
       _IDLE, (s.IMAGE_SNAPSHOT, s.IMAGE_PENDING_UPLOAD, s.IMAGE_UPLOADING), KEEP, None,
       SETTLE, root_file=True),
    Op("live_migration", "live_migration", frozenset({s.ACTIVE, s.PAUSED}), _IDLE,
       (s.MIGRATING,), None, None, ASK_PEER, SOURCE, migration_failed="error", peer=True),
    # recorded here by pre_live_migration, not accepted by CAS
    Op("live_migration_destination", "live_migration_destination", ANY, ANY,
       (s.MIGRATING,), None, None, ASK_PEER, DESTINATION, peer=True),
    Op("resize", "resize", frozenset({s.ACTIVE, s.STOPPED}), _IDLE,
       (s.RESIZE_PREP, s.RESIZE_MIGRATING, s.RESIZE_MIGRATED), None, None, ASK_PEER,
       SOURCE, migration_failed="error", root_file=True, peer=True),
    # recorded here by prep_resize, not accepted by CAS
    Op("resize_destination", "resize_finish", ANY, ANY, (s.RESIZE_PREP, s.RESIZE_FINISH),
       s.RESIZED, None, ASK_PEER, DESTINATION, peer=True),
    # both steps can be taken again (the source's halves are idempotent)
    Op("confirm_resize", "resize_confirm", frozenset({s.RESIZED}), _IDLE,
       (s.RESIZE_CONFIRMING,), None, None, RESUME, peer=True),
    Op("revert_resize", "resize_revert", frozenset({s.RESIZED}), _IDLE,
       (s.RESIZE_REVERTING,), None, None, RESUME, peer=True),
)
TABLE = {op.name: op for op in ROWS}


def refusal(op, boots_from_volume):
    """Why op cannot work on an instance with such disks, or None (pure)."""
    if op.root_file and boots_from_volume:
        return f"cannot {op.name.replace('_', ' ')} it: it boots from a volume, and this " \
               "works on a root disk on the host"
    return None


def peer_tasks():
    """The task states of the operations another host takes part in (pure)."""
    return frozenset(t for op in ROWS if op.peer for t in op.tasks)


def by_task(task_state):
    """The rows an instance in task_state may be in the middle of (a
    migration's task states appear on both its sides)."""
    return [op for op in ROWS if task_state in op.tasks]


def accepts(op, vm_state, task_state):
    """Whether op may start from these states (pure)."""
    return ((op.vm_from is ANY or vm_state in op.vm_from)
            and (op.task_from is ANY or task_state in op.task_from))


def interrupted(task_state, side=None):
    """The row of the operation an instance found in task_state at agent
    start was running (side: which half of a migration this host runs), or
    None when no row passes through it."""
    rows = by_task(task_state)
    if len(rows) > 1:
        rows = [op for op in rows if op.side == side] or rows[:1]
    return rows[0] if rows else None
