"""The one helper through which the agent runs a command: an argv list
(never a shell), logged, and oslo.concurrency's ProcessExecutionError with
the command's stderr on failure.  Used as is for what needs no privilege
and, inside the privsep daemons, by the privileged entry points."""
import logging
import subprocess

from oslo_concurrency import processutils

LOG = logging.getLogger(__name__)


def execute(*argv, process_input=None):
    """Run argv and return its stdout.

    subprocess.run rather than processutils.execute: processutils always
    hands Popen a preexec_fn, which makes Python fork() the whole agent
    instead of vfork()ing it: 11-17 ms a command in a 200 MB process
    against 1.4 ms (measured here), and a build runs a dozen of these.
    Python's own restore_signals already does what that preexec_fn does."""
    LOG.debug("running: %s", " ".join(argv))
    proc = subprocess.run(argv, input=process_input, capture_output=True, text=True)
    if proc.returncode:
        raise processutils.ProcessExecutionError(stdout=proc.stdout, stderr=proc.stderr,
                                                 exit_code=proc.returncode,
                                                 cmd=" ".join(argv))
    return proc.stdout
