"""Consoles through the token proxy, end to end: a real guest's serial
console (a TCP server only on the host's console address, still logged)
answers a command typed through compute-console-proxy, by websocket and
by `computectl console`; its VNC server speaks RFB through the proxy; a
reused, expired, forged or misdirected token opens nothing; and neither
console port answers on any other address of the host."""
import os
import socket
import subprocess
import time
import uuid

import pytest
import requests
from websockets.exceptions import InvalidStatus

from compute.core import exception
from tests.harness import agent as harness
from tests.harness.agent import Agent
from tests.harness.serial import SHELL_READY
from tests.harness.serial import open_ws as _ws
from tests.harness.serial import type_and_read as _type_and_read
from virt.libvirt import console_ports

NOVNC = "/usr/share/novnc"          # Debian's novnc (tools/install.sh)


@pytest.fixture(scope="module")
def bed():
    a = Agent(extra_conf="[libvirt]\nserial_console = true\nserial_port_range = 10700:10799\n")
    a.start()
    a.upload_test_guest()
    a.start_console_proxy(novnc_dir=NOVNC)
    image = a.upload_variant("console=ttyS0 quiet tb.name=con tb.shell=1")
    u = a.boot("con", image=image, wait_console=False)
    a.wait_console(u, lambda c: SHELL_READY in c, "the serial shell")
    yield a, u
    a.close()


def _refusal(url):
    with pytest.raises(InvalidStatus) as e:
        _ws(url).close()
    return e.value.response.status_code, e.value.response.body.decode()


def _other_addresses():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def _accepts(address, port):
    try:
        socket.create_connection((address, port), 2).close()
        return True
    except OSError:
        return False


def test_a_command_typed_through_the_proxy_runs_in_the_guest(bed):
    a, u = bed
    answer = a.api.get_serial_console(a.host, u)
    assert answer["type"] == "serial" and answer["expires_in"] == 600
    assert answer["url"].startswith(f"ws://127.0.0.1:{a.console_port}/serial/{u}?token=")
    with _ws(answer["url"]) as ws:
        out = _type_and_read(ws, "echo TB-ECHO-$((6*7)) $(cat /proc/sys/kernel/hostname)",
                             "TB-ECHO-42 con")
    assert "TB-ECHO-42 con" in out
    # the log still has everything the console printed
    a.wait_console(u, lambda c: "TB-ECHO-42 con" in c, "the answer in console.log")
    code, why = _refusal(answer["url"])                 # used once already
    assert code == 403 and "already used" in why
    assert "console serial/" + u in a.log("console-proxy")


def test_tokens_for_another_console_forged_or_expired_are_refused(bed):
    a, u = bed
    url = a.api.get_serial_console(a.host, u)["url"]
    other = str(uuid.uuid4())
    code, why = _refusal(url.replace(u, other))
    assert code == 403 and f"not for the serial console of {other}" in why
    code, why = _refusal(url.replace("/serial/", "/vnc/"))
    assert code == 403 and "not for the vnc console" in why
    base, token = url.split("?token=")
    forged = token[:-6] + ("A" * 6 if not token.endswith("AAAAAA") else "B" * 6)
    code, why = _refusal(f"{base}?token={forged}")
    assert code == 403 and "forged" in why
    assert _refusal(base)[0] == 404                     # no token at all
    # a proxy that keeps tokens 1 s: the agent's 600 s do not count there
    short = a.start_console_proxy("console-proxy-short", harness.free_port(), token_ttl=1)
    url = a.api.get_serial_console(a.host, u)["url"]
    time.sleep(2.5)
    code, why = _refusal(url.replace(f":{a.console_port}/", f":{short}/"))
    assert code == 403 and "older than the proxy accepts" in why
    # the token refused there was never used: the main proxy still opens it
    with _ws(url) as ws:
        assert "TB-AGAIN-4" in _type_and_read(ws, "echo TB-AGAIN-$((2+2))", "TB-AGAIN-4")


def test_computectl_console_attaches_through_the_proxy(bed):
    a, u = bed
    run = subprocess.run(
        [os.path.join(harness.BIN, "computectl"), "--config-file", a.config_file, "console",
         "--host", a.host, "--linger", "8", u],
        input="echo TB-CLI-$((5+5))\n", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "TB-CLI-10" in run.stdout


def test_vnc_speaks_rfb_through_the_proxy_only(bed):
    a, u = bed
    answer = a.api.get_vnc_console(a.host, u)
    assert answer["url"].startswith(f"http://127.0.0.1:{a.console_port}/novnc/vnc_lite.html"
                                    f"?path=vnc%2F{u}%3Ftoken%3D")
    with _ws(answer["websocket"]) as ws:
        assert ws.subprotocol == "binary"
        assert ws.recv(timeout=30)[:4] == b"RFB "
    assert _refusal(answer["websocket"])[0] == 403
    # the page the url opens, and the client's modules, come from the same proxy
    page = requests.get(answer["url"], timeout=10)
    assert page.status_code == 200 and "noVNC" in page.text
    rfb = requests.get(f"http://127.0.0.1:{a.console_port}/novnc/core/rfb.js", timeout=10)
    assert rfb.status_code == 200 and "javascript" in rfb.headers["Content-Type"]
    for escape in ("/novnc/../../etc/passwd", "/novnc/%2e%2e/%2e%2e/etc/passwd"):
        assert requests.get(f"http://127.0.0.1:{a.console_port}{escape}",
                            timeout=10).status_code == 404


def test_console_ports_listen_only_on_the_console_address(bed):
    a, u = bed
    xml = subprocess.run(["virsh", "-c", harness.LIBVIRT_URI, "dumpxml", u],
                         capture_output=True, text=True, check=True).stdout
    serial, vnc = console_ports.serial_target(xml), console_ports.vnc_target(xml)
    assert serial[0] == vnc[0] == "127.0.0.1" and 10700 <= serial[1] <= 10799
    assert _accepts("127.0.0.1", vnc[1])
    others = _other_addresses()
    assert others, "the host has no other address to check from"
    for address in others:
        assert not _accepts(address, serial[1]), (address, serial[1])
        assert not _accepts(address, vnc[1]), (address, vnc[1])


def test_the_serial_port_stays_with_the_guest_across_a_hard_reboot(bed):
    a, u = bed
    before = _serial_port(u)
    a.api.reboot_instance(a.host, u, "HARD")
    a.wait_settled(u)
    assert _serial_port(u) == before
    a.wait_console(u, lambda c: c.count(SHELL_READY) >= 2, "the shell after the reboot")
    with _ws(a.api.get_serial_console(a.host, u)["url"]) as ws:
        assert "TB-REBOOTED-9" in _type_and_read(ws, "echo TB-REBOOTED-$((3*3))",
                                                 "TB-REBOOTED-9")


def test_no_console_for_a_stopped_guest(bed):
    a, u = bed
    a.api.stop_instance(a.host, u)
    a.wait_state(u, {"stopped"})
    for get in (a.api.get_serial_console, a.api.get_vnc_console):
        with pytest.raises(exception.ConsoleUnavailable, match="not running"):
            get(a.host, u)
    a.api.start_instance(a.host, u)
    a.wait_state(u, {"active"})
    assert a.api.get_serial_console(a.host, u)["type"] == "serial"


def _serial_port(u):
    xml = subprocess.run(["virsh", "-c", harness.LIBVIRT_URI, "dumpxml", u],
                         capture_output=True, text=True, check=True).stdout
    return console_ports.serial_target(xml)[1]
