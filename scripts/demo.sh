#!/usr/bin/env bash
# Set everything up and run the main job end to end on the embedded defaults.
# init (embedded control plane + CloudCore) -> gettoken -> a private containerd -> join ->
# a pod applied with kubectl, running at the edge, its status printed -> reset.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_apt_packages "${APT_PACKAGES[@]}"
ensure_venv ""
exec "$VENV_DIR/bin/python" "$REPO_DIR/scripts/demo.py" "$@"
