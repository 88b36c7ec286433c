#!/usr/bin/env bash
# Install everything (launch/setup.sh), then run the whole test suite: unit tests and the integration
# tests that run real SmolLM2 inference under mpiexec. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
exec .venv/bin/python -m pytest tests "$@"
