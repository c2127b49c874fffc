"""Privileged entry point for guests' console logs (privileged.read_logs:
CAP_DAC_READ_SEARCH only), which virtlogd writes as root, mode 0600."""
from privileged import ROOTS, checks, read_logs
from virt.libvirt import console


@read_logs.entrypoint
def console_tail(directory, max_bytes):
    """The last max_bytes of the console log of an instance directory
    under instances_path."""
    if not isinstance(max_bytes, int) or not 0 < max_bytes <= 16 * 1024 * 1024:
        raise checks.Refused(f"length {max_bytes!r} refused")
    return console.tail(checks.path_under(directory, ROOTS["instances_path"]), max_bytes)
