"""Every operation that changes an instance, as one row of a table, pure
data: the states it accepts, the task states it passes through, what it
refuses to work on, how a failure settles the record, what agent start
does when it finds the operation interrupted, and the part methods that
run and resume it.  compute.core.operation.Runner accepts, advances, finishes
and settles by the rows (nothing else writes a task state); the endpoint
submits an accepted operation to its row's `runs`; the manager builds the
restart registry from `restart_with`.  Adding an operation is one row
here, one part method and one schema (tests/unit/test_optable.py shows it).

Restart decisions (`restart`):
- RESUME: issue the operation again (power operations, delete);
- CLEAN_UP: undo what it made and settle in ERROR with a fault (build);
- SETTLE: clear the task state, after the part's own clean-up (snapshot);
- ASK_PEER: the part that runs the operation decides with the other host
  (migrations): finish, roll back, or leave it to the side that owns it.

Failure (`on_failure`):
- SETTLE: the Runner clears the task state and sets `failed`;
- LEAVE: the record stays in its task state for the peer that drives the
  operation (a migration's destination half: the source aborts it, or the
  restart recovery asks the source).
"""
import dataclasses

from compute.core import states as s

RESUME, CLEAN_UP, SETTLE, ASK_PEER = "resume", "clean_up", "settle", "ask_peer"
LEAVE = "leave"
KEEP = "keep"         # done: clear the task state, keep the vm_state
SOURCE, DESTINATION = "source", "destination"
ANY = None            # vm_from/task_from: every state

# what an operation may refuse to work on (Op.refuses), and why
BOOT_FROM_VOLUME, VTPM = "boot_from_volume", "vtpm"
REFUSAL_REASONS = {
    BOOT_FROM_VOLUME: "it boots from a volume, and this works on a root disk on the host",
    VTPM: "it has a vTPM, whose state is libvirt's (root's) and does not travel with its "
          "disks or an image; live migration keeps it",
}


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
    refuses: frozenset = frozenset()  # facts of an instance it cannot work on
    peer: bool = False               # another host takes part: an instance in one of its
                                     # task states is not evacuated
    runs: str | None = None          # "part.method(ctxt, uuid)" the endpoint submits once
                                     # accepted (None: called with more by its part)
    restart_with: str | None = None  # "part.method" agent start calls: RESUME (ctxt, uuid),
                                     # ASK_PEER (inst), CLEAN_UP (inst); default runs
    on_failure: str = SETTLE         # SETTLE or LEAVE (see above)

    def restarts_with(self):
        return self.restart_with or self.runs


_IDLE = (None,)
_SETTLED = frozenset({s.ACTIVE, s.STOPPED, s.PAUSED, s.SUSPENDED, s.ERROR})
_REBOOT_TASKS = (None, s.REBOOTING, s.REBOOTING_HARD)
_ROOT = frozenset({BOOT_FROM_VOLUME})
_ROOT_AND_TPM = frozenset({BOOT_FROM_VOLUME, VTPM})
_ERROR = s.MigrationStatus.ERROR


def _power(name, vm_from, task, done):
    """A power operation's row: from idle, a failure keeps the vm_state."""
    return Op(name, name, vm_from, _IDLE, (task,), done, None, RESUME,
              runs=f"lifecycle.{name}")


ROWS = (
    # build: recorded by the endpoint in BUILDING/scheduling (Runner.record),
    # not accepted by CAS
    Op("build", "create", ANY, ANY, (s.SCHEDULING, s.NETWORKING, s.SPAWNING), s.ACTIVE,
       s.ERROR, CLEAN_UP, runs="builds.build_and_run_instance",
       restart_with="builds.clean_up"),
    # delete: from any state, and again when a delete was interrupted
    Op("delete", "delete", ANY, ANY, (s.DELETING,), None, s.ERROR, RESUME,
       runs="builds.terminate_instance"),
    Op("reboot_soft", "reboot", frozenset({s.ACTIVE}), _IDLE, (s.REBOOTING,), s.ACTIVE,
       s.ERROR, RESUME, runs="lifecycle.reboot_soft"),
    # hard reboot is the "just fix it" operation: from any settled state,
    # and again while a reboot is pending or after one was interrupted
    Op("reboot_hard", "reboot", _SETTLED, _REBOOT_TASKS, (s.REBOOTING_HARD,), s.ACTIVE,
       s.ERROR, RESUME, runs="lifecycle.reboot_hard"),
    _power("suspend", frozenset({s.ACTIVE}), s.SUSPENDING, s.SUSPENDED),
    _power("resume", frozenset({s.SUSPENDED}), s.RESUMING, s.ACTIVE),
    _power("pause", frozenset({s.ACTIVE}), s.PAUSING, s.PAUSED),
    _power("unpause", frozenset({s.PAUSED}), s.UNPAUSING, s.ACTIVE),
    _power("stop", frozenset({s.ACTIVE, s.PAUSED, s.SUSPENDED, s.ERROR}), s.POWERING_OFF,
           s.STOPPED),
    _power("start", frozenset({s.STOPPED}), s.POWERING_ON, s.ACTIVE),
    # the password reaches only the guest agent: an interrupted change is
    # settled (the caller saw its call fail), never resumed
    Op("set_admin_password", "set_admin_password", frozenset({s.ACTIVE}), _IDLE,
       (s.UPDATING_PASSWORD,), KEEP, None, SETTLE, runs="lifecycle.set_admin_password"),
    # rebuild: a new root disk from the (same or a new) image, recorded at
    # accept; taken up again after a restart, since the old disk may be gone
    Op("rebuild", "rebuild", frozenset({s.ACTIVE, s.STOPPED, s.ERROR}), _IDLE,
       (s.REBUILDING,), s.ACTIVE, s.ERROR, RESUME, refuses=_ROOT,
       runs="builds.rebuild_instance"),
    # rescue boots the rescue image's fresh disk with the instance's own
    # disks after it; both are definitions made again from the record, so
    # an interrupted one is simply issued again.  A failure leaves ERROR
    # with its fault; a hard reboot from there boots the own disks.
    Op("rescue", "rescue", frozenset({s.ACTIVE, s.STOPPED, s.ERROR}), _IDLE, (s.RESCUING,),
       s.RESCUED, s.ERROR, RESUME, refuses=_ROOT, runs="rescues.rescue"),
    Op("unrescue", "unrescue", frozenset({s.RESCUED}), _IDLE, (s.UNRESCUING,), s.ACTIVE,
       s.ERROR, RESUME, runs="rescues.unrescue"),
    # shelve: the guest off, its root disk uploaded as an image (whose id is
    # recorded before the image is made, so a restart finds it, keeps it
    # when active and makes it anew otherwise); a failure leaves the vm
    # state (the guest off: the power sync says STOPPED) with its fault.
    # A vTPM's state would be lost with the offload.
    Op("shelve", "shelve", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.SHELVING, s.SHELVING_IMAGE_PENDING_UPLOAD, s.SHELVING_IMAGE_UPLOADING), s.SHELVED,
       None, RESUME, refuses=_ROOT_AND_TPM, runs="shelving.shelve"),
    # offload: guest, disks, ports, rules and claim go; taken up again
    Op("shelve_offload", "shelve_offload", frozenset({s.SHELVED}), _IDLE,
       (s.SHELVING_OFFLOADING,), s.SHELVED_OFFLOADED, None, RESUME,
       runs="shelving.shelve_offload"),
    # unshelve: here (power on a shelved guest, or spawn from the image of
    # an offloaded one), or handed over to another host that spawns it;
    # the resume of an interrupted one decides which (compute.parts.shelve)
    Op("unshelve", "unshelve", frozenset({s.SHELVED, s.SHELVED_OFFLOADED}), _IDLE,
       (s.UNSHELVING,), s.ACTIVE, None, RESUME, peer=True, runs="shelving.unshelve",
       restart_with="shelving.resume_unshelve"),
    # an unshelve on another host: only of an offloaded instance (nothing
    # of it is here to leave behind); the record here goes when the
    # destination took it; a failure leaves it offloaded
    Op("unshelve_hand_over", "unshelve", frozenset({s.SHELVED_OFFLOADED}), _IDLE,
       (s.UNSHELVING,), None, None, RESUME, peer=True,
       restart_with="shelving.resume_unshelve"),
    # evacuate: recorded here by the accept (with its migration row), not
    # by CAS; the rebuild is issued again after a restart (shared disks are
    # only defined again; disks from the image are made anew).  vm_from is
    # what a down host's record may be in (compute.parts.evacuate.record_refusal).
    Op("evacuate", "evacuate", frozenset({s.ACTIVE, s.STOPPED, s.ERROR}), ANY,
       (s.REBUILD_SPAWNING,), None, s.ERROR, RESUME, migration_failed=_ERROR,
       runs="evacuations.evacuate"),
    # volumes: the volume (or its id) recorded at accept; both steps find
    # the disk by its serial, so an interrupted one is issued again
    Op("attach_volume", "attach_volume", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.ATTACHING_VOLUME,), KEEP, None, RESUME, runs="volumes.attach"),
    Op("detach_volume", "detach_volume", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.DETACHING_VOLUME,), KEEP, None, RESUME, runs="volumes.detach"),
    # extend: the storage grew the volume; a running guest is told the new
    # size (asking again for the same size is harmless)
    Op("extend_volume", "extend_volume", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED}), _IDLE,
       (s.EXTENDING_VOLUME,), KEEP, None, RESUME, runs="volumes.extend"),
    # interfaces and floating IPs: calls that answer when applied, no task
    # state; a failure undoes its own step and leaves the record as it was
    Op("attach_interface", "attach_interface", frozenset({s.ACTIVE, s.STOPPED}), _IDLE, (),
       None, None, None, runs="networking.attach_interface"),
    Op("detach_interface", "detach_interface", frozenset({s.ACTIVE, s.STOPPED}), _IDLE, (),
       None, None, None, runs="networking.detach_interface"),
    Op("associate_floating_ip", "associate_floating_ip", ANY, ANY, (), None, None, None,
       fault=False, runs="networking.associate_floating_ip"),
    Op("disassociate_floating_ip", "disassociate_floating_ip", ANY, ANY, (), None, None,
       None, fault=False, runs="networking.disassociate_floating_ip"),
    # admin: no task state, nothing to settle or resume
    Op("reset_state", "reset_state", ANY, ANY, (), None, None, None, fault=False,
       runs="lifecycle.reset_state"),
    Op("snapshot", "snapshot", frozenset({s.ACTIVE, s.STOPPED, s.PAUSED, s.SUSPENDED}),
       _IDLE, (s.IMAGE_SNAPSHOT, s.IMAGE_PENDING_UPLOAD, s.IMAGE_UPLOADING), KEEP, None,
       SETTLE, refuses=_ROOT, runs="snapshots.snapshot_instance"),
    Op("live_migration", "live_migration", frozenset({s.ACTIVE, s.PAUSED}), _IDLE,
       (s.MIGRATING,), None, None, ASK_PEER, SOURCE, migration_failed=_ERROR, peer=True,
       runs="live_migrations.live_migrate", restart_with="live_migrations.recover"),
    # recorded here by pre_live_migration (Runner.record), not accepted by
    # CAS; a failure is the source's to roll back
    Op("live_migration_destination", "live_migration_destination", ANY, ANY,
       (s.MIGRATING,), None, None, ASK_PEER, DESTINATION, peer=True,
       restart_with="live_migrations.recover", on_failure=LEAVE),
    # cold migration and resize; vTPM state does not travel with the disks
    Op("resize", "resize", frozenset({s.ACTIVE, s.STOPPED}), _IDLE,
       (s.RESIZE_PREP, s.RESIZE_MIGRATING, s.RESIZE_MIGRATED), None, None, ASK_PEER,
       SOURCE, migration_failed=_ERROR, refuses=_ROOT_AND_TPM, peer=True,
       runs="resizes.resize_instance", restart_with="resizes.recover"),
    # recorded here by prep_resize (Runner.record), not accepted by CAS;
    # finished by finish_resize; a failure is the source's to abort
    Op("resize_destination", "resize_finish", ANY, ANY, (s.RESIZE_PREP, s.RESIZE_FINISH),
       s.RESIZED, None, ASK_PEER, DESTINATION, peer=True, restart_with="resizes.recover",
       on_failure=LEAVE),
    # the destination dropped its half of a failed move (the source puts
    # the instance back)
    Op("resize_abort", "resize_abort", ANY, ANY, (), None, None, None, DESTINATION,
       fault=False),
    # both steps can be taken again (the source's halves are idempotent)
    Op("confirm_resize", "resize_confirm", frozenset({s.RESIZED}), _IDLE,
       (s.RESIZE_CONFIRMING,), None, None, RESUME, peer=True, runs="resizes.confirm_resize",
       restart_with="resizes.resume_confirm"),
    Op("revert_resize", "resize_revert", frozenset({s.RESIZED}), _IDLE,
       (s.RESIZE_REVERTING,), None, None, RESUME, peer=True, runs="resizes.revert_resize",
       restart_with="resizes.resume_revert"),
    # the source's halves of a confirm and a revert, asked by the destination
    Op("resize_confirm_source", "resize_confirm_source", frozenset({s.RESIZED}), ANY, (),
       None, None, None, SOURCE),
    Op("resize_revert_source", "resize_revert_source", frozenset({s.RESIZED}), ANY, (),
       None, None, None, SOURCE),
)
TABLE = {op.name: op for op in ROWS}


def refusal(op, facts):
    """Why op cannot work on an instance with these facts (a set of
    BOOT_FROM_VOLUME, VTPM), or None (pure)."""
    for fact in sorted(op.refuses & set(facts)):
        return f"cannot {op.name.replace('_', ' ')} it: {REFUSAL_REASONS[fact]}"
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
