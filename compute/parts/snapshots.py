"""Instance snapshots, uploaded to the image service.

accept_snapshot (in the RPC call): the state check and compare-and-swap to
IMAGE_SNAPSHOT, the free-space check, and the image created "queued" with
the properties a boot needs; the caller gets the image id at once.
snapshot_instance (in the worker pool, at most max_concurrent_snapshots at
a time) then:

1. makes the flat image in snapshots_directory/<uuid>.<image id>/: live
   (the guest runs on an overlay while its frozen disk is converted, then
   the overlay is merged back) unless the guest is off or live snapshots
   are disabled; cold for a running guest means managed-save, convert,
   restore, so the guest ends as it was;
2. IMAGE_PENDING_UPLOAD, then IMAGE_UPLOADING: streams the file while
   hashing it, and checks the image service's hash of what it stored;
3. on any failure deletes the half-made image from the image service, and
   always removes the work directory and clears the task state.

The work directory holds state.json (image id, whether the guest was saved
for a cold copy), so after an agent killed mid-way, init_host finishes the
cleanup: image deleted unless active, guest restored, directory removed;
and every guest left on a snapshot overlay is merged back onto its disk.
"""
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid as uuidlib

from compute.core import exception, faults, optable
from compute.core.instance import power_state, virt_instance
from compute.core.operation import progress_writer
from imagecache import errors as image_errors
from imagecache import verify
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)
BOOT_PROPERTIES = ("kernel_id", "ramdisk_id", "os_command_line", "os_type", "os_distro")
CHUNK = 4 * 1024 * 1024


def snapshot_properties(inst):
    """What the snapshot image carries: where it came from, and what the
    source image needs to boot (kernel, ramdisk, command line, hw_*)."""
    props = (inst.image_meta or {}).get("properties", {})
    out = {k: v for k, v in props.items() if k in BOOT_PROPERTIES or k.startswith("hw_")}
    out.update(instance_uuid=inst.uuid, base_image_ref=inst.image_ref, image_type="snapshot")
    return out


class Snapshots:
    def __init__(self, conf, db, driver, runner, images, glance, host):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner
        self.images, self.glance, self.host = images, glance, host
        self.snapshots_dir = conf.snapshots_directory
        self._snapshot_slots = threading.BoundedSemaphore(conf.max_concurrent_snapshots)

    def _workdir(self, uuid, image_id):
        return os.path.join(self.snapshots_dir, f"{uuid}.{image_id}")

    def accept_snapshot(self, uuid, name):
        self.runner.accept("snapshot", uuid, progress=0)
        try:
            inst = self.db.instance_get(uuid)
            self.check_space(inst)
            # the work directory (named by the image id we choose) exists
            # before the image does, so a restart can always find both
            image_id = str(uuidlib.uuid4())
            workdir = self._workdir(uuid, image_id)
            os.makedirs(workdir)
            self._write_state(workdir, {"image_id": image_id, "saved": False})
            image = self.create_image(inst, image_id, name)
        except Exception:
            if "workdir" in locals():
                shutil.rmtree(workdir, ignore_errors=True)
            self.runner.finish("snapshot", uuid, progress=None)
            raise
        return image

    def check_space(self, inst):
        """InsufficientStorage unless snapshots_directory can hold the
        flat image of inst's root disk."""
        files = self.images.files_for(inst, inst.image_meta)
        os.makedirs(self.snapshots_dir, mode=0o750, exist_ok=True)
        st = os.statvfs(self.snapshots_dir)
        need = self.driver.snapshot_bytes(virt_instance(inst), files)
        free = st.f_bavail * st.f_frsize
        if need > free:
            raise exception.InsufficientStorage(
                f"snapshot of {inst.uuid}: {self.snapshots_dir} has {free // 2**20} MiB free, "
                f"the image needs up to {need // 2**20} MiB; nothing was done")

    def create_image(self, inst, image_id, name):
        """The image record (queued) a snapshot of inst is uploaded to."""
        fmt = self.conf.snapshot_image_format or inst.image_meta.get("disk_format", "qcow2")
        return self.glance.create(id=image_id, name=name, disk_format=fmt,
                                  container_format="bare", **snapshot_properties(inst))

    def make_image(self, inst, image_id, record, op_name):
        """A snapshot of inst's root disk uploaded to image_id (made by
        create_image), the record passing through the three task states of
        op_name's row; the image deleted when this fails, the work directory
        removed in any case."""
        workdir = self._workdir(inst.uuid, image_id)
        os.makedirs(workdir, exist_ok=True)
        try:
            self._snapshot(inst, image_id, record, op_name)
        except Exception:
            self.forget_image(image_id)
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _write_state(workdir, state):
        with open(os.path.join(workdir, "state.json.tmp"), "w") as f:
            json.dump(state, f)
        os.replace(os.path.join(workdir, "state.json.tmp"),
                   os.path.join(workdir, "state.json"))

    def snapshot_instance(self, ctxt, uuid, image_id):
        with self._snapshot_slots:
            try:
                self.runner.run("snapshot", ctxt, uuid,
                                lambda inst, record: self._snapshot(
                                    inst, image_id, record, "snapshot"),
                                reraise=True)
            except Exception as e:
                LOG.error("instance %s: snapshot %s failed: %s", uuid, image_id, e)
                self.forget_image(image_id)
            finally:
                shutil.rmtree(self._workdir(uuid, image_id), ignore_errors=True)

    def _snapshot(self, inst, image_id, record, op_name):
        uuid = inst.uuid
        vi, fmt = virt_instance(inst), self.glance.show(image_id)["disk_format"]
        files = self.images.files_for(inst, inst.image_meta)
        power = power_state(self.driver, inst)
        running = power in (virt_driver.RUNNING, virt_driver.PAUSED)
        live = running and not self.conf.disable_live_snapshot
        workdir = self._workdir(uuid, image_id)
        state = {"image_id": image_id, "saved": running and not live}
        self._write_state(workdir, state)
        record.event("snapshot_live" if live else "snapshot_cold")
        progress = progress_writer(self.db, uuid, 0, 50)
        started = time.monotonic()
        if state["saved"]:
            self.driver.suspend(vi)           # managed save: memory and disk consistent
        try:
            path = self.driver.snapshot(vi, files, workdir, fmt, live, progress)
            faults.point("snapshot.image_made")
            record.event("image_made", f"{time.monotonic() - started:.3f} s, "
                                       f"{os.path.getsize(path)} bytes of {fmt}")
        finally:
            if live:
                merging = time.monotonic()
                self.driver.end_snapshot(vi)  # the guest's writes back on its own disk
                record.event("disk_merged", f"{time.monotonic() - merging:.3f} s")
            if state["saved"]:
                self.driver.resume(vi)        # back as it was, running or paused
        tasks = optable.TABLE[op_name].tasks
        self.runner.advance(op_name, uuid, tasks[1], progress=50)
        self.runner.advance(op_name, uuid, tasks[2])
        self._upload(image_id, path, progress_writer(self.db, uuid, 50, 100))
        faults.point("snapshot.uploaded")
        record.event("uploaded", f"image {image_id}, {os.path.getsize(path)} bytes")

    def _upload(self, image_id, path, progress):
        size, sha = os.path.getsize(path), hashlib.sha512()

        def chunks():
            sent = 0
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    sha.update(chunk)
                    sent += len(chunk)
                    progress(sent * 100 // max(size, 1))
                    yield chunk
        self.glance.upload(image_id, chunks())
        stored = self.glance.show(image_id)
        # checked with the algorithm the service reports (Glance's
        # hashing_algorithm), sha512 (its default) computed while sending
        algo, want = verify.expected_hash(stored, self.conf.image.allow_md5_checksum,
                                          allow_unverified=True)
        if algo not in (None, "sha512"):
            with open(path, "rb") as f:
                got = hashlib.file_digest(f, lambda: verify.hasher(algo)).hexdigest()
        else:
            got = sha.hexdigest()
        if (want is not None and got != want) or stored.get("size") != size:
            raise image_errors.ImageChecksumMismatch(
                f"image {image_id}: the image service stored other data than was sent "
                f"({algo or 'size'} differs)")

    def forget_image(self, image_id):
        try:
            self.glance.delete(image_id)
        except image_errors.ImageNotFound:
            pass
        except Exception:
            LOG.exception("snapshot image %s could not be deleted", image_id)

    def recover_at_start(self):
        """Agent start: what a killed agent left of its snapshots."""
        names = os.listdir(self.snapshots_dir) if os.path.isdir(self.snapshots_dir) else []
        for name in names:
            uuid, _, image_id = name.partition(".")
            workdir = os.path.join(self.snapshots_dir, name)
            try:
                with open(os.path.join(workdir, "state.json")) as f:
                    state = json.load(f)
            except (OSError, ValueError):
                state = {"image_id": image_id, "saved": False}
            LOG.warning("instance %s: cleaning up snapshot %s interrupted by a restart",
                        uuid, image_id)
            try:
                if self.glance.show(state["image_id"]).get("status") != "active":
                    self.forget_image(state["image_id"])
            except image_errors.ImageNotFound:
                pass
            except Exception:
                LOG.exception("snapshot image %s: status unknown; kept", state["image_id"])
            if state.get("saved"):
                try:
                    self.driver.resume(virt_instance(self.db.instance_get(uuid)))
                except Exception:
                    LOG.exception("instance %s: not restored after a cold snapshot", uuid)
            shutil.rmtree(workdir, ignore_errors=True)
        for inst in self.db.instance_list(host=self.host):
            try:          # a guest left on a live snapshot's overlay goes back to its disk
                self.driver.end_snapshot(virt_instance(inst))
            except Exception:
                LOG.exception("instance %s: still on its snapshot overlay", inst.uuid)
