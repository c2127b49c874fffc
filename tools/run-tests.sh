#!/bin/bash
# The whole test suite on a fresh Debian 12 machine (run as root): install
# what is needed, start libvirtd, virtlogd and RabbitMQ, then run the tox
# environments: pep8 (ruff), py3 (unit + functional), e2e (real guests and
# every benchmark's --smoke).  The functional tests run alone, before the
# e2e lanes: beside them, under two lanes of guests, one crash-point test
# missed its 1 s peer timeouts (tox -e suite runs them side by side).
# Extra arguments go to tox (for example: -e py3, or -e e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
tools/start-daemons.sh
if [ $# -eq 0 ]; then set -- -e pep8,py3,e2e; fi
exec .venv/bin/tox "$@"
