"""The client sends again what the broker returned as unroutable (no queue
for the host yet, as after a broker restart) and gives up with
AgentNotListening; anything else goes to the caller unchanged.  The
prepared client is a stand-in: this is the loop's logic alone."""
import oslo_messaging as messaging
import pytest
from oslo_config import cfg

from compute.core import exception
from compute.rpc import client, transport


class FakeClient:
    """Answers after `returned` sends came back unroutable."""

    def __init__(self, returned, error=None):
        self.returned, self.error, self.sends, self.timeouts = returned, error, 0, []
        self.versions = []

    def prepare(self, server, version, timeout):
        self.timeouts.append(timeout)
        self.versions.append(version)
        return self

    def call(self, ctxt, method, **payload):
        self.sends += 1
        if self.error is not None:
            raise self.error
        if self.sends <= self.returned:
            raise messaging.MessageUndeliverable(None, "openstack", "compute.h", None)
        return {"host": "h"}

    cast = call


@pytest.fixture
def api(monkeypatch):
    conf = cfg.ConfigOpts()
    transport.register_opts(conf)
    conf([], project="compute-agent-test")
    conf.set_override("transport_url", "fake:/")
    a = client.ComputeAPI(conf, timeout=5)
    monkeypatch.setattr(client, "RESEND_INTERVAL", 0.01)
    return a


def test_a_returned_call_is_sent_again_until_the_agent_listens(api):
    api.client = FakeClient(returned=3)
    assert api.ping("h") == {"host": "h"}
    assert api.client.sends == 4
    assert api.client.timeouts == sorted(api.client.timeouts, reverse=True)  # time left
    assert api.client.timeouts[0] <= 5


def test_a_returned_cast_is_sent_again(api):
    api.client = FakeClient(returned=2)
    api.terminate_instance("h", "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55")
    assert api.client.sends == 3


def test_no_listener_within_the_grace_is_agent_not_listening(api, monkeypatch):
    monkeypatch.setattr(client, "NOT_LISTENING_GRACE", 0.2)
    api.client = FakeClient(returned=10 ** 6)
    with pytest.raises(exception.AgentNotListening, match="'h'"):
        api.ping("h")
    assert 5 <= api.client.sends < 10 ** 6


def test_the_grace_never_outlasts_the_calls_timeout(api):
    api.client = FakeClient(returned=10 ** 6)
    with pytest.raises(exception.AgentNotListening):
        api.ping("h", timeout=0.1)
    assert api.client.sends < 20


def test_other_errors_are_not_retried(api):
    api.client = FakeClient(returned=0, error=messaging.MessagingTimeout("late"))
    with pytest.raises(messaging.MessagingTimeout):
        api.ping("h")
    assert api.client.sends == 1


def test_the_sample_config_shows_the_agents_messaging_defaults():
    listed = dict((g, {o.name: o.default for o in opts}) for g, opts in transport.list_opts())
    assert listed["oslo_messaging_rabbit"]["rabbit_interval_max"] == 2
    conf = cfg.ConfigOpts()
    transport.register_opts(conf)
    conf([], project="compute-agent-test")
    assert conf.oslo_messaging_rabbit.rabbit_interval_max == 2
