"""What Edged checks before a pod's fields become paths on the host (path traversal, CVE-2026-62369).

A pod's uid, namespace, name, container and volume names end up in directory names (``pods/<uid>``,
``<ns>_<name>_<uid>`` log directories, ``volumes/<plugin>/<volume>``); ConfigMap keys, ``items[].path``
and ``subPath`` end up as files under a volume. The API server validates all of them, but the edge
trusts no input: a pod whose identity is not made of valid names is not run, and a file path that
is absolute, holds a ``..`` element or leaves its volume through a symlink is refused
(kubelet's ``validatePath`` and its subPath checks).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_UID = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9]{0,63}$")  # uuids, and the hashes static pods use
MAX_PATH = 4096


def is_label(name: str) -> bool:
    return len(name) <= 63 and bool(_DNS_LABEL.match(name))


def is_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def identity_error(pod: Mapping[str, Any]) -> str:
    """Why the pod's names cannot be used on this host ("" when they can)."""
    meta: Mapping[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), Mapping) else {}
    spec: Mapping[str, Any] = pod["spec"] if isinstance(pod.get("spec"), Mapping) else {}
    namespace, name, uid = (str(meta.get(k) or "") for k in ("namespace", "name", "uid"))
    if not is_label(namespace):
        return f"namespace {namespace!r} is not a DNS-1123 label"
    if not is_subdomain(name):
        return f"name {name!r} is not a DNS-1123 subdomain"
    if not _UID.match(uid):
        return f"uid {uid!r} is not a uid"
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            container_name = str(container.get("name") if isinstance(container, Mapping) else "")
            if not is_label(container_name):
                return f"container name {container_name!r} is not a DNS-1123 label"
    for volume in spec.get("volumes") or []:
        volume_name = str(volume.get("name") if isinstance(volume, Mapping) else "")
        if not is_label(volume_name):
            return f"volume name {volume_name!r} is not a DNS-1123 label"
    return ""


def relative_path_error(path: str) -> str:
    """kubelet's ``validatePath``: relative, no ``..`` element, not starting with ``..``, bounded."""
    if not path:
        return "a path may not be empty"
    if len(path) > MAX_PATH:
        return f"a path may not be longer than {MAX_PATH} characters"
    if "\x00" in path:
        return "a path may not contain NUL"
    if os.path.isabs(path):
        return f"path {path!r} must be relative"
    if ".." in path.split("/"):
        return f"path {path!r} may not contain '..'"
    if path.startswith(".."):
        return f"path {path!r} may not start with '..'"
    return ""


def within(base: Path, candidate: Path) -> bool:
    """Whether ``candidate``, symlinks resolved, is ``base`` or below it."""
    root, target = base.resolve(), candidate.resolve()
    return target == root or root in target.parents
