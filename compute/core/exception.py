"""Errors the service raises and sends back to RPC callers.

oslo.messaging re-creates exceptions of this module on the caller's side
(it is listed in allowed_remote_exmods), so a caller can catch, for example,
compute.core.exception.InvalidRequest from a call that failed validation.
Every class takes one message argument.
"""


def local_copy(e):
    """A ComputeError from another agent as that agent raised it:
    oslo.messaging re-creates it as a subclass whose str() adds the remote
    traceback, which is noise when the error is passed on."""
    cls = type(e)
    if cls.__name__.endswith("_Remote"):
        cls = cls.__bases__[0]
    return cls(*e.args)


class ComputeError(Exception):
    """Base class; str() is the reason, written for an operator."""


class InvalidRequest(ComputeError):
    """The payload failed validation; nothing was written."""


class InvalidAnswer(ComputeError):
    """Another agent's answer failed validation; it was not used."""


class UnsafeImage(ComputeError):
    """An image or a disk from another host failed inspection; nothing
    opened it."""


class InstanceExists(ComputeError):
    pass


class AgentNotListening(ComputeError):
    """The broker had no queue for the host: no agent has consumed from it
    since the broker (re)started, or no such host.  Nothing was sent."""


class InstanceNotFound(ComputeError):
    pass


class UnexpectedTaskState(ComputeError):
    """Another operation changed the instance first (compare-and-swap lost)."""


class InstanceInvalidState(ComputeError):
    """The operation is not allowed in the instance's current state; the
    instance was not changed."""


class InsufficientStorage(ComputeError):
    """Not enough free space for the operation; nothing was changed."""


class MigrationNotFound(ComputeError):
    pass


class ResourcesUnavailable(ComputeError):
    """The destination cannot hold the instance (memory, disk); nothing was
    changed."""


class GuestAgentUnavailable(ComputeError):
    """The guest has no QEMU guest agent, or it did not answer; nothing
    was changed in the guest."""


class MigrationPreCheckError(ComputeError):
    """A host's pre-migration check refused the migration (CPU, memory,
    disk, storage); nothing was changed."""


class ConsoleUnavailable(ComputeError):
    """The instance has no console of that kind now (not running, consoles
    not enabled on its host); no token was issued."""


class DatabaseUnavailable(ComputeError):
    """The state database cannot be reached: the request was not run (the
    guests keep running; ask again when the database is back)."""


class SchemaBehind(ComputeError):
    """The database schema is older than this agent's code."""
