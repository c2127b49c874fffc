"""The destination XML of a live migration: every host path swapped,
everything else (device addresses the guest sees) kept."""
from virt.libvirt import migration

SOURCE = """<domain type='qemu'><name>instance-u</name><uuid>u</uuid>
<os><type>hvm</type><kernel>/a/_base/k</kernel><initrd>/a/_base/r</initrd></os>
<devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='/a/u/disk'/><target dev='vda' bus='virtio'/>
<address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>
<serial type='file'><source path='/a/u/console.log' append='on'/><target port='0'/></serial>
</devices></domain>"""


def test_every_host_path_is_swapped_and_the_rest_kept():
    out = migration.rewrite_for_destination(SOURCE, {"/a/u": "/b/u", "/a/_base/k": "/b/_base/k9",
                                                     "/a/_base/r": "/b/_base/r9"})
    assert "<kernel>/b/_base/k9</kernel>" in out and "<initrd>/b/_base/r9</initrd>" in out
    assert "file=\"/b/u/disk\"" in out.replace("'", '"')
    assert "/b/u/console.log" in out and "/a/" not in out
    assert "slot=\"0x04\"" in out.replace("'", '"')          # the guest's PCI layout stays


def test_prefix_match_is_by_whole_directory():
    out = migration.rewrite_for_destination(SOURCE, {"/a/u": "/b/u", "/a/u/dis": "/x"})
    assert "/b/u/disk" in out
    assert migration._swap("/a/uu/disk", {"/a/u": "/b/u"}) == "/a/uu/disk"
