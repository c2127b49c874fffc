"""Image headers are read without qemu-img, and every image of the hostile
corpus is refused with a named reason; benign images pass."""
import hashlib
import os
import subprocess

import pytest

from imagecache import cache as cache_mod
from imagecache import inspector
from imagecache.errors import UnsafeImage
from tests.unit import hostile_images as H


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.mark.parametrize("build", H.HOSTILE, ids=[b.__name__ for b in H.HOSTILE])
def test_hostile_image_is_refused_with_a_named_reason(tmp_path, build):
    path = str(tmp_path / "img")
    declared, reason = build(path)
    with pytest.raises(UnsafeImage) as e:
        inspector.inspect(path, declared, max_virtual_size=H.FLAVOR_ROOT_BYTES)
    assert reason.lower() in str(e.value).lower()


@pytest.mark.parametrize("fmt,opts", [("qcow2", []), ("vmdk", ["-o", "subformat=streamOptimized"]),
                                      ("vmdk", ["-o", "subformat=monolithicSparse"]),
                                      ("vpc", []), ("vhdx", []), ("vdi", [])])
def test_benign_images_pass_with_their_virtual_size(tmp_path, fmt, opts):
    path = str(tmp_path / "img")
    qemu_img("create", "-f", fmt, *opts, path, "64M")
    declared = {"vpc": "vhd"}.get(fmt, fmt)
    found, size = inspector.inspect(path, declared)
    assert found == declared and size >= 64 * 1024 * 1024
    assert inspector.qemu_format(found) == fmt


def test_raw_virtual_size_is_the_file_size(tmp_path):
    p = tmp_path / "r"
    p.write_bytes(b"\1" * 4096)
    assert inspector.inspect(str(p), "raw") == ("raw", 4096)


def test_vmdk_subformat_policy(tmp_path):
    path = str(tmp_path / "img")
    qemu_img("create", "-f", "vmdk", "-o", "subformat=streamOptimized", path, "1M")
    with pytest.raises(UnsafeImage, match="streamoptimized"):
        inspector.inspect(path, "vmdk", vmdk_allowed_types=("monolithicSparse",))


class FileClient:
    """Serves one file as an image, with correct hashes (no HTTP)."""

    def __init__(self, path, declared):
        self.path, self.declared = path, declared
        data = open(path, "rb").read()
        self.meta = {"id": "img", "status": "active", "disk_format": declared,
                     "size": len(data), "os_hash_algo": "sha512",
                     "os_hash_value": hashlib.sha512(data).hexdigest()}

    def show(self, image_id):
        return dict(self.meta)

    def download(self, image_id, fd, algorithm=None, limit=None):
        data = open(self.path, "rb").read()
        os.write(fd, data)
        return len(data), hashlib.new(algorithm, data).hexdigest() if algorithm else None


@pytest.mark.parametrize("build", H.HOSTILE, ids=[b.__name__ for b in H.HOSTILE])
def test_cache_refuses_hostile_image_before_any_qemu_img(tmp_path, monkeypatch, build):
    src = str(tmp_path / "src")
    declared, _ = build(src)

    def tripwire(*args):
        raise AssertionError(f"qemu-img ran on a hostile image: {args}")
    monkeypatch.setattr(cache_mod.qemu_img, "_run", tripwire)
    base_dir = tmp_path / "_base"
    cache = cache_mod.ImageCache(str(base_dir), FileClient(src, declared), str(tmp_path / "l"),
                                 reserve_mb=0)
    with pytest.raises(UnsafeImage):
        cache.fetch("img", max_virtual_size=H.FLAVOR_ROOT_BYTES)
    assert os.listdir(base_dir) == []


def test_replaced_cached_base_fails_its_recheck(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"\0" * 65536)
    cache = cache_mod.ImageCache(str(tmp_path / "_base"), FileClient(str(src), "raw"),
                                 str(tmp_path / "l"), reserve_mb=0)
    good = cache.fetch("img")
    assert good.downloaded and good.format == "raw"
    assert not cache.fetch("img").downloaded                     # a hit
    qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", "-u", good.path, "1M")
    with pytest.raises(UnsafeImage, match="re-check"):
        cache.fetch("img")


def test_no_room_is_refused_before_download(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"\0" * 4096)
    client = FileClient(str(src), "raw")
    client.meta["size"] = 1 << 39           # 512 GiB: under max_image_size_mb
    cache = cache_mod.ImageCache(str(tmp_path / "_base"), client, str(tmp_path / "l"))
    with pytest.raises(Exception, match="needs .* MiB"):
        cache.fetch("img")
    assert os.listdir(tmp_path / "_base") == []


def test_only_qemu_img_on_a_downloaded_image_runs_under_limits(tmp_path, monkeypatch):
    """Real qemu-img under an address-space limit too small to start its
    I/O threads: the download's convert dies, the agent's own does not."""
    from oslo_concurrency import processutils

    from imagecache import qemu_img
    src = str(tmp_path / "src.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", src, "16M"], check=True)
    monkeypatch.setitem(qemu_img.LIMITS, "address_space_mb", 16)
    with pytest.raises(processutils.ProcessExecutionError):
        qemu_img.convert(src, "qcow2", str(tmp_path / "dl.raw"), "raw", untrusted=True)
    qemu_img.convert(src, "qcow2", str(tmp_path / "own.qcow2"), "qcow2", force_share=True)
    assert os.path.exists(tmp_path / "own.qcow2")


def test_an_overlay_may_name_only_the_base_it_belongs_on(tmp_path):
    base = str(tmp_path / "0123abcd")
    qemu_img("create", "-f", "raw", base, "1M")
    overlay = str(tmp_path / "disk")
    qemu_img("create", "-f", "qcow2", "-b", base, "-F", "raw", overlay, "1M")
    assert inspector.qcow2_backing_file(overlay) == base
    # another host's directory, the same base: its name is what counts
    assert inspector.inspect(overlay, "qcow2", allowed_backing=("0123abcd",))[0] == "qcow2"
    with pytest.raises(UnsafeImage, match="backing_file: names .*0123abcd"):
        inspector.inspect(overlay, "qcow2")
    with pytest.raises(UnsafeImage, match="backing_file"):
        inspector.inspect(overlay, "qcow2", allowed_backing=("other",))
    H.qcow2_external_data_file(overlay + "2")
    with pytest.raises(UnsafeImage, match="data_file"):      # never, whatever is allowed
        inspector.inspect(overlay + "2", "qcow2", allowed_backing=("0123abcd",))


@pytest.mark.parametrize("build", H.CORRUPT, ids=[b.__name__ for b in H.CORRUPT])
def test_a_structurally_corrupt_image_is_refused_by_qemu_img_check(tmp_path, build):
    src = str(tmp_path / "src")
    declared, reason = build(src)
    assert inspector.inspect(src, declared)[0] == declared           # the headers pass
    cache = cache_mod.ImageCache(str(tmp_path / "_base"), FileClient(src, declared),
                                 str(tmp_path / "l"), reserve_mb=0)
    with pytest.raises(UnsafeImage, match=f"{reason}.*corruptions"):
        cache.fetch("img")
    assert os.listdir(tmp_path / "_base") == []


def test_a_kernel_with_a_boot_sector_is_a_boot_file_not_a_disk(tmp_path):
    """A bzImage starts with a legacy boot sector whose bytes read as a
    broken MBR: fine for a file QEMU loads as a kernel, refused as a disk;
    a disk image in disguise is refused as a kernel too."""
    path = tmp_path / "vmlinuz"
    sector = bytearray(4096)
    sector[446] = 0x12                      # "boot flag" of partition entry 0
    sector[510:512] = b"\x55\xaa"
    path.write_bytes(bytes(sector))
    assert inspector.inspect(str(path), "raw", boot_file=True) == ("raw", 4096)
    with pytest.raises(UnsafeImage, match="mbr"):
        inspector.inspect(str(path), "raw")
    qcow = str(tmp_path / "disk.qcow2")
    qemu_img("create", "-f", "qcow2", qcow, "1M")
    with pytest.raises(UnsafeImage, match="claims disk_format raw"):
        inspector.inspect(qcow, "raw", boot_file=True)
