"""Nova's names for an instance's vm_state and task_state.  power_state
numbers are the driver's (virt.driver); a migration row's status is a
MigrationStatus."""
import enum

# vm_state: what the instance is, as far as the user is concerned.
ACTIVE = "active"
BUILDING = "building"
STOPPED = "stopped"
PAUSED = "paused"
SUSPENDED = "suspended"
DELETED = "deleted"
ERROR = "error"
RESIZED = "resized"
RESCUED = "rescued"
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"

# task_state: the operation in progress, None when idle.
SCHEDULING = "scheduling"
NETWORKING = "networking"
SPAWNING = "spawning"
DELETING = "deleting"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
SUSPENDING = "suspending"
RESUMING = "resuming"
PAUSING = "pausing"
UNPAUSING = "unpausing"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
IMAGE_SNAPSHOT = "image_snapshot"
IMAGE_PENDING_UPLOAD = "image_pending_upload"
IMAGE_UPLOADING = "image_uploading"
MIGRATING = "migrating"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
RESIZE_CONFIRMING = "resize_confirming"
UPDATING_PASSWORD = "updating_password"
REBUILDING = "rebuilding"
RESCUING = "rescuing"
UNRESCUING = "unrescuing"
SHELVING = "shelving"
SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"
REBUILD_SPAWNING = "rebuild_spawning"
ATTACHING_VOLUME = "attaching_volume"
DETACHING_VOLUME = "detaching_volume"
EXTENDING_VOLUME = "extending_volume"


def offloaded(vm_state, task_state):
    """Whether an instance has nothing on its host (no guest, disk, port
    or claim): shelved and offloaded, and no unshelve under way."""
    return vm_state == SHELVED_OFFLOADED and task_state is None


class MigrationStatus(enum.StrEnum):
    """A migration row's status (live, cold, resize, evacuation): plain
    strings in the database and on the wire."""
    PRE_MIGRATING = "pre-migrating"     # accepted at the source
    MIGRATING = "migrating"             # the destination prepared
    POST_MIGRATING = "post-migrating"   # moved; the destination finishing
    FINISHED = "finished"               # resize/cold: on the destination, awaiting a decision
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    COMPLETED = "completed"             # live: moved; evacuation: the source cleaned up
    ERROR = "error"
    ACCEPTING = "accepting"             # evacuation: opened, the record not read yet
    ACCEPTED = "accepted"               # evacuation: rebuilding on the destination
    DONE = "done"                       # evacuation: rebuilt; the source cleans up on return


# nothing more happens to a migration in one of these
FINAL_MIGRATION = frozenset({MigrationStatus.CONFIRMED, MigrationStatus.REVERTED,
                             MigrationStatus.COMPLETED, MigrationStatus.ERROR,
                             MigrationStatus.DONE})
