"""The RPC contract is declared once (compute.rpc.contract): the endpoint, the
client and the schemas have exactly its methods, each sent as its kind
says at its version, and the payload check runs in the wrapper chain."""
import ast
import inspect
import os
import types

import pytest

from compute.core import exception, optable
from compute.rpc import client, contract, schemas
from compute.rpc.endpoint import ComputeEndpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def public_methods(cls):
    return {n for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")}


def sent_methods():
    """{method name: the client method that sends it}, read from rpcapi's code."""
    with open(os.path.join(ROOT, "compute", "rpc", "client.py")) as f:
        tree = ast.parse(f.read())
    sent = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr == "_rpc" and isinstance(node.args[1], ast.Constant):
                    sent[node.args[1].value] = fn.name
    return sent


def test_the_endpoint_the_client_and_the_schemas_have_the_declared_methods():
    declared = set(contract.METHODS)
    made = {n for n in declared if contract.starting(n)}
    assert made >= {"stop_instance", "start_instance", "unrescue_instance"}
    served = {n for n in declared if contract.serving(n)}
    written = public_methods(ComputeEndpoint)
    assert written | made | served == declared and not written & (made | served)
    assert not made & served
    assert set(schemas.SCHEMAS) == declared
    sent = {n for n in declared if contract.made_client(n)}
    assert made <= sent and len(sent) >= 40
    assert set(sent_methods()) | sent == declared and not set(sent_methods()) & sent
    for name in made:              # made from the declaration, on both sides
        assert callable(getattr(ComputeEndpoint(types.SimpleNamespace(db=None)), name))
        assert schemas.SCHEMAS[name]["required"] == ["instance_uuid"]
    for name in sent:              # the client sends what the schema asks for
        api = client.ComputeAPI.__new__(client.ComputeAPI)
        assert getattr(api, name).__doc__ == contract.METHODS[name].doc
        params, schema = contract.METHODS[name].params, schemas.SCHEMAS[name]
        assert set(schema.get("required", ())) <= set(params) <= set(schema["properties"]), name


def test_a_made_client_method_maps_its_arguments_by_the_declaration():
    declared = contract.METHODS["attach_volume"]
    assert contract.payload_of(declared, ("u", "v"), {"connection_info": {}}) == {
        "instance_uuid": "u", "volume_id": "v", "connection_info": {}}
    with pytest.raises(TypeError, match="takes 3 arguments"):
        contract.payload_of(declared, ("u", "v", {}, "extra"), {})
    with pytest.raises(TypeError, match="unexpected or repeated argument 'volume_id'"):
        contract.payload_of(declared, ("u", "v"), {"volume_id": "w", "connection_info": {}})
    with pytest.raises(TypeError, match="missing connection_info"):
        contract.payload_of(declared, ("u", "v"), {})
    assert set(schemas.ANSWERS) <= {n for n, m in contract.METHODS.items() if m.peer} | {
        "list_migrations", "get_instance"}


def test_every_row_is_started_by_a_declared_method():
    started = {op for m in contract.METHODS.values() for op in m.ops}
    assert started == set(optable.TABLE)
    assert all(m.kind in (contract.CALL, contract.CAST) for m in contract.METHODS.values())
    assert contract.WITH_DEADLINE == {"build_and_run_instance", "cache_images"}
    assert ComputeEndpoint.target.version == contract.VERSION


def test_no_endpoint_method_checks_its_own_payload():
    """The check is PayloadCheck's, from the method's name: no method
    repeats its own name to check itself."""
    with open(os.path.join(ROOT, "compute", "rpc", "endpoint.py")) as f:
        text = f.read()
    assert "schemas." not in text and "_check(" not in text


class Recorder:
    def __init__(self):
        self.calls = []

    def ping(self, ctxt, **payload):
        self.calls.append(payload)
        return "pong"

    def undeclared(self, ctxt, **payload):
        return "served"


def test_the_payload_check_refuses_before_the_method_runs_and_serves_only_the_contract():
    notes, inner = [], Recorder()
    checked = contract.PayloadCheck(inner, lambda event, payload: notes.append(event))
    assert checked.ping({}) == "pong"
    with pytest.raises(exception.InvalidRequest):
        checked.ping({}, extra="field")
    assert inner.calls == [{}] and notes == ["ping.rejected"]
    assert not hasattr(checked, "undeclared")


class SendRecorder:
    def __init__(self):
        self.sent = []

    def prepare(self, server, version, timeout):
        self.version = version
        return self

    def call(self, ctxt, method, **payload):
        self.sent.append(("call", method, self.version))
        return {"host": "h", "status": "ok"}

    def cast(self, ctxt, method, **payload):
        self.sent.append(("cast", method, self.version))


def test_the_client_sends_each_method_as_declared(monkeypatch):
    api = client.ComputeAPI.__new__(client.ComputeAPI)
    api.client, api.timeout = SendRecorder(), 5
    api.ping("h")
    api.terminate_instance("h", "6f1c56b4-2d3c-4b5e-9a43-0c1a4d2e7f10")
    assert api.client.sent == [("call", "ping", "1.0"), ("cast", "terminate_instance", "1.0")]
    monkeypatch.setitem(contract.METHODS, "ping", contract.Method("ping", contract.CAST,
                                                                  since="1.1"))
    assert api.ping("h") is None
    assert api.client.sent[-1] == ("cast", "ping", "1.1")


def test_a_made_endpoint_method_hands_its_params_to_the_part_method_it_names():
    """Each `serves` declaration names a part method that takes the
    declared params (after ctxt when it takes one), every one of them
    required by the schema; the made method calls it with the payload's."""
    from compute.agent.manager import ComputeManager
    from compute.parts.cached_images import CachedImages
    from compute.parts.lifecycle import Lifecycle
    from compute.parts.live_migration import LiveMigrations
    from compute.parts.networking import Networking
    from compute.parts.resize import Resizes
    classes = {"live_migrations": LiveMigrations, "resizes": Resizes, "networking": Networking,
               "lifecycle": Lifecycle, "images": CachedImages}
    served = [m for m in contract.METHODS.values() if m.serves]
    assert len(served) >= 14
    for m in served:
        part, method = m.serves.split(".")
        params = list(inspect.signature(getattr(classes[part], method)).parameters)[1:]
        assert len(params) == m.ctxt + len(m.params), m.name          # positional, in order
        assert (params[:1] == ["ctxt"]) == m.ctxt, m.name
        assert set(m.params) <= set(schemas.SCHEMAS[m.name].get("required", ())), m.name
    assert "parts" in inspect.getsource(ComputeManager.__init__)
    calls = []
    part = types.SimpleNamespace(finish_resize=lambda ctxt, mid: calls.append((ctxt, mid)) or 1)
    manager = types.SimpleNamespace(db=None, part_method=lambda ref: getattr(
        part, ref.split(".")[1]))
    endpoint = ComputeEndpoint(manager)
    assert endpoint.finish_resize({"request_id": "r"}, migration_id="m1") == 1
    assert calls == [({"request_id": "r"}, "m1")]
