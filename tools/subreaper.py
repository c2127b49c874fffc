"""Run a daemon under a child subreaper and reap its descendants promptly.

libvirt double-forks QEMU; in a sandbox whose PID 1 reaps orphans slowly, the
zombie QEMU keeps ``kill(pid, 0)`` succeeding and virDomainDestroy waits 1-2 s.
Usage: subreaper.py PIDFILE CMD [ARG...] (detaches, writes its own pid).
"""
import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def main():
    pidfile, argv = sys.argv[1], sys.argv[2:]
    if os.fork():
        return
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if os.fork() == 0:
        os.execvp(argv[0], argv)
    # A daemon that forks into the background is re-parented to us before
    # its parent exits, so "no children at all" means everything we started
    # is gone: then there is nothing left to reap, and we exit.
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


if __name__ == "__main__":
    main()
