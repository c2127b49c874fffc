"""Fault injection for the chaos tests: crash points at the named steps of
each operation.  Off unless the agent's environment names a step in
COMPUTE_AGENT_CRASH_AT (read once, at start); then the agent kills itself
with SIGKILL the first time it reaches that step, as a crash there would.
Nothing in a deployed agent sets it."""
import logging
import os
import signal

LOG = logging.getLogger(__name__)
ENV = "COMPUTE_AGENT_CRASH_AT"
_ARMED = os.environ.get(ENV) or None

# Every step a test may name (what the agent has just done when it dies).
STEPS = (
    "build.plugged", "build.spawned",
    "delete.destroyed",
    "snapshot.image_made", "snapshot.uploaded",
    "live_migration.checked", "live_migration.prepared", "live_migration.migrated",
    "live_migration.posted",
    "live_migration_destination.recorded", "live_migration_destination.posted",
    "resize.prepared", "resize.powered_off", "resize.sent", "resize.finished_remote",
    "resize_destination.received", "resize_destination.defined",
    "confirm_resize.synced", "confirm_resize.source_confirmed",
    "revert_resize.dropped", "revert_resize.source_reverted",
    "set_admin_password.accepted",
    "rebuild.prepared", "rebuild.spawned",
    "rescue.prepared", "rescue.booted", "unrescue.booted",
    "shelve.powered_off", "shelve.image_created", "shelve_offload.destroyed",
    "unshelve.handed_over", "unshelve.prepared", "unshelve.spawned",
    "evacuate.opened", "evacuate.prepared", "evacuate.spawned", "evacuate_source.destroyed",
    "attach_volume.attached", "detach_volume.detached", "extend_volume.extended",
)


def point(step):
    """A crash point: SIGKILL here when the environment names this step."""
    if _ARMED is not None and _ARMED == step:
        LOG.warning("crash point %s reached: killing the agent (%s)", step, ENV)
        os.kill(os.getpid(), signal.SIGKILL)
