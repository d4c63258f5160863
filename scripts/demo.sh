#!/usr/bin/env bash
# Set everything up and run the main job end to end on the embedded defaults.
# Today (foundation): configs printed and checked, a join token issued and verified,
# CloudCore and EdgeCore started under supervision, shown running, and stopped.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_apt_packages "${APT_PACKAGES[@]}"
ensure_venv ""
exec "$VENV_DIR/bin/python" "$REPO_DIR/scripts/demo.py" "$@"
