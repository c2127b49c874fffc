"""Functional fixtures: the whole service (endpoint, manager, libvirt driver,
image cache) against libvirt's test:///default hypervisor, oslo.messaging's
in-memory fake:// transport and an in-process compute-images."""
import os
import subprocess
import threading
import uuid

import pytest
from oslo_config import cfg

from compute import conf as compute_conf
from compute import rpc
from compute.rpcapi import ComputeAPI
from compute.service import ComputeService
from imagecache.glance import GlanceClient
from imagecache.imageservice import make_server


@pytest.fixture
def image_service(tmp_path):
    server = make_server(str(tmp_path / "images"), port=0)
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


@pytest.fixture
def qcow2_image(tmp_path, image_service):
    path = tmp_path / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "8M"], check=True)
    return upload(image_service, str(path), "qcow2")


@pytest.fixture
def agent_conf(tmp_path, image_service):
    conf = cfg.ConfigOpts()
    compute_conf.register_opts(conf)
    conf([], project="compute-agent-functional")
    host = "func-" + uuid.uuid4().hex[:8]
    conf.set_override("host", host)
    conf.set_override("state_path", str(tmp_path / "state"))
    conf.set_override("transport_url", "fake:///")
    conf.set_override("report_interval", 1)
    conf.set_override("connection_uri", "test:///default", group="libvirt")
    conf.set_override("virt_type", "qemu", group="libvirt")
    conf.set_override("api_servers", [image_service], group="image")
    return conf


@pytest.fixture
def service(agent_conf):
    transport = rpc.get_transport(agent_conf)
    svc = ComputeService(agent_conf, transport=transport)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def api(service):
    return ComputeAPI(service.conf, transport=service.transport, timeout=10)
