"""Image headers are read without qemu-img, and dangerous qcow2s refused."""
import struct
import subprocess

import pytest

from imagecache import inspector
from imagecache.errors import UnsafeImage


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def test_raw_is_its_file_size(tmp_path):
    p = tmp_path / "r"
    p.write_bytes(b"\0" * 4096)
    assert inspector.detect(str(p)) == ("raw", 4096)


def test_qcow2_virtual_size(tmp_path):
    p = tmp_path / "q"
    qemu_img("create", "-f", "qcow2", str(p), "3M")
    assert inspector.detect(str(p)) == ("qcow2", 3 * 1024 * 1024)


def test_qcow2_with_backing_file_is_refused(tmp_path):
    base, top = tmp_path / "b", tmp_path / "t"
    base.write_bytes(b"\0" * 1024 * 1024)
    qemu_img("create", "-f", "qcow2", "-b", str(base), "-F", "raw", str(top))
    with pytest.raises(UnsafeImage, match="backing"):
        inspector.detect(str(top))


def test_qcow2_with_data_file_is_refused(tmp_path):
    p = tmp_path / "d"
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={tmp_path}/raw", str(p), "1M")
    with pytest.raises(UnsafeImage, match="data file"):
        inspector.detect(str(p))


def test_truncated_and_odd_versions_are_refused(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"QFI\xfb" + struct.pack(">I", 9))
    with pytest.raises(UnsafeImage):
        inspector.detect(str(p))
