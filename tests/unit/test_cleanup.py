"""Which bases the cache cleaner removes: pure selection, and backing files
read from real qcow2 headers."""
import os
import subprocess
import time

from imagecache import cleanup


def test_select_removals_keeps_in_use_and_young():
    now = 10_000
    mtimes = {"old-unused": 0, "old-used": 0, "young-unused": now - 10}
    assert cleanup.select_removals(mtimes, {"old-used"}, now, min_age=100) == ["old-unused"]


def test_backing_file_read_from_the_header(tmp_path):
    base_dir = tmp_path / "_base"
    base_dir.mkdir()
    (base_dir / "abc").write_bytes(b"\0" * 65536)
    (base_dir / "other").write_bytes(b"\0" * 65536)
    inst = tmp_path / "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55"
    inst.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base_dir / "abc"),
                    "-F", "raw", str(inst / "disk"), "1M"], check=True)
    (inst / "console.log").write_text("x")
    assert cleanup.qcow2_backing_file(str(inst / "disk")) == str(base_dir / "abc")
    assert cleanup.qcow2_backing_file(str(inst / "console.log")) is None
    assert cleanup.bases_used_by_disks(str(tmp_path), str(base_dir)) == {"abc"}


class FakeCache:
    def __init__(self, base_dir):
        self.base_dir = base_dir

    def lock(self, name):
        import contextlib
        return contextlib.nullcontext()


def test_clean_removes_old_unused_touches_used(tmp_path):
    for name in ("used", "unused", ".fetch-tmp"):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (0, 0))
    os.chmod(tmp_path / "used", 0o444)            # the base is QEMU's now: never written
    removed, kept = cleanup.clean(FakeCache(str(tmp_path)), {"used"}, min_age=60)
    assert removed == ["unused"] and kept == ["used"]
    assert os.stat(tmp_path / "used").st_mtime == 0                     # not written
    assert time.time() - cleanup.last_used(str(tmp_path))["used"] < 60  # marked
    assert (tmp_path / ".fetch-tmp").exists()                          # in-flight kept
