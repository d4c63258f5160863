# Shared by scripts/demo.sh and scripts/test.sh: install what is missing, never by hand.
# Idempotent: packages already present are not installed again, an existing venv is reused.

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${KEADM_VENV:-$REPO_DIR/.venv}"
PYTHON="${PYTHON:-python3}"

# Debian packages the project needs on a fresh machine (root, Debian bookworm).
# systemd: systemd-analyze checks the unit files keadm would install (systemd need not run).
# containerd, runc, containernetworking-plugins: the container runtime EdgeCore drives through CRI;
# busybox-static: the local busybox and pause images (cores/runtime builds them, no registry).
APT_PACKAGES=(systemd containerd runc containernetworking-plugins busybox-static)
# etcd-server: the etcd under upstream's kube-apiserver in the real-cluster interop tests.
APT_PACKAGES+=(etcd-server)
# mosquitto: the external MQTT broker (EventBus mqttMode 2) of the device tests and the demo.
APT_PACKAGES+=(mosquitto)
# iptables and iproute2: CloudCore's iptables manager (DNAT to the stream server on a real cluster),
# tested inside a network namespace the test makes with ip netns.
APT_PACKAGES+=(iptables iproute2)
# kubectl drives the control plane tests; the machine image ships v1.32, Debian's package is 1.20.
command -v kubectl >/dev/null 2>&1 || APT_PACKAGES+=(kubernetes-client)

ensure_apt_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Debian's kubectl 1.20 (package kubernetes-client), unpacked beside the machine's kubectl rather
# than installed over it: the control plane tests run both versions. Prints the binary's path.
ensure_kubectl_120() {
  local dir="$REPO_DIR/.cache/kubectl-1.20"
  if [ ! -x "$dir/usr/bin/kubectl" ]; then
    echo "==> unpacking Debian's kubernetes-client (kubectl 1.20) into $dir" >&2
    local download
    download="$(mktemp -d)"
    (cd "$download" && apt-get download -qq kubernetes-client 2>/dev/null || \
      { apt-get update -qq && apt-get download -qq kubernetes-client; })
    mkdir -p "$dir"
    dpkg -x "$download"/kubernetes-client_*.deb "$dir"
    rm -rf "$download"
  fi
  echo "$dir/usr/bin/kubectl"
}

ensure_venv() {
  # $1: the pip extras to install with the project, e.g. "[test]" or ""
  if [ ! -x "$VENV_DIR/bin/python" ]; then
    echo "==> creating the virtual environment $VENV_DIR"
    "$PYTHON" -m venv "$VENV_DIR"
  fi
  echo "==> installing keadm into $VENV_DIR"
  "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO_DIR$1"
}

# Upstream KubeEdge's binaries for the interop tests (never shipped): when the xz files and their
# SHA256SUMS are there (KEADM_UPSTREAM_SOURCE, default ../shared/upstream-v1.23), unpack and check
# them into .cache/upstream once, and print that directory; print nothing when they are absent
# (the interop tests then skip, naming KEADM_UPSTREAM_BIN).
ensure_upstream_binaries() {
  local source="${KEADM_UPSTREAM_SOURCE:-$REPO_DIR/../shared/upstream-v1.23}"
  local dir="$REPO_DIR/.cache/upstream"
  if [ -f "$source/SHA256SUMS" ]; then
    echo "==> unpacking upstream's binaries from $source into $dir" >&2
    "$VENV_DIR/bin/python" -c 'import sys; from pathlib import Path; from cores.runtime import upstream; print(*upstream.unpack(Path(sys.argv[1]), Path(sys.argv[2])), file=sys.stderr)' \
      "$source" "$dir" >&2
    echo "$dir"
  fi
}
