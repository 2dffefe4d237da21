#!/usr/bin/env bash
# What the dashboard's browser test needs: Debian's Chromium and its driver, and Selenium to drive them.
# Idempotent; run as root (or with sudo). Without it, `pytest -m browser` skips and says why.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

chromium --version
chromedriver --version

# Selenium is in the `test` extra (`make install-test` brings it); add it now if the venv already exists.
if [ -x .venv/bin/python ]; then
  .venv/bin/python -m pip install -q "selenium>=4.20"
  .venv/bin/python -c "import selenium; print('selenium', selenium.__version__)"
fi
