"""The sample config in etc/ is what oslo-config-generator makes of the code
now, and every option has help text."""
import os
import subprocess
import sys

import pytest

from compute.agent import conf
from console import conf as console_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
ETC = os.path.join(ROOT, "etc", "compute-agent")


@pytest.mark.parametrize("service", ["compute-agent", "compute-console-proxy"])
def test_sample_config_is_current(tmp_path, service):
    out = tmp_path / "sample"
    subprocess.run([sys.executable, "-m", "oslo_config.generator", "--config-file",
                    os.path.join(ETC, f"{service}-config-generator.conf"),
                    "--output-file", str(out)], check=True, cwd=ROOT)
    with open(os.path.join(ETC, f"{service}.conf.sample")) as f:
        current = f.read()
    assert out.read_text() == current, (
        f"etc/compute-agent/{service}.conf.sample is stale: run `tox -e genconfig`")


def test_every_option_has_help():
    for _group, opts in conf.list_opts() + console_conf.list_opts():
        for opt in opts:
            assert opt.help and len(opt.help) > 10, opt.name


def test_required_options_exist_with_defaults():
    c = conf.CONF
    assert c.max_concurrent_builds == 10
    assert c.report_interval == 10 and c.service_down_time == 60
    assert c.libvirt.virt_type == "kvm"
    assert c.image.cache_subdirectory == "_base"
    assert c.image.force_raw_images is True and c.image.use_cow_images is True
