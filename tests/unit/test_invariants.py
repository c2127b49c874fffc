"""The chaos invariants' decisions (tests.harness.invariants), each shown
failing on what a broken build leaves, and passing on what a good one
does (pure: consoles, samples and records as plain data)."""
from tests.harness import invariants as inv
from tests.harness.guest import BOOT_MARKER


def console(*boots, up=0.0):
    """A console log: per boot, its disk-tick (or None) and its ticks (tick
    n at uptime up + n)."""
    out = []
    for disk_tick, ticks in boots:
        out.append(BOOT_MARKER)
        if disk_tick is not None:
            out.append(f"TB: disk-tick={disk_tick}")
        out += [f"TB: tick {n} up={up + n:.2f} nics=1" for n in ticks]
    return "\n".join(out) + "\n"


def test_a_guest_rebooted_onto_a_fresh_disk_loses_its_ticks():
    """Before, the baseline was the tick at boot (2) and any later tick
    above it passed, so a guest that came back on a fresh disk (ticks 1,
    2, 3 ... again) passed; now the baseline is the last tick printed at
    the kill, and any boot that is not the one that printed it must read
    it from its disk."""
    at_kill = console((None, range(1, 9)))                 # tick 8 at up=8.00
    before, up = inv.last_tick(at_kill)
    assert (before, up) == (8, "8.00")
    fresh = at_kill + console((None, range(1, 12)), up=0.5)
    assert "without its ticks" in inv.ticks_verdict(fresh, before, up)
    # the console made anew (one boot in it): still a new boot, still judged
    assert "without its ticks" in inv.ticks_verdict(console((None, range(1, 12)), up=0.5),
                                                    before, up)
    stale = at_kill + console((3, [1, 2]), up=0.5)
    assert "disk-tick 3 < 7" in inv.ticks_verdict(stale, before, up)
    kept = at_kill + console((7, [1]), up=0.5)
    assert inv.ticks_verdict(kept, before, up) is None
    assert inv.ticks_verdict(at_kill + BOOT_MARKER + "\n", before, up) == inv.WAIT
    # the same boot goes on: it must tick past 8
    assert inv.ticks_verdict(at_kill, before, up) == inv.WAIT
    assert inv.ticks_verdict(console((None, range(1, 10))), before, up) is None
    # live-migrated (no boot in the new host's console): later ticks of that life
    moved = "\n".join(f"TB: tick {n} up={n:.2f} nics=1" for n in (9, 10)) + "\n"
    assert inv.ticks_verdict(moved, before, up) is None
    assert inv.ticks_verdict("TB: tick 9 up=3.00 nics=1\n", before, up) == inv.WAIT


def test_two_owners_is_seen_between_samples():
    moved = [(0, "hA", True), (1, "hB", False), (2, "hA", False), (3, "hB", True),
             (4, "hA", False), (5, "hB", True)]
    assert inv.two_owners(moved) is None
    both = [(0, "hA", True), (1, "hB", False), (2, "hA", True), (3, "hB", True),
            (4, "hA", True), (5, "hB", True)]
    assert "ran on hB and on hA at once (t=3.0)" == inv.two_owners(both)
    # a switch-over between two samples is not two owners
    switch = [(0, "hA", True), (1, "hB", True), (2, "hA", False)]
    assert inv.two_owners(switch) is None


def test_at_most_one_live_record_and_every_migration_final():
    active = {"vm_state": "active", "live": True}
    assert inv.record_problems({"hA": active, "hB": None}) == []
    assert inv.record_problems({"hA": dict(active, vm_state="resized"),
                                "hB": dict(active, vm_state="resized")}) == []
    assert inv.record_problems({"hA": active, "hB": dict(active)})      # two owners on record
    assert inv.record_problems({"hA": active, "hB": dict(active, live=False)}) == []
    rows = {"hA": [{"id": "m1", "status": "completed"}],
            "hB": [{"id": "m1", "status": "migrating"}]}
    assert inv.migration_problems(rows, resized=False) == ["hB: migration m1 is migrating"]
    assert inv.migration_problems({"hB": [{"id": "m2", "status": "finished"}]}, True) == []
    assert inv.migration_problems({"hB": [{"id": "m2", "status": "finished"}]}, False)
