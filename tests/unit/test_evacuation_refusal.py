"""When a returning host acts on an evacuation row (compute.parts.evacuate.
evacuation_refusal): only when it was silent long enough before the row,
the destination holds the instance, and the row is the newest."""
import datetime
import types

from compute.parts.evacuate import evacuation_refusal

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)


def mig(created, dest="hB", id_="m1", kind="evacuation"):
    return types.SimpleNamespace(created_at=created, dest_host=dest, id=id_,
                                 migration_type=kind)


def rec(owner="hB", host="hB"):
    return types.SimpleNamespace(owner=owner, host=host)


def test_a_real_evacuation_is_acted_on():
    assert evacuation_refusal(mig(T0 + datetime.timedelta(seconds=90)), T0, rec(), [], 60) \
        is None


def test_each_fact_that_disagrees_refuses():
    late = T0 + datetime.timedelta(seconds=90)
    assert "was not down" in evacuation_refusal(mig(T0 + datetime.timedelta(seconds=5)), T0,
                                                rec(), [], 60)
    assert "was not down" in evacuation_refusal(mig(T0 - datetime.timedelta(seconds=5)), T0,
                                                rec(), [], 60)   # written before its last beat
    assert "no heartbeat" in evacuation_refusal(mig(late), None, rec(), [], 60)
    assert "holds no record" in evacuation_refusal(mig(late), T0, None, [], 60)
    assert "holds no record" in evacuation_refusal(mig(late), T0, rec(host="hC"), [], 60)
    assert "not the instance's current" in evacuation_refusal(
        mig(late), T0, rec(), [mig(late, id_="m2", kind="live-migration")], 60)
