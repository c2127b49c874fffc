"""A corpus of hostile images, built with qemu-img and by hand.  Each
builder writes a file and returns (declared disk_format, words the refusal
must contain)."""
import struct
import subprocess


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def qcow2_backing_host_file(path):
    qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", path, "1M")
    return "qcow2", "backing"


def qcow2_external_data_file(path):
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={path}.data", path, "1M")
    return "qcow2", "data_file"


def vmdk_extent_is_host_path(path):
    """A monolithicSparse VMDK whose embedded descriptor's extent names
    /etc/passwd-like host path (same length, so the layout stays valid)."""
    qemu_img("create", "-f", "vmdk", "-o", "subformat=monolithicSparse", path, "1M")
    data = bytearray(open(path, "rb").read())
    name = path.rsplit("/", 1)[-1].encode()
    evil = b"/" + b"x" * (len(name) - 1)
    at = data.index(b'"' + name + b'"')
    data[at + 1:at + 1 + len(name)] = evil
    open(path, "wb").write(bytes(data))
    return "vmdk", "extent"


def vmdk_flat_descriptor(path):
    """A bare text descriptor pointing at a host file."""
    open(path, "w").write('# Disk DescriptorFile\nversion=1\nCID=fffffffe\n'
                          'parentCID=ffffffff\ncreateType="monolithicFlat"\n\n'
                          'RW 2048 FLAT "/etc/shadow" 0\n')
    return "vmdk", "vmdk"


def qcow2_uploaded_as_raw(path):
    qemu_img("create", "-f", "qcow2", path, "1M")
    return "raw", "claims disk_format raw but its data is qcow2"


def raw_uploaded_as_qcow2(path):
    open(path, "wb").write(b"\0" * 65536)
    return "qcow2", "claims disk_format qcow2 but its data is raw"


def qcow2_larger_than_flavor(path):
    """A few hundred KiB of qcow2 that would inflate to 100 GiB of raw."""
    qemu_img("create", "-f", "qcow2", path, "100G")
    return "qcow2", "exceeds"


def truncated_qcow2(path):
    qemu_img("create", "-f", "qcow2", path, "1M")
    data = open(path, "rb").read()[:40]
    open(path, "wb").write(data)
    return "qcow2", "qcow2"


def qcow2_unknown_incompatible_feature(path):
    qemu_img("create", "-f", "qcow2", path, "1M")
    data = bytearray(open(path, "rb").read())
    data[72:80] = struct.pack(">Q", 1 << 40)
    open(path, "wb").write(bytes(data))
    return "qcow2", "features"


def qed_image(path):
    qemu_img("create", "-f", "qed", path, "1M")
    return "qed", "QED"


def qcow2_tables_past_the_end(path):
    """A well-formed header whose tables point past the end of the file
    (a qcow2 cut short): only qemu-img check sees it."""
    qemu_img("create", "-f", "qcow2", path, "64M")
    subprocess.run(["qemu-io", "-c", "write -P 0xab 0 8M", path], check=True,
                   capture_output=True)
    with open(path, "r+b") as f:
        f.truncate(2 * 1024 * 1024)
    return "qcow2", "corrupt"


HOSTILE = [qcow2_backing_host_file, qcow2_external_data_file, vmdk_extent_is_host_path,
           vmdk_flat_descriptor, qcow2_uploaded_as_raw, raw_uploaded_as_qcow2,
           qcow2_larger_than_flavor, truncated_qcow2, qcow2_unknown_incompatible_feature,
           qed_image]
FLAVOR_ROOT_BYTES = 1024 ** 3
# refused by `qemu-img check` (under the untrusted limits), after the headers passed
CORRUPT = [qcow2_tables_past_the_end]
