"""What the reconciler does with a guest no live record here names
(compute.parts.reconcile.stray_guest_action): only this host's own record of a
delete here lets the configured action touch it."""
import types

import pytest

from compute.parts.reconcile import REPORT, stray_guest_action


def record(deleted, host):
    return types.SimpleNamespace(deleted=deleted, host=host)


@pytest.mark.parametrize("action", ["noop", "log", "shutdown", "reap"])
def test_only_a_delete_recorded_here_gets_the_configured_action(action):
    assert stray_guest_action(record(True, "hA"), "hA", action) == action
    assert stray_guest_action(None, "hA", action) == REPORT                 # no record
    assert stray_guest_action(record(True, "hB"), "hA", action) == REPORT   # moved, then deleted
    assert stray_guest_action(record(False, "hB"), "hA", action) == REPORT  # lives elsewhere
