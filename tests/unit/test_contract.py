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
    written = public_methods(ComputeEndpoint)
    assert written | made == declared and not written & made
    assert set(schemas.SCHEMAS) == declared
    assert set(sent_methods()) | made == declared and not set(sent_methods()) & made
    for name in made:              # made from the declaration, on both sides
        assert callable(getattr(ComputeEndpoint(types.SimpleNamespace(db=None)), name))
        api = client.ComputeAPI.__new__(client.ComputeAPI)
        assert getattr(api, name).__doc__ == contract.METHODS[name].doc
        assert schemas.SCHEMAS[name]["required"] == ["instance_uuid"]
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
