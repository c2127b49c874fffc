"""What must hold on a test bed after any crash, once the agents are back:
the instance settles (done, or ERROR with a fault); no domain without a
record and no running record without its domain; nothing at all of an
offloaded instance on its host; the same guest never
runs on two hosts; no files left but the instances' own; and the ticks the
guest synced before the crash are on its disk."""
import os
import re

from tests.harness import guest
from tests.harness.agent import wait_until

RUNNING = ("active", "paused", "rescued")


def records(bed, uuid):
    """{host name: the host's record of uuid (deleted ones too) or None}."""
    return {name: h.agent.find(uuid) for name, h in bed.hosts.items()}


def wait_settled(bed, uuid, timeout=240):
    """Wait until no host's record of uuid is in a task state; the records."""
    def settled():
        recs = records(bed, uuid)
        return all(r is None or r["task_state"] is None for r in recs.values()) and recs
    return wait_until(settled, timeout, 0.5, f"{uuid} to settle on every host")


def domains(host, active_only=False):
    names = host.virsh("list", "--name", *([] if active_only else ["--all"])).split()
    return {n[len("instance-"):] for n in names if n.startswith("instance-")}


def live(rec, host_agent):
    return rec is not None and rec["vm_state"] != "deleted" and rec["host"] == host_agent.host


def check(bed, uuid):
    """Assert the invariants for uuid on every host; the host the guest
    runs on (None if it runs nowhere)."""
    recs = wait_settled(bed, uuid)
    running = [name for name, h in bed.hosts.items() if uuid in domains(h, active_only=True)]
    assert len(running) <= 1, f"{uuid} runs on {running}"
    for name, h in bed.hosts.items():
        rec = recs[name]
        mine = live(rec, h.agent)
        if mine and rec["vm_state"] == "error":
            assert rec["fault"], f"{name}: ERROR without a fault"
        if uuid in domains(h):
            assert mine, f"{name}: domain of {uuid} without a record here ({rec})"
        if mine and rec["vm_state"] in RUNNING:
            assert name in running, f"{name}: record {rec['vm_state']} but no guest runs"
        offloaded = mine and rec["vm_state"] == "shelved_offloaded"
        if offloaded:
            assert uuid not in domains(h), f"{name}: offloaded {uuid} still has a domain"
        _check_files(h, uuid, rec if mine and not offloaded else None)
    return running[0] if running else None


def _check_files(host, uuid, rec):
    """Only the instance's own files, and only where it lives: its
    directory, and the copy a resize sets aside while it is resized."""
    path = host.agent.instances_path
    names = set(os.listdir(path)) if os.path.isdir(path) else set()
    assert not {n for n in names if n.startswith(".")}, f"{host.name}: temp files {names}"
    has_dir, aside = uuid in names, uuid + "_resize" in names
    if rec is None:
        assert not has_dir, f"{host.name}: files of {uuid} without a record here"
    if aside:
        assert rec is not None and rec["vm_state"] == "resized", \
            f"{host.name}: {uuid}_resize left without a resize to confirm"


def ticks_kept(host, uuid, before):
    """The guest on host kept the ticks it synced before: it booted again
    and read a disk-tick of at least before - 1 (a tick is printed before
    it is written), or it did not and ticks on past before."""
    def seen():
        console = host.agent.console(uuid)
        tail = console.rsplit(guest.BOOT_MARKER, 1)[-1]
        found = re.findall(r"^TB: disk-tick=(\d+)", tail, re.M)
        ticks = [int(n) for n in re.findall(r"^TB: tick (\d+) ", tail, re.M)]
        if found and ticks:             # booted again, from its disk
            return ("disk", int(found[0]))
        if not found and ticks and ticks[-1] > before:
            return ("ran on", ticks[-1])
        return None
    how, tick = wait_until(seen, 120, 0.5, f"{uuid}: ticks after the crash")
    if how == "disk":
        assert tick >= before - 1, f"disk-tick {tick} < {before - 1}"
