"""Static pod manifests: naming, UID, defaults and errors as kubelet has them; the mirror pod's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cores.edge.edged import static

MANIFEST = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "localhost/busybox:local", "command": ["sleep", "9"]}]}}


def test_static_pod_is_named_for_the_node_bound_and_annotated() -> None:
    pod = static.static_pod(MANIFEST, "/etc/kubeedge/manifests/web.yaml", "edge-1")
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "web-edge-1" and meta["namespace"] == "default" and meta["labels"] == {"app": "web"}
    assert len(meta["uid"]) == 32 and meta["annotations"][static.CONFIG_HASH] == meta["uid"]
    assert meta["annotations"][static.CONFIG_SOURCE] == "file" and meta["annotations"][static.CONFIG_SEEN].endswith("Z")
    assert spec["nodeName"] == "edge-1" and spec["restartPolicy"] == "Always"
    assert {"operator": "Exists", "effect": "NoExecute"} in spec["tolerations"]
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent" and container["terminationMessagePath"] == "/dev/termination-log"
    assert static.is_static(pod) and not static.is_mirror(pod)
    assert MANIFEST["metadata"] == {"name": "web", "labels": {"app": "web"}}, "the manifest itself is left alone"


def test_uid_is_stable_and_follows_content_node_and_file() -> None:
    uid = static.static_pod(MANIFEST, "/m/web.yaml", "edge-1")["metadata"]["uid"]
    assert static.static_pod(json.loads(json.dumps(MANIFEST)), "/m/web.yaml", "edge-1")["metadata"]["uid"] == uid
    changed = json.loads(json.dumps(MANIFEST))
    changed["spec"]["containers"][0]["image"] = "localhost/busybox:other"
    assert static.static_pod(changed, "/m/web.yaml", "edge-1")["metadata"]["uid"] != uid
    assert static.static_pod(MANIFEST, "/m/web.yaml", "edge-2")["metadata"]["uid"] != uid
    assert static.static_pod(MANIFEST, "/m/other.yaml", "edge-1")["metadata"]["uid"] != uid


def test_latest_images_are_pulled_always() -> None:
    manifest = json.loads(json.dumps(MANIFEST))
    manifest["spec"]["containers"][0]["image"] = "docker.io/library/nginx"
    assert static.static_pod(manifest, "/m/x.yaml", "n")["spec"]["containers"][0]["imagePullPolicy"] == "Always"


@pytest.mark.parametrize("document, message", [
    ({"kind": "Deployment", "apiVersion": "apps/v1"}, "not a Pod"),
    ({"kind": "Pod", "apiVersion": "v2", "metadata": {"name": "x"}}, "is not v1"),
    ({"kind": "Pod", "apiVersion": "v1", "metadata": {}}, "metadata.name is missing"),
    ({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}, "name and an image"),
])
def test_unusable_manifests_are_refused_with_the_reason(document: dict, message: str) -> None:
    with pytest.raises(static.ManifestError, match=message):
        static.static_pod(document, "/m/x.yaml", "n")


def test_read_manifests_skips_hidden_and_other_files_and_names_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(json.dumps(MANIFEST))
    (tmp_path / ".web.yaml.swp").write_text("garbage: [")
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "broken.yaml").write_text("kind: Pod\nmetadata: [")
    (tmp_path / "two.yml").write_text("kind: Pod\n---\nkind: Pod\n")
    pods, errors = static.read_manifests(tmp_path, "edge-1")
    assert [p["metadata"]["name"] for p in pods.values()] == ["web-edge-1"]
    assert set(errors) == {str(tmp_path / "broken.yaml"), str(tmp_path / "two.yml")}
    assert "exactly one Pod" in errors[str(tmp_path / "two.yml")]
    assert static.read_manifests(tmp_path / "absent", "edge-1") == ({}, {})


def test_mirror_pod_has_no_uid_carries_the_hash_and_is_owned_by_the_node() -> None:
    pod = static.static_pod(MANIFEST, "/m/web.yaml", "edge-1")
    mirror = static.mirror_pod(pod, "edge-1", "node-uid-1")
    assert "uid" not in mirror["metadata"] and "status" not in mirror
    assert mirror["metadata"]["annotations"][static.CONFIG_MIRROR] == pod["metadata"]["uid"]
    assert mirror["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "edge-1",
                                                      "uid": "node-uid-1", "controller": True}]
    assert static.is_mirror(mirror) and "uid" in pod["metadata"], "the static pod itself is unchanged"


def test_a_manifest_of_the_wrong_shape_is_named_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "a-good.yaml").write_text(json.dumps(MANIFEST))
    (tmp_path / "b-list.yaml").write_text("kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}], tolerations: [oops]}\n")
    (tmp_path / "c-meta.yaml").write_text("kind: Pod\napiVersion: v1\nmetadata: x\n")
    pods, errors = static.read_manifests(tmp_path, "edge-1")
    assert [p["metadata"]["name"] for p in pods.values()] == ["web-edge-1"]
    assert set(errors) == {str(tmp_path / "b-list.yaml"), str(tmp_path / "c-meta.yaml")}
