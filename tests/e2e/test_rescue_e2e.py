"""Rescue and unrescue on a real guest: its init is broken from inside
(a hard reboot then stops at the broken init), rescue boots a rescue
image with the instance's disk attached second, the user repairs that
disk through the serial console, and unrescue boots the repaired disk,
which kept what was written before.  Everything typed goes through the
console proxy, as a user would."""
import os
import subprocess

import pytest

from compute.core import exception
from tests.harness import guest, serial
from tests.harness.agent import BIN, Agent

BROKEN = "TB: init broken by /tb-broken"


@pytest.fixture(scope="module")
def bed():
    a = Agent(extra_conf="[libvirt]\nserial_console = true\nserial_port_range = 10800:10899\n")
    a.start()
    a.upload_test_guest()
    a.start_console_proxy()
    own = a.upload_variant("console=ttyS0 quiet tb.name=res tb.shell=1")
    rescue = a.upload_variant("console=ttyS0 quiet tb.name=rescue tb.shell=1")
    yield a, own, rescue
    a.close()


def since_last_boot(console):
    return console.rsplit(guest.BOOT_MARKER, 1)[-1]


def test_rescue_repairs_a_broken_disk_and_unrescue_boots_it(bed):
    a, own, rescue = bed
    u = a.boot("res", image=own, wait_console=False)
    a.wait_console(u, lambda c: serial.SHELL_READY in c, "the shell")
    serial.run(a, u, "echo precious > /mnt/precious && touch /mnt/tb-broken && sync && "
                     "echo TB-BROKE-$((1+1))", "TB-BROKE-2")
    a.api.reboot_instance(a.host, u, "HARD")
    a.wait_settled(u)
    a.wait_console(u, lambda c: BROKEN in since_last_boot(c), "the broken init")
    assert serial.SHELL_READY not in since_last_boot(a.console(u))

    with pytest.raises(exception.InvalidRequest, match="rescue image no-such-image"):
        a.api.rescue_instance(a.host, u, "no-such-image")
    assert a.find(u)["vm_state"] == "active"
    with pytest.raises(exception.InstanceInvalidState):
        a.api.unrescue_instance(a.host, u)

    answer = a.api.rescue_instance(a.host, u, rescue)
    assert answer["rescue_image_ref"] == rescue
    rec = a.wait_settled(u)
    assert rec["vm_state"] == "rescued", rec
    a.wait_console(u, lambda c: "name=rescue" in c and serial.SHELL_READY in
                   since_last_boot(c), "the rescue system's shell")
    boot = since_last_boot(a.console(u))
    assert "TB: disks=vda,vdb" in boot            # the rescue disk, then the instance's
    assert os.path.exists(os.path.join(a.instances_path, u, "disk.rescue"))
    out = serial.run(a, u, "mkdir -p /fix && mount /dev/vdb /fix && cat /fix/precious && "
                           "rm /fix/tb-broken && umount /fix && echo TB-FIXED-$((3+4))",
                     "TB-FIXED-7")
    assert "precious" in out
    with pytest.raises(exception.InstanceInvalidState):
        a.api.reboot_instance(a.host, u, "HARD")      # only unrescue leaves RESCUED

    run = subprocess.run([os.path.join(BIN, "computectl"), "--config-file", a.config_file,
                          "unrescue", "--host", a.host, u],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert a.find(u)["vm_state"] == "active"
    a.wait_console(u, lambda c: "name=res " in since_last_boot(c)
                   and serial.SHELL_READY in since_last_boot(c), "the repaired system")
    boot = since_last_boot(a.console(u))
    assert BROKEN not in boot and "TB: disks=vda" in boot and "vdb" not in boot
    assert "TB: bootcount=2" in boot         # its own disk: the first boot counted 1
    assert "precious" in serial.run(a, u, "cat /mnt/precious; echo TB-READ-$((1+8))",
                                    "TB-READ-9")
    assert not os.path.exists(os.path.join(a.instances_path, u, "disk.rescue"))
    actions = [x["action"] for x in a.api.list_instance_actions(a.host, u)]
    assert "rescue" in actions and "unrescue" in actions


def test_rescue_from_stopped_with_the_instances_own_image(bed):
    a, own, _ = bed
    u = a.boot("res", image=own, wait_console=False)
    a.wait_console(u, lambda c: serial.SHELL_READY in c, "the shell")
    a.api.stop_instance(a.host, u)
    a.wait_state(u, {"stopped"})
    assert a.api.rescue_instance(a.host, u)["rescue_image_ref"] == own
    assert a.wait_settled(u)["vm_state"] == "rescued"
    a.wait_console(u, lambda c: "TB: disks=vda,vdb" in since_last_boot(c), "the rescue boot")
    a.api.terminate_instance(a.host, u)                  # delete works from RESCUED
    a.wait_state(u, {"deleted"})
    assert not os.path.exists(os.path.join(a.instances_path, u))
