"""When a source takes a peer's word to confirm or revert a move
(compute.parts.resize.settle_refusal)."""
import types

from compute.parts.resize import settle_refusal


def mig(id_="m1", status="finished"):
    return types.SimpleNamespace(id=id_, status=status)


def inst(vm_state="resized"):
    return types.SimpleNamespace(vm_state=vm_state)


def test_a_finished_current_move_of_a_resized_instance_is_settled():
    assert settle_refusal(mig(), [mig()], inst()) is None
    assert settle_refusal(mig(), [mig()], None) is None      # an earlier attempt got further


def test_an_old_failed_or_foreign_state_is_refused():
    assert "error, not finished" in settle_refusal(mig(status="error"), [mig()], inst())
    assert "m2 is newer" in settle_refusal(mig(), [mig("m2"), mig()], inst())
    assert "active, not resized" in settle_refusal(mig(), [mig()], inst("active"))
