"""The destination XML of a live migration: every host path swapped,
everything else (device addresses the guest sees) kept; the CPU a
destination is asked to provide."""
import pytest

from virt import errors
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


def domain_with(cpu):
    return f"<domain type='qemu'><name>x</name>{cpu}</domain>"


def test_cpu_to_compare_sends_a_named_model_with_its_features():
    cpu = ("<cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model>"
           "<feature policy='require' name='sse4.2'/></cpu>")
    out = migration.cpu_to_compare(domain_with(cpu), host_cpu=lambda: 1 / 0)
    assert "<model fallback=\"forbid\">qemu64</model>" in out
    assert "name=\"sse4.2\"" in out and out.startswith("<cpu")


def test_cpu_to_compare_host_passthrough_sends_the_host_cpu():
    out = migration.cpu_to_compare(domain_with("<cpu mode='host-passthrough'/>"),
                                   host_cpu=lambda: "<cpu><model>EPYC</model></cpu>")
    assert out == "<cpu><model>EPYC</model></cpu>"


def test_cpu_to_compare_default_cpu_sends_nothing():
    assert migration.cpu_to_compare(domain_with(""), host_cpu=lambda: 1 / 0) is None
    assert migration.cpu_to_compare(domain_with("<cpu mode='custom' match='exact'/>"),
                                    host_cpu=lambda: 1 / 0) is None


@pytest.mark.parametrize("text", [
    "<cpu><model>qemu64",                                           # unreadable
    "<domain><cpu/></domain>",                                      # another root
    '<!DOCTYPE cpu [<!ENTITY x SYSTEM "file:///etc/passwd">]><cpu><model>&x;</model></cpu>',
])
def test_clean_cpu_xml_refuses_anything_but_one_cpu_element(text):
    with pytest.raises(errors.CPUIncompatible):
        migration.clean_cpu_xml(text)


def test_clean_cpu_xml_keeps_a_cpu_element():
    text = "<cpu mode='custom'><model>qemu64</model><feature name='x' policy='require'/></cpu>"
    out = migration.clean_cpu_xml(text)
    assert out.startswith("<cpu") and "qemu64" in out and 'name="x"' in out
