"""Functional fixtures: the whole service (endpoint, manager, libvirt driver,
image cache) against libvirt's test:///default hypervisor, oslo.messaging's
in-memory fake:// transport and an in-process compute-images."""
import os
import subprocess
import threading
import uuid

import pytest
from oslo_config import cfg

from compute.agent import conf as compute_conf
from compute.agent.service import ComputeService
from compute.rpc import transport as rpc
from compute.rpc.client import ComputeAPI
from devtools.imageservice import make_server
from imagecache.glance import GlanceClient


# One service per test module: instances are independent of each other, and
# a service takes about a second to stop (oslo.messaging joins its executor).
@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory):
    return tmp_path_factory.mktemp("func")


@pytest.fixture(scope="module")
def image_service(tmp_module):
    server = make_server(str(tmp_module / "images"), port=0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def upload(url, path, disk_format, **props):
    client = GlanceClient([url])
    meta = client.create(name=os.path.basename(path), disk_format=disk_format,
                         container_format="bare", **props)
    with open(path, "rb") as f:
        client.upload(meta["id"], f)
    return meta["id"]


@pytest.fixture(scope="module")
def qcow2_image(tmp_module, image_service):
    path = tmp_module / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "8M"], check=True)
    return upload(image_service, str(path), "qcow2")


@pytest.fixture(scope="module")
def agent_conf(request, tmp_module, image_service):
    """The agent's config; a test module may set AGENT_CONF = {(group, name): value}."""
    return make_conf(str(tmp_module / "state"), image_service,
                     getattr(request.module, "AGENT_CONF", {}))


def make_conf(state_path, image_service, overrides=(), uri="test:///default"):
    """An agent's config for a functional test: its own state and host name,
    the in-memory transport, libvirt's test driver at uri."""
    conf = cfg.ConfigOpts()
    compute_conf.register_opts(conf)
    conf([], project="compute-agent-functional")
    host = "func-" + uuid.uuid4().hex[:8]
    conf.set_override("host", host)
    conf.set_override("state_path", state_path)
    conf.set_override("transport_url", "fake:///")
    conf.set_override("report_interval", 1)
    conf.set_override("wait_soft_reboot_seconds", 5)
    conf.set_override("shutdown_timeout", 5)
    conf.set_override("shutdown_retry_interval", 1)
    conf.set_override("lifecycle_event_delay", 0.5, group="libvirt")
    conf.set_override("connection_uri", uri, group="libvirt")
    conf.set_override("virt_type", "qemu", group="libvirt")
    # libvirt's test driver moves no QEMU memory: nothing to encrypt
    conf.set_override("live_migration_with_native_tls", False, group="libvirt")
    conf.set_override("api_servers", [image_service], group="image")
    # the volumes the modules attach name their servers on the bed's storage net
    conf.set_override("volume_allowed_networks", ["10.250.0.0/24"])
    # libvirt's test driver offers 3 GiB; the modules keep many instances
    conf.set_override("ram_allocation_ratio", 64.0)
    for (group, name), value in dict(overrides).items():
        conf.set_override(name, value, group=group)
    return conf


@pytest.fixture(scope="module")
def service(agent_conf):
    transport = rpc.get_transport(agent_conf)
    svc = ComputeService(agent_conf, transport=transport)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def api(service):
    return ComputeAPI(service.conf, transport=service.transport, timeout=10)


@pytest.fixture
def active_instance(api, service, qcow2_image):
    """A spawned ACTIVE instance; its uuid."""
    u = str(uuid.uuid4())
    api.build_and_run_instance(service.conf.host, u, "fn", {"vcpus": 1, "memory_mb": 128,
                                                           "root_gb": 1}, qcow2_image)
    wait_settled(api, service.conf.host, u)
    return u


def wait_settled(api, host, uuid_, timeout=30):
    """Wait until the instance exists with no task in progress."""
    import time

    from compute.core import exception
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rec = api.get_instance(host, uuid_)
        except exception.InstanceNotFound:
            continue
        if rec["task_state"] is None and rec["vm_state"] != "building":
            return rec
        time.sleep(0.02)
    raise AssertionError(f"{uuid_} never settled: {rec}")
