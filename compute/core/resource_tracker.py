"""ResourceTracker: the one rule for "does this fit on the host", and the
claims that hold what fits.

What the host offers is the hypervisor's vCPUs, memory and disk (the
filesystem of instances_path), times the allocation ratios, minus what is
reserved for the host.  What is used is the sum of the flavors of every
instance record on the host that holds resources: everything recorded and
not deleted, except a build that failed before its guest ever ran.  A
claim checks a request against that under one lock, and the caller records
its instance inside the claim, so two concurrent claims can never both
take the last room.  Builds, resizes and incoming migrations claim here;
the periodic resource report reads the same figures."""
import contextlib
import dataclasses
import logging
import threading

from compute.core import exception, states
from virt.driver import BOOT_DEVICE, disks_shared

LOG = logging.getLogger(__name__)
GiB_MB = 1024


@dataclasses.dataclass(frozen=True)
class Resources:
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def __add__(self, other):
        return Resources(self.vcpus + other.vcpus, self.memory_mb + other.memory_mb,
                         self.disk_gb + other.disk_gb)

    def __sub__(self, other):
        return Resources(self.vcpus - other.vcpus, self.memory_mb - other.memory_mb,
                         self.disk_gb - other.disk_gb)


def of_flavor(flavor, disk=True, root=True):
    """What a flavor takes (its disks only where they live on this host;
    no root disk when root is False: a boot volume)."""
    return Resources(flavor["vcpus"], flavor["memory_mb"],
                     (flavor["root_gb"] if root else 0) + flavor.get("ephemeral_gb", 0)
                     if disk else 0)


def claim_request(flavor, volumes=(), disk_formats=None, disks_local=True,
                  new_disks_shared=False):
    """What an instance claims on this host, the one rule every claim and
    the usage use (pure): its flavor's vCPUs and memory; its disks only
    where they take this host's disk (not when disks_local is False: shared
    storage, a live migration without block copy; not RBD images; a record
    with no disks yet makes them where this host makes new disks), and no
    root disk when a volume is its root."""
    return of_flavor(flavor, disks_local and disks_here(disk_formats, new_disks_shared),
                     root=not boots_from_volume(volumes))


def of_instance(inst, disk=True, new_disks_shared=False):
    """What an instance's record takes here (claim_request of its record)."""
    return claim_request(inst.flavor, inst.volumes, inst.disk_formats, disk, new_disks_shared)


def disks_here(disk_formats, new_disks_shared=False):
    """Whether disks of these recorded formats take this host's disk: not
    those on shared block storage (virt.driver.disks_shared; pure)."""
    return not disks_shared(disk_formats, new_disks_shared)


def boots_from_volume(volumes):
    """Whether recorded volumes ({volume_id, device, ...}) hold the root disk."""
    return any(v["device"] == BOOT_DEVICE for v in volumes or ())


def limits(total, ratios, reserved):
    """What the host may hand out: total x ratio - reserved, per resource."""
    return Resources(int(total.vcpus * ratios.vcpus),
                     int(total.memory_mb * ratios.memory_mb) - reserved.memory_mb,
                     int(total.disk_gb * ratios.disk_gb) - reserved.disk_gb)


def shortfall(limit, used, request):
    """None when request fits beside used within limit, else the reason
    (pure)."""
    free = limit - used
    missing = [f"{name} {getattr(request, field)} of {max(getattr(free, field), 0)} free"
               for field, name in (("vcpus", "vCPUs"), ("memory_mb", "MiB of memory"),
                                   ("disk_gb", "GiB of disk"))
               if getattr(request, field) > 0 and getattr(request, field) > getattr(free, field)]
    return "; ".join(missing) or None


def holds_resources(inst):
    """A record that counts: not a build that failed before it ever ran,
    nor an instance shelved and offloaded."""
    if states.offloaded(inst.vm_state, inst.task_state):
        return False
    return not (inst.vm_state == states.ERROR and inst.launched_at is None
                and inst.task_state is None)


class ResourceTracker:
    def __init__(self, conf, db, driver, host):
        self.db, self.driver, self.host = db, driver, host
        self.ratios = dataclasses.replace(Resources(), vcpus=conf.cpu_allocation_ratio,
                                          memory_mb=conf.ram_allocation_ratio,
                                          disk_gb=conf.disk_allocation_ratio)
        self.reserved = Resources(0, conf.reserved_host_memory_mb,
                                  -(-conf.reserved_host_disk_mb // GiB_MB))
        self._lock = threading.Lock()

    def total(self):
        res = self.driver.get_available_resource()
        return Resources(res.vcpus, res.memory_mb, res.local_gb)

    def capacity(self):
        """What the host may hand out (its limits)."""
        return limits(self.total(), self.ratios, self.reserved)

    def used(self):
        used = Resources()
        for inst in self.db.instance_list(host=self.host):
            if holds_resources(inst):
                used += of_instance(inst, new_disks_shared=self.driver.new_disks_shared())
        return used

    @contextlib.contextmanager
    def claim(self, request, what):
        """Hold the host for request (Resources) while the caller records
        what takes it; ResourcesUnavailable, before anything is made, when
        it does not fit."""
        with self._lock:
            reason = shortfall(self.capacity(), self.used(), request)
            if reason:
                raise exception.ResourcesUnavailable(f"{self.host} cannot hold {what}: "
                                                     f"it asks for {reason}")
            yield

    def check(self, request, what):
        """The same test as claim(), holding nothing (a pre-check)."""
        with self.claim(request, what):
            pass

    def report(self):
        """The figures of the periodic resource report."""
        total, used = self.total(), self.used()
        return {"vcpus": total.vcpus, "memory_mb": total.memory_mb, "local_gb": total.disk_gb,
                "vcpus_used": used.vcpus, "memory_mb_used": used.memory_mb,
                "local_gb_used": used.disk_gb,
                "running_vms": sum(1 for i in self.db.instance_list(host=self.host)
                                   if holds_resources(i))}
