#!/bin/bash
# The whole test suite on a fresh Debian 12 machine (run as root): install
# what is needed, start libvirtd, virtlogd and RabbitMQ, then run the tox
# environments: pep8 (ruff), then suite: the e2e modules (real guests, and
# every benchmark's --smoke) with the unit and functional tests as one more
# job beside them (tools/e2e_lanes.py --with-unit).
# Extra arguments go to tox (for example: -e py3, or -e e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
tools/start-daemons.sh
if [ $# -eq 0 ]; then set -- -e pep8,suite; fi
exec .venv/bin/tox "$@"
