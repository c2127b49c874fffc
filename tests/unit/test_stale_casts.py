"""Which casts an agent drops as stale (compute.rpc.stale_casts)."""
import pytest

from compute.rpc.stale_casts import stale_cast_refusal


def test_a_build_past_its_deadline_is_dropped_and_one_within_it_runs():
    assert "past cast_deadline (600 s)" in stale_cast_refusal(
        "build_and_run_instance", {"sent_at": 1000.0}, 1000.0 + 601, 600)
    assert stale_cast_refusal("build_and_run_instance", {"sent_at": 1000.0}, 1500.0, 600) \
        is None


@pytest.mark.parametrize("method,ctxt,deadline", [
    ("terminate_instance", {"sent_at": 0.0}, 600),        # a delete always runs
    ("build_and_run_instance", {"sent_at": 0.0}, 0),      # no deadline
    ("build_and_run_instance", {}, 600),                  # an older client's request
    ("build_and_run_instance", {"sent_at": "0"}, 600),    # not a time
    ("build_and_run_instance", {"sent_at": True}, 600),
    ("build_and_run_instance", None, 600)])
def test_what_is_never_dropped(method, ctxt, deadline):
    assert stale_cast_refusal(method, ctxt, 10_000.0, deadline) is None
