"""The agent against an image service configured as an operator may
configure Glance: multihash with sha256 (Glance's hashing_algorithm), and
a cap on image size (image_size_cap) that refuses a snapshot with 413 and
its own reason.  What an operator sees is checked through computectl."""
import json
import re

import pytest

from imagecache.glance import GlanceClient
from tests.e2e.test_cli_e2e import ctl
from tests.harness.agent import Agent


@pytest.fixture(scope="module")
def agent():
    a = Agent(image_service_args=["--hashing-algorithm", "sha256"]).start()
    a.upload_test_guest()
    yield a
    a.close()


def test_snapshots_verify_with_the_services_algorithm_and_refusals_read_plainly(agent):
    host = ["--host", agent.host]
    u = agent.boot("sha256")
    images = GlanceClient([agent.image_url])
    snap = ctl(agent, "snapshot", *host, "--name", "snap-sha256", u)
    image_id = re.search(r"^image_id\s+(\S+)$", snap.stdout, re.M).group(1)
    stored = images.show(image_id)
    assert (stored["status"], stored["os_hash_algo"]) == ("active", "sha256")

    # the same service, now capping images at 1 MiB (Glance's image_size_cap)
    agent.restart_image_service("--hashing-algorithm", "sha256", "--image-size-cap",
                                str(1024 * 1024))
    before = {i["id"] for i in images._request("GET", "/v2/images").json()["images"]}
    refused = ctl(agent, "snapshot", *host, "--name", "too-big", u, check=False)
    assert refused.returncode == 1
    assert "image too large: Image exceeds the storage quota" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and "<" not in refused.stderr
    after = {i["id"] for i in images._request("GET", "/v2/images").json()["images"]}
    assert after == before                                # the refused image is deleted
    rec = agent.api.get_instance(agent.host, u)
    assert (rec["vm_state"], rec["task_state"], rec["power_state"]) == (
        "active", None, "RUNNING")


def test_deleting_an_instance_in_error_succeeds(agent):
    u = agent.boot("to-error", wait_console=False)
    agent.api.reset_state(agent.host, u, "error")
    out = ctl(agent, "--json", "delete", "--host", agent.host, u)       # exit 0 or raises
    assert json.loads(out.stdout)["vm_state"] == "deleted"
