#!/bin/sh
# Installs the third-party WHM client pycpanel (from PyPI, pinned) into a virtualenv, for
# the fake WHM's tests: fake-server/tests/pycpanel/install.sh VENV. Does nothing when VENV
# already has it. `cargo xtask ci` runs it; the tests run it too when VENV is missing it.
set -eu
venv="${1:?usage: install.sh VENV}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pycpanel' 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'pycpanel==0.1.5' 'requests>=2.31'
"$venv/bin/python" -c 'import pycpanel'
