"""Console URLs through RPC on libvirt's test hypervisor: each running
guest gets its own serial port from the range, kept across a hard reboot;
the token in the URL names that port; no URL for a stopped guest, nor
from a host without a token key."""
import urllib.parse
import uuid

import pytest

from compute.core import exception
from console import tokens
from tests.functional.conftest import wait_settled
from virt.libvirt import console_ports

KEY = tokens.new_key()
AGENT_CONF = {("libvirt", "serial_console"): True,
              ("libvirt", "serial_port_range"): "10900:10999",
              ("console", "token_key"): KEY,
              ("console", "serial_proxy_url"): "wss://proxy.example:6083/serial"}


def _target(answer):
    """What the proxy reads of the URL's token, knowing this host only."""
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(answer["url"]).query)["token"][0]
    signer = token.split("~", 1)[0]
    host = tokens.ConsoleHost(signer, KEY.encode(), frozenset({"127.0.0.1"}),
                              {"serial": (10900, 10999), "vnc": (5900, 6099)})
    return tokens.read({signer: host}.get, token, 600, tokens.time.time())


def _port(service, u):
    guest = service.manager.driver.host.lookup(u)
    return console_ports.serial_target(guest.xml_desc())[1]


def _boot(api, service, image):
    u = str(uuid.uuid4())
    api.build_and_run_instance(service.conf.host, u, "con",
                               {"vcpus": 1, "memory_mb": 128, "root_gb": 1}, image)
    assert wait_settled(api, service.conf.host, u)["vm_state"] == "active"
    return u


def test_each_guest_gets_its_own_port_and_keeps_it(api, service, qcow2_image):
    first, second = _boot(api, service, qcow2_image), _boot(api, service, qcow2_image)
    a, b = (api.get_serial_console(service.conf.host, u) for u in (first, second))
    assert a["url"].startswith(f"wss://proxy.example:6083/serial/{first}?token=")
    ta, tb = _target(a), _target(b)
    assert (ta.kind, ta.instance_uuid, ta.host) == ("serial", first, "127.0.0.1")
    assert ta.signer == service.conf.host and ta.password is None
    assert ta.port != tb.port and {ta.port, tb.port} <= set(range(10900, 11000))
    assert (ta.port, tb.port) == (_port(service, first), _port(service, second))
    api.reboot_instance(service.conf.host, first, "HARD")
    wait_settled(api, service.conf.host, first)
    assert _port(service, first) == ta.port


def test_no_console_for_a_stopped_guest_or_without_a_key(api, service, active_instance):
    host = service.conf.host
    api.stop_instance(host, active_instance)
    wait_settled(api, host, active_instance)
    with pytest.raises(exception.ConsoleUnavailable, match="not running"):
        api.get_serial_console(host, active_instance)
    api.start_instance(host, active_instance)
    wait_settled(api, host, active_instance)
    service.conf.set_override("token_key", None, group="console")
    try:
        with pytest.raises(exception.ConsoleUnavailable, match="token_key unset"):
            api.get_serial_console(host, active_instance)
    finally:
        service.conf.set_override("token_key", KEY, group="console")
    with pytest.raises(exception.InvalidRequest):
        api._rpc(host, "get_serial_console", instance_uuid="../../etc")
