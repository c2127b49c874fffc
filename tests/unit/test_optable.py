"""The operation table and the crash points (pure)."""
import ast
import os
import re

from compute.core import faults, optable
from compute.core import states as s

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_task_state_belongs_to_a_row_and_every_row_settles():
    tasks = {v for k, v in vars(s).items() if k.isupper() and isinstance(v, str) and v not in (
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
    assert leaving == {"unrescue", "delete", "build", "live_migration_destination",
                       "resize_destination"}
    for task in (s.REBUILDING, s.RESCUING, s.UNRESCUING):
        assert optable.interrupted(task).restart == optable.RESUME



# -- the table owns every operation: read from the code, not from a list --------

RUNNER = os.path.join("compute", "core", "operation.py")
ENDPOINT = os.path.join("compute", "rpc", "endpoint.py")
RUNNER_CALLS = {"run", "accept", "advance", "finish", "record", "record_incoming",
                "make_image", "_snapshot", "runs", "settle"}


def _modules():
    """(path relative to ROOT, parsed module) of every agent module."""
    for folder in ("compute", "virt", "network", "volume", "imagecache", "console",
                   "privileged"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    with open(path) as f:
                        yield os.path.relpath(path, ROOT), ast.parse(f.read(), path)


def task_state_writes(tree):
    """Line numbers of calls that write task_state (a keyword argument, or
    one in a dict literal spread into the call) in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for k in node.keywords:
                spread = k.value.keys if k.arg is None and isinstance(k.value, ast.Dict) \
                    else []
                if k.arg == "task_state" or any(isinstance(key, ast.Constant)
                                                and key.value == "task_state" for key in spread):
                    found.append(node.lineno)
    return sorted(found)


def action_runs(tree):
    """Line numbers of Operations.run calls (`<x>.ops.run(...)` or
    `ops.run(...)`): the action records only the Runner may open."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "run":
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "ops":
                found.append(node.lineno)
    return found


def named_operations(tree):
    """(line, name) of every string literal an operation call names: the
    first string argument of the Runner's and the parts' row-taking calls."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in RUNNER_CALLS:
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((node.lineno, arg.value))
                    break
    return found


def test_nothing_but_the_runner_writes_a_task_state():
    writes = {path: lines for path, tree in _modules()
              if path != RUNNER and not path.startswith(os.path.join("compute", "db"))
              and (lines := task_state_writes(tree))}
    assert writes == {}


def test_nothing_but_the_runner_opens_an_instance_action():
    opened = {path: lines for path, tree in _modules()
              if path != RUNNER and (lines := action_runs(tree))}
    assert opened == {}


def test_every_operation_the_code_names_is_a_row():
    unknown = [(path, line, name) for path, tree in _modules()
               for line, name in named_operations(tree)
               if name not in optable.TABLE and path != ENDPOINT]
    assert unknown == []
    # and the endpoint's (also schema names: a row when it runs one)
    endpoint = dict(_modules())[ENDPOINT]
    runs = [name for node in ast.walk(endpoint) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr in ("runs", "accept")
            for name in [a.value for a in node.args[:1] if isinstance(a, ast.Constant)]]
    assert runs and all(name in optable.TABLE for name in runs)


def test_the_checks_above_find_what_they_look_for():
    """The inspections fail on the code they forbid (so they cannot pass
    by finding nothing)."""
    bad = ast.parse("db.instance_update(u, task_state=None)\n"
                    "db.instance_create(**dict(rec, task_state='x'))\n"
                    "db.instance_update(u, **{'task_state': None})\n"
                    "with self.runner.ops.run(ctxt, u, 'x'):\n    pass\n"
                    "with ops.run(ctxt, u, 'y'):\n    pass\n"
                    "self.runner.run('no_such_row', ctxt, u, work)\n")
    assert task_state_writes(bad) == [1, 2, 3]
    assert action_runs(bad) == [4, 6]
    assert (8, "no_such_row") in named_operations(bad)


def test_every_row_names_its_methods_and_restart():
    for op in optable.ROWS:
        for ref in (op.runs, op.restart_with):
            assert ref is None or re.fullmatch(r"[a-z_]+\.[a-z_]+", ref), (op.name, ref)
        if op.restart in (optable.RESUME, optable.ASK_PEER, optable.CLEAN_UP):
            assert op.restarts_with(), op.name
        if op.on_failure == optable.LEAVE:
            assert op.side == optable.DESTINATION, op.name
        assert op.refuses <= set(optable.REFUSAL_REASONS), op.name


def test_migration_statuses_are_one_enum_and_the_schema_agrees():
    """The statuses the database's rules name (schema 0014) are the enum's."""
    path = os.path.join(ROOT, "compute", "db", "migrations", "versions", "0014_host_reads.py")
    with open(path) as f:
        text = f.read()
    final = re.search(r'^DONE = "\((.*)\)"', text, re.M).group(1)
    in_flight = re.search(r'^IN_FLIGHT = "\((.*)\)"', text, re.M).group(1)
    assert {v.strip("' ") for v in final.split(",")} == set(s.FINAL_MIGRATION)
    assert {v.strip("' ") for v in in_flight.split(",")} == {
        s.MigrationStatus.ACCEPTING, s.MigrationStatus.ACCEPTED}
    literals = {(path, node.lineno, node.value) for path, tree in _modules()
                if path.startswith("compute") and not path.startswith(os.path.join("compute", "db"))
                for node in ast.walk(tree)
                if isinstance(node, ast.keyword) and node.arg == "status"
                for node in [node.value] if isinstance(node, ast.Constant)}
    assert literals == set()
