"""The domain XML built from an instance record and image properties."""
import pytest

from virt.driver import Flavor, Instance
from virt.errors import InvalidImageProperty
from virt.libvirt import builder

INST = Instance(uuid="0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55", display_name="web",
                flavor=Flavor(vcpus=2, memory_mb=256, root_gb=1, name="m1"), image_id="img-1")
DISKS = [builder.GuestDisk("disk", "/i/disk", "qcow2"),
         builder.GuestDisk("disk.local", "/i/disk.local", "qcow2")]
META = {"properties": {}}


NO_BOOT_FILES = builder.BootFiles()
DEFAULTS = builder.HostSettings()


def build(image_meta=META, boot=NO_BOOT_FILES, settings=DEFAULTS, vifs=()):
    return builder.build_domain(INST, image_meta, DISKS, list(vifs), boot, "/i/console.log",
                                settings)


def test_identity_and_size_come_from_the_record():
    dom = build()
    assert dom.name == "instance-" + INST.uuid and dom.uuid == INST.uuid
    assert dom.type == "qemu"
    assert dom.memory_kib == 256 * 1024 and dom.vcpus == 2
    meta = dom.metadata.instance
    assert (meta.name, meta.image_id, meta.flavor.memory_mb) == ("web", "img-1", 256)


def test_disks_are_virtio_in_order_with_cache_mode():
    disks = list(build().devices.disks)
    assert [(d.target_dev, d.target_bus, d.source_file, d.driver_type, d.driver_cache)
            for d in disks] == [("vda", "virtio", "/i/disk", "qcow2", "none"),
                                ("vdb", "virtio", "/i/disk.local", "qcow2", "none")]


def test_hw_disk_bus_property_changes_bus_and_names():
    disks = list(build({"properties": {"hw_disk_bus": "sata"}}).devices.disks)
    assert [(d.target_dev, d.target_bus) for d in disks] == [("sda", "sata"), ("sdb", "sata")]


@pytest.mark.parametrize("prop,value", [("hw_disk_bus", "floppy"), ("hw_vif_model", "x"),
                                        ("hw_video_model", "<evil/>"),
                                        ("hw_machine_type", "pc'/><x")])
def test_bad_image_properties_are_refused(prop, value):
    with pytest.raises(InvalidImageProperty):
        build({"properties": {prop: value}})


def test_direct_kernel_boot_uses_os_command_line():
    dom = build({"properties": {"os_command_line": "console=ttyS0 tb.name=x"}},
                boot=builder.BootFiles("/b/k", "/b/r"))
    assert (dom.os.kernel, dom.os.initrd, dom.os.cmdline) == ("/b/k", "/b/r",
                                                              "console=ttyS0 tb.name=x")
    assert dom.os.boot_dev is None


def test_disk_boot_without_kernel():
    dom = build()
    assert dom.os.kernel is None and dom.os.boot_dev == "hd"
    assert dom.os.machine == "pc"


def test_cpu_mode_follows_virt_type_and_config():
    assert build().cpu is None
    assert build(settings=builder.HostSettings(virt_type="kvm")).cpu.mode == "host-model"
    cpu = build(settings=builder.HostSettings(cpu_mode="custom", cpu_model="Westmere")).cpu
    assert (cpu.mode, cpu.model) == ("custom", "Westmere")


def test_console_serials_vnc_video_balloon():
    devices = build().devices
    assert [(s.type, s.target_port, s.source_path) for s in devices.serials] == [
        ("file", 0, "/i/console.log"), ("pty", 1, None)]
    assert devices.graphics[0].type == "vnc" and devices.graphics[0].listen == "127.0.0.1"
    assert devices.videos[0].model == "vga"
    assert devices.memballoon.model == "virtio"


def test_interfaces_from_vifs():
    vif = {"address": "52:54:00:12:34:56", "bridge": "br100", "devname": "tap1", "mtu": 1450}
    (iface,) = build(vifs=[vif], image_meta={"properties": {"hw_vif_model": "e1000"}}
                     ).devices.interfaces
    assert (iface.mac, iface.source_bridge, iface.target_dev, iface.model, iface.mtu) == (
        "52:54:00:12:34:56", "br100", "tap1", "e1000", 1450)


def test_smbios_says_openstack_compute_and_the_instance_uuid():
    dom = build()
    assert dom.os.smbios_mode == "sysinfo" and dom.sysinfo.type == "smbios"
    entries = {e.name: e.value for e in dom.sysinfo.system.entries}
    assert entries["product"] == "OpenStack Compute"      # cloud-init's OpenStack check
    assert entries["uuid"] == entries["serial"] == INST.uuid


def test_the_guest_agent_channel_only_when_the_image_asks():
    assert list(build().devices.channels) == []
    chans = list(build({"properties": {"hw_qemu_guest_agent": "yes"}}).devices.channels)
    assert [(c.type, c.source_mode, c.target_type, c.target_name) for c in chans] == [
        ("unix", "bind", "virtio", "org.qemu.guest_agent.0")]
    with pytest.raises(InvalidImageProperty):
        build({"properties": {"hw_qemu_guest_agent": "maybe"}})


def test_a_tpm_only_when_the_image_asks_for_2_0():
    assert not build().devices.tpms
    dom = build({"properties": {"hw_tpm_version": "2.0"}})
    tpm = dom.devices.tpms[0]
    assert (tpm.model, tpm.backend_type, tpm.backend_version) == ("tpm-tis", "emulator", "2.0")
    crb = build({"properties": {"hw_tpm_version": "2.0", "hw_tpm_model": "tpm-crb"}})
    assert crb.devices.tpms[0].model == "tpm-crb"
    for bad in ({"hw_tpm_version": "1.2"}, {"hw_tpm_version": "2.0", "hw_tpm_model": "spapr"}):
        with pytest.raises(InvalidImageProperty):
            build({"properties": bad})


def test_uefi_boots_ovmf_with_its_own_variable_store():
    assert build().os.loader is None
    dom = builder.build_domain(INST, {"properties": {"hw_firmware_type": "uefi"}}, DISKS, [],
                               NO_BOOT_FILES, "/i/console.log", DEFAULTS, nvram="/i/nvram.fd")
    os_el = dom.os
    assert (os_el.loader, os_el.loader_readonly, os_el.loader_type, os_el.loader_secure) == \
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", True, "pflash", False)
    assert (os_el.nvram, os_el.nvram_template) == ("/i/nvram.fd",
                                                   "/usr/share/OVMF/OVMF_VARS_4M.fd")
    assert not dom.features.smm
    secure = builder.build_domain(
        INST, {"properties": {"hw_firmware_type": "uefi", "os_secure_boot": "required",
                              "hw_machine_type": "q35"}},
        DISKS, [], NO_BOOT_FILES, "/i/console.log", DEFAULTS, nvram="/i/nvram.fd")
    assert secure.os.loader.endswith("secboot.fd") and secure.os.loader_secure
    assert secure.os.nvram_template.endswith("OVMF_VARS_4M.ms.fd") and secure.features.smm
    for bad in ({"os_secure_boot": "required"},                      # no UEFI
                {"hw_firmware_type": "uefi", "os_secure_boot": "required"},   # not q35
                {"hw_firmware_type": "coreboot"}):
        with pytest.raises(InvalidImageProperty):
            build({"properties": bad})
    import dataclasses
    small = dataclasses.replace(INST, flavor=dataclasses.replace(INST.flavor, memory_mb=128))
    with pytest.raises(InvalidImageProperty, match="at least 256 MiB"):
        builder.build_domain(small, {"properties": {"hw_firmware_type": "uefi"}}, DISKS, [],
                             NO_BOOT_FILES, "/i/console.log", DEFAULTS, nvram="/i/nvram.fd")


def test_a_boot_volume_is_the_first_disk_and_the_file_disks_follow_it():
    import dataclasses

    from virt.driver import VolumeDisk
    boot = VolumeDisk(volume_id="5b1d7a3e-2c4f-4e8a-9b6d-1f2e3d4c5b6a", device="vda",
                      protocol="rbd", name="volumes/boot", hosts=(("10.0.0.1", 6789),))
    data = VolumeDisk(volume_id="0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55", device="vdd",
                      protocol="rbd", name="volumes/data", hosts=(("10.0.0.1", 6789),))
    inst = dataclasses.replace(INST, volumes=(data, boot))
    assert inst.boot_volume is boot and INST.boot_volume is None
    dom = builder.build_domain(inst, META, DISKS[1:], [], NO_BOOT_FILES, "/i/console.log",
                               DEFAULTS)
    assert [(d.target_dev, d.type, d.source_file or d.source_name)
            for d in dom.devices.disks] == [("vda", "network", "volumes/boot"),
                                            ("vdb", "file", "/i/disk.local"),
                                            ("vdd", "network", "volumes/data")]
    assert dom.os.boot_dev == "hd"


def test_rbd_disks_are_network_disks_of_the_hosts_pool_with_its_secret():
    from virt.libvirt.rbd_images import RbdSource
    source = RbdSource("vms", (("10.0.0.1", 6789), ("10.0.0.2", 6789)), "compute",
                       "6b1f0d3e-1c2b-4a5d-8e7f-9a0b1c2d3e4f")
    disks = [builder.GuestDisk("disk", f"vms/{INST.uuid}_disk", "rbd"),
             builder.GuestDisk("disk.swap", "/i/disk.swap", "qcow2")]
    dom = builder.build_domain(INST, META, disks, [], NO_BOOT_FILES, "/i/console.log",
                               builder.HostSettings(rbd=source))
    root, swap = dom.devices.disks
    assert (root.type, root.source_protocol, root.source_name, root.target_dev,
            root.driver_type, root.driver_cache) == ("network", "rbd", f"vms/{INST.uuid}_disk",
                                                     "vda", "raw", "none")
    assert [(h.name, h.port) for h in root.source_hosts] == [("10.0.0.1", "6789"),
                                                             ("10.0.0.2", "6789")]
    assert (root.auth_username, root.auth_secret_type, root.auth_secret_uuid) == \
        ("compute", "ceph", source.secret_uuid)
    assert root.serial is None and (swap.type, swap.target_dev) == ("file", "vdb")
    with pytest.raises(ValueError, match="no rbd source"):
        builder.build_domain(INST, META, disks, [], NO_BOOT_FILES, "/i/console.log", DEFAULTS)
