#!/bin/bash
# The whole test suite on a fresh Debian 12 machine (run as root): install
# what is needed, start libvirtd, virtlogd and RabbitMQ, then run the tox
# environments: pep8 (ruff), py3 (unit + functional), e2e (real guests).
# Extra arguments go to tox (for example: -e py3).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
tools/start-daemons.sh
if [ $# -eq 0 ]; then set -- -e pep8,py3,e2e; fi
exec .venv/bin/tox "$@"
