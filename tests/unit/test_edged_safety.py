"""CVE-2026-62369 (path traversal when paths from input are written), aimed at Edged: pod names,
volume files and subPaths never reach outside their directories on the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cores.edge.edged import safety, volumes
from cores.edge.edged.podspec import SpecError


def pod(**meta: Any) -> dict[str, Any]:
    base = {"name": "web", "namespace": "default", "uid": "0f6c4c1e-94f5-4a59-a41e-e3c8a2c1f3b1"}
    return {"metadata": {**base, **meta}, "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "v", "emptyDir": {}}]}}


@pytest.mark.parametrize("meta, fragment", [
    ({"uid": "../../etc"}, "uid"), ({"uid": "a/b"}, "uid"), ({"uid": ""}, "uid"),
    ({"namespace": "../x"}, "namespace"), ({"name": "a/../../b"}, "name"), ({"name": "A B"}, "name"),
])
def test_cve_2026_62369_a_pod_whose_names_are_paths_is_not_run(meta: dict[str, Any], fragment: str) -> None:
    assert fragment in safety.identity_error(pod(**meta))
    assert safety.identity_error(pod()) == ""
    evil = pod()
    evil["spec"]["volumes"] = [{"name": "../../../etc", "emptyDir": {}}]
    assert "volume name" in safety.identity_error(evil)
    evil = pod()
    evil["spec"]["containers"] = [{"name": "../c"}]
    assert "container name" in safety.identity_error(evil)


@pytest.mark.parametrize("path", ["../escape", "a/../../escape", "/etc/passwd", "..hidden", "", "a\x00b", "x" * 5000])
def test_cve_2026_62369_volume_files_never_leave_their_volume(tmp_path: Path, path: str) -> None:
    target = tmp_path / "vol"
    with pytest.raises(SpecError) as raised:
        volumes.write_atomically(target, {path: (b"owned", 0o644)})
    assert raised.value.reason == "FailedMount"
    assert not (tmp_path / "escape").exists() and not target.exists()


def test_a_configmap_item_path_is_checked_where_it_is_written(tmp_path: Path) -> None:
    spec = {"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../../../../tmp/owned"}]}}
    evil = pod()
    evil["spec"]["volumes"] = [spec]
    with pytest.raises(SpecError):
        volumes.prepare(str(tmp_path), evil, lambda kind, name: {"data": {"k": "x"}}, "127.0.0.1", "")
    assert not list(tmp_path.rglob("owned"))
    assert volumes.write_atomically(tmp_path / "ok", {"dir/file": (b"fine", 0o644)})
    assert (tmp_path / "ok" / "dir" / "file").read_bytes() == b"fine"


def test_cve_2026_62369_sub_path_cannot_climb_or_follow_a_symlink_out(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "link").symlink_to("/etc")  # what a container may leave in its emptyDir
    spec = {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}
    for sub_path in ("../../etc", "/etc", "link"):
        container = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/m", "subPath": sub_path}]}
        with pytest.raises(SpecError):
            volumes.mounts(container, spec, {"v": volume})
    fine = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/m", "subPath": "data/inner"}]}
    [mount] = volumes.mounts(fine, spec, {"v": volume})
    assert Path(mount.host_path) == (volume / "data" / "inner").resolve()
