"""The operation table and the crash points (pure)."""
import os
import re

from compute import faults, optable
from compute import states as s

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_task_state_belongs_to_a_row_and_every_row_settles():
    tasks = {v for k, v in vars(s).items() if k.isupper() and v not in (
        s.ACTIVE, s.BUILDING, s.STOPPED, s.PAUSED, s.SUSPENDED, s.DELETED, s.ERROR, s.RESIZED,
        s.RESCUED, s.SHELVED, s.SHELVED_OFFLOADED)}
    covered = {t for op in optable.ROWS for t in op.tasks}
    assert tasks == covered
    for op in optable.ROWS:
        if op.tasks:
            assert op.restart in (optable.RESUME, optable.CLEAN_UP, optable.SETTLE,
                                  optable.ASK_PEER), op.name


def test_accepts_reads_the_row():
    stop = optable.TABLE["stop"]
    assert optable.accepts(stop, s.ACTIVE, None)
    assert not optable.accepts(stop, s.STOPPED, None)
    assert not optable.accepts(stop, s.ACTIVE, s.REBOOTING)
    assert optable.accepts(optable.TABLE["delete"], s.BUILDING, s.SPAWNING)
    assert optable.accepts(optable.TABLE["reboot_hard"], s.ERROR, s.REBOOTING_HARD)


def test_an_interrupted_migration_is_told_apart_by_its_side():
    assert optable.interrupted(s.MIGRATING, optable.SOURCE).name == "live_migration"
    assert optable.interrupted(s.MIGRATING,
                               optable.DESTINATION).name == "live_migration_destination"
    assert optable.interrupted(s.RESIZE_FINISH).name == "resize_destination"
    assert optable.interrupted(s.POWERING_OFF).restart == optable.RESUME
    assert optable.interrupted(s.SPAWNING).restart == optable.CLEAN_UP
    assert optable.interrupted("no-such-task") is None


def test_every_crash_point_in_the_code_is_a_named_step_and_each_step_is_used_once():
    used = []
    for folder in ("compute",):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(dirpath, name)) as f:
                        used += re.findall(r'faults\.point\("([^"]+)"\)', f.read())
    assert sorted(used) == sorted(faults.STEPS)


def test_rebuild_and_rescue_rows():
    rebuild, rescue, unrescue = (optable.TABLE[n] for n in ("rebuild", "rescue", "unrescue"))
    for op in (rebuild, rescue):
        assert all(optable.accepts(op, vm, None) for vm in (s.ACTIVE, s.STOPPED, s.ERROR))
        assert not optable.accepts(op, s.RESCUED, None)
        assert not optable.accepts(op, s.ACTIVE, s.REBOOTING)
    assert (rescue.done, unrescue.done, rebuild.done) == (s.RESCUED, s.ACTIVE, s.ACTIVE)
    assert optable.accepts(unrescue, s.RESCUED, None)
    assert not optable.accepts(unrescue, s.ACTIVE, None)
    # only unrescue and delete (and the admin's reset) leave RESCUED
    leaving = {op.name for op in optable.ROWS if op.tasks and optable.accepts(op, s.RESCUED,
                                                                               None)}
    assert leaving == {"unrescue", "delete", "build", "live_migration_destination", "evacuate",
                       "resize_destination"}
    for task in (s.REBUILDING, s.RESCUING, s.UNRESCUING):
        assert optable.interrupted(task).restart == optable.RESUME

