"""A live snapshot's merge pivots once libvirt calls the job ready: in
sync (cur == end) can come a moment before, and a pivot then is refused
(seen under load in CI: "block job ... not ready for pivot yet")."""
import libvirt
import pytest

from virt import errors
from virt.libvirt import guest as guest_mod
from virt.libvirt import live_snapshot


class Job:
    """A guest whose merge is in sync and refuses `refusals` pivots first."""

    def __init__(self, refusals):
        self.refusals, self.pivots = refusals, 0

    def block_job_info(self, dev):
        return {"cur": 10, "end": 10}

    def block_job_pivot(self, dev):
        self.pivots += 1
        if self.pivots <= self.refusals:
            raise errors.BlockJobNotReady("libvirt: block copy still active")


def test_a_pivot_refused_as_not_ready_is_tried_again():
    job = Job(refusals=2)
    live_snapshot._pivot_when_ready(job, "vda", timeout=5)
    assert job.pivots == 3


def test_a_job_never_ready_fails_at_the_timeout():
    with pytest.raises(errors.BlockJobNotReady):
        live_snapshot._pivot_when_ready(Job(refusals=10 ** 6), "vda", timeout=0.2)


def test_libvirt_says_not_ready_with_its_own_code():
    e = libvirt.libvirtError("block copy still active")
    e.err = (libvirt.VIR_ERR_BLOCK_COPY_ACTIVE, 0, "block copy still active: not ready", 0,
             None, None, None, 0, 0)
    assert isinstance(guest_mod.translate(e), errors.BlockJobNotReady)
