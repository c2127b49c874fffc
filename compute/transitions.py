"""Which operation may run in which state: one row per operation, pure data.

An operation is accepted when the instance's vm_state is one of `vm_from`
and its task_state one of `task_from`; the acceptance is a compare-and-swap
that sets `task`.  When the work succeeds the instance gets vm_state `done`
and task_state None; when it fails, `failed` (None keeps the vm_state) and
task_state None.
"""
import dataclasses

from compute import states as s


@dataclasses.dataclass(frozen=True)
class Transition:
    vm_from: frozenset
    task_from: tuple
    task: str
    done: str
    failed: str | None = None


_IDLE = (None,)
_REBOOT_TASKS = (None, s.REBOOTING, s.REBOOTING_HARD)

TRANSITIONS = {
    "reboot_soft": Transition(frozenset({s.ACTIVE}), _IDLE, s.REBOOTING, s.ACTIVE, s.ERROR),
    # Hard reboot is the "just fix it" operation: from any settled state,
    # and again while a reboot is pending or after one was interrupted.
    "reboot_hard": Transition(frozenset({s.ACTIVE, s.STOPPED, s.PAUSED, s.SUSPENDED, s.ERROR}),
                              _REBOOT_TASKS, s.REBOOTING_HARD, s.ACTIVE, s.ERROR),
    "suspend": Transition(frozenset({s.ACTIVE}), _IDLE, s.SUSPENDING, s.SUSPENDED),
    "resume": Transition(frozenset({s.SUSPENDED}), _IDLE, s.RESUMING, s.ACTIVE),
    "pause": Transition(frozenset({s.ACTIVE}), _IDLE, s.PAUSING, s.PAUSED),
    "unpause": Transition(frozenset({s.PAUSED}), _IDLE, s.UNPAUSING, s.ACTIVE),
    "stop": Transition(frozenset({s.ACTIVE, s.PAUSED, s.SUSPENDED, s.ERROR}), _IDLE,
                       s.POWERING_OFF, s.STOPPED),
    "start": Transition(frozenset({s.STOPPED}), _IDLE, s.POWERING_ON, s.ACTIVE),
}

# What an agent restart does with an operation it finds interrupted.
RESUME_AFTER_RESTART = {t.task: op for op, t in TRANSITIONS.items()}
