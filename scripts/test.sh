#!/usr/bin/env bash
# Install what the tests need (Debian packages, the venv with keadm[test]) and run the whole suite.
# Extra arguments go to pytest. "No tests ran" (pytest exit 5) counts as a failure.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_apt_packages "${APT_PACKAGES[@]}"
ensure_venv "[test]"
export KUBECTL_120="$(ensure_kubectl_120)"
upstream_bin="$(ensure_upstream_binaries)"
if [ -n "$upstream_bin" ]; then
  export KEADM_UPSTREAM_BIN="$upstream_bin"
fi
cd "$REPO_DIR"
echo "==> checking the layers and the types"
bash "$REPO_DIR/scripts/check_layers.sh"
echo "==> building the one-file keadm (dist/keadm) for its smoke test"
"$VENV_DIR/bin/pyinstaller" --noconfirm --log-level WARN build.spec
export KEADM_FROZEN="$REPO_DIR/dist/keadm"
echo "==> running the tests"
set +e
"$VENV_DIR/bin/python" -m pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests; that is a failure here" >&2
  exit 1
fi
exit "$status"
