"""Nova's names for an instance's vm_state and task_state.  power_state
numbers are the driver's (virt.driver)."""

# vm_state: what the instance is, as far as the user is concerned.
ACTIVE = "active"
BUILDING = "building"
STOPPED = "stopped"
PAUSED = "paused"
SUSPENDED = "suspended"
DELETED = "deleted"
ERROR = "error"

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
