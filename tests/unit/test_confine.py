"""What the agent may hand libvirt (virt.libvirt.confine, pure): every
domain the builder makes passes, whatever the image properties and the
payload say, and nothing with a host block device, a filesystem
pass-through, qemu:commandline or a file outside instances_path does."""
import dataclasses

import pytest
from lxml import etree

from tests.unit.test_builder import DEFAULTS, INST
from virt import errors
from virt.driver import VolumeDisk
from virt.libvirt import builder, confine

ROOT = "/srv/instances"
ALLOWED = confine.Allowed(ROOT, frozenset({DEFAULTS.uefi[0], DEFAULTS.uefi[1],
                                           DEFAULTS.uefi_secure[0], DEFAULTS.uefi_secure[1]}))
DIR = f"{ROOT}/{INST.uuid}"
DISKS = [builder.GuestDisk("disk", f"{DIR}/disk", "qcow2"),
         builder.GuestDisk("disk.local", f"{DIR}/disk.local", "qcow2")]
VIFS = [{"address": "fa:16:3e:00:00:01", "bridge": "brcanet1", "devname": "tap0123456789ab",
         "mtu": 1450}]


def build(props=None, inst=INST, **kw):
    return builder.build_domain(
        inst, {"properties": props or {}}, DISKS, VIFS,
        builder.BootFiles(f"{ROOT}/_base/k", f"{ROOT}/_base/r"), f"{DIR}/console.log",
        DEFAULTS, config_drive=f"{DIR}/disk.config", serial_listen=("127.0.0.1", 10001),
        nvram=f"{DIR}/nvram.fd", vnc_password="pw", **kw).to_xml()


@pytest.mark.parametrize("props", [
    {},
    {"hw_disk_bus": "sata"},
    {"hw_qemu_guest_agent": "yes", "hw_video_model": "virtio"},
    {"hw_tpm_version": "2.0", "hw_tpm_model": "tpm-crb"},
    {"hw_firmware_type": "uefi"},
    {"hw_firmware_type": "uefi", "os_secure_boot": "required", "hw_machine_type": "q35"},
])
def test_what_the_builder_makes_passes(props):
    assert confine.domain_problems(build(props), ALLOWED) == []


def test_volumes_pass_over_iscsi_and_rbd():
    vols = (VolumeDisk(volume_id="5b1d7a3e-2c4f-4e8a-9b6d-1f2e3d4c5b6a", device="vdd",
                       protocol="iscsi", name="iqn.2024-01.tb:vol1/1",
                       hosts=(("10.0.0.1", 3260),)),
            VolumeDisk(volume_id="0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55", device="vde",
                       protocol="rbd", name="volumes/data", hosts=(("10.0.0.1", 6789),)))
    assert confine.domain_problems(build(inst=dataclasses.replace(INST, volumes=vols)),
                                   ALLOWED) == []
    for v in vols:
        assert confine.device_problems(builder.build_volume_disk(v).to_xml(), ALLOWED) == []


@pytest.mark.parametrize("prop,value", [
    ("os_command_line", "x</cmdline></os><devices><filesystem type='mount'>"
                        "<source dir='/'/><target dir='r'/></filesystem></devices><os><cmdline>"),
    ("hw_disk_bus", "virtio'/><source dev='/dev/vda'/><target bus='"),
    ("hw_video_model", "vga\"/></video><hostdev mode='subsystem'/><video><model type=\""),
    ("hw_machine_type", "pc'/><qemu:commandline xmlns:qemu='http://libvirt.org/schemas/"
                        "domain/qemu/1.0'><qemu:arg value='-x'/></qemu:commandline>"),
])
def test_a_hostile_image_property_gets_nothing_in(prop, value):
    try:
        xml = build({prop: value})
    except errors.InvalidImageProperty:
        return                          # refused at the property: fine
    assert confine.domain_problems(xml, ALLOWED) == []
    root = etree.fromstring(xml.encode())
    assert not root.findall(".//filesystem") and not root.findall(".//hostdev")
    assert not [d for d in root.iter("disk") if d.find("source") is not None
                and d.find("source").get("dev")]


def test_a_hostile_display_name_and_metadata_stay_text():
    inst = dataclasses.replace(INST, display_name="w</name><devices><filesystem><source "
                                                  "dir='/'/></filesystem></devices><name>")
    xml = build(inst=inst)
    assert confine.domain_problems(xml, ALLOWED) == []
    assert not etree.fromstring(xml.encode()).findall(".//filesystem")


def _with(xml, where, snippet):
    root = etree.fromstring(xml.encode())
    parent = root.find(where)
    parent.append(etree.fromstring(snippet))
    return etree.tostring(root, encoding="unicode")


HOSTILE = {
    "the host's root passed through": ("devices", "<filesystem type='mount'><source "
                                       "dir='/'/><target dir='host'/></filesystem>"),
    "the host's disk as a block device": ("devices", "<disk type='block' device='disk'>"
                                          "<source dev='/dev/vda'/><target dev='vdz'/></disk>"),
    "a file outside instances_path": ("devices", "<disk type='file'><source "
                                      "file='/etc/shadow'/><target dev='vdz'/></disk>"),
    "a path that climbs out": ("devices", f"<disk type='file'><source file='{DIR}/../../../etc"
                                          "/shadow'/><target dev='vdz'/></disk>"),
    "a backing file outside": ("devices", f"<disk type='file'><source file='{DIR}/disk'/>"
                                          "<backingStore type='file'><source file='/dev/sda'/>"
                                          "</backingStore><target dev='vdz'/></disk>"),
    "a directory disk": ("devices", "<disk type='dir'><source dir='/'/><target dev='vdz'/>"
                                    "</disk>"),
    "a storage pool volume": ("devices", "<disk type='volume'><source pool='default' "
                                         "volume='x'/><target dev='vdz'/></disk>"),
    "an NBD export anywhere": ("devices", "<disk type='network'><source protocol='nbd' "
                                          "name='x'><host name='10.250.0.1'/></source>"
                                          "<target dev='vdz'/></disk>"),
    "a host PCI device": ("devices", "<hostdev mode='subsystem' type='pci'/>"),
    "a USB redirection": ("devices", "<redirdev bus='usb' type='tcp'/>"),
    "shared memory": ("devices", "<shmem name='x'/>"),
    "a host serial device": ("devices", "<serial type='dev'><source path='/dev/ttyS0'/>"
                                        "</serial>"),
    "a serial log outside": ("devices", "<serial type='pty'><log file='/etc/cron.d/x'/>"
                                        "</serial>"),
    "a serial pipe": ("devices", "<serial type='pipe'><source path='/tmp/x'/></serial>"),
    "an ethernet NIC with a script": ("devices", "<interface type='ethernet'><script "
                                                 "path='/bin/sh'/></interface>"),
    "a NIC on a host bridge": ("devices", "<interface type='bridge'><source "
                                          "bridge='br-mgmt'/></interface>"),
    "a direct (macvtap) NIC": ("devices", "<interface type='direct'><source dev='eth0' "
                                          "mode='bridge'/></interface>"),
    "a TPM passed through": ("devices", "<tpm model='tpm-tis'><backend type='passthrough'>"
                                        "<device path='/dev/tpm0'/></backend></tpm>"),
    "an RNG on a host device": ("devices", "<rng model='virtio'><backend model='random'>"
                                           "/dev/mem</backend></rng>"),
    "another emulator": ("devices", "<emulator>/bin/sh</emulator>"),
    "spice graphics": ("devices", "<graphics type='spice'/>"),
    "qemu:commandline": (".", "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/"
                              "domain/qemu/1.0'><qemu:arg value='-drive'/></qemu:commandline>"),
    "a static root label": (".", "<seclabel type='static' model='dac'><label>0:0</label>"
                                 "</seclabel>"),
    "the host's SMBIOS": ("os", "<smbios mode='host'/>"),
    "a kernel outside instances_path": ("os", "<kernel>/boot/vmlinuz</kernel>"),
    "firmware not configured": ("os", "<loader readonly='yes' type='pflash'>/tmp/evil.fd"
                                      "</loader>"),
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_domain_stepping_outside_is_refused(what):
    where, snippet = HOSTILE[what]
    xml = _with(build(), where, snippet)
    with pytest.raises(errors.UnsafeDomain, match="refused to define"):
        confine.check_domain(xml, ALLOWED)


@pytest.mark.parametrize("what", [w for w in sorted(HOSTILE) if HOSTILE[w][0] == "devices"])
def test_a_device_stepping_outside_is_not_attached(what):
    with pytest.raises(errors.UnsafeDomain, match="refused to attach"):
        confine.check_device(HOSTILE[what][1], ALLOWED)


def test_the_agents_own_metadata_namespace_is_fine_and_nothing_else_is():
    xml = build()
    assert "urn:compute-agent" in xml and confine.domain_problems(xml, ALLOWED) == []
    other = _with(xml, "devices", "<x:thing xmlns:x='urn:other'/>")
    assert confine.domain_problems(other, ALLOWED)
