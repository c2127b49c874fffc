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


def test_downtime_rises_in_steps_to_the_maximum():
    steps = migration.downtime_steps(500, 10, 75, 0.125)     # a 128 MiB guest: 1 GiB minimum
    assert steps[0] == (0, 50) and steps[-1] == (750, 500) and len(steps) == 11
    assert [d for _, d in steps] == sorted(d for _, d in steps)
    assert migration.downtime_steps(400, 4, 10, 2)[1] == (20, 175)


def test_block_migration_flags():
    import libvirt
    f = migration.flags(block=True)
    assert f & libvirt.VIR_MIGRATE_NON_SHARED_INC and f & libvirt.VIR_MIGRATE_PEER2PEER
    assert not f & libvirt.VIR_MIGRATE_UNSAFE            # never unless configured
    assert migration.flags(False, unsafe=True) & libvirt.VIR_MIGRATE_UNSAFE
