"""The local OCI image archives (cores.runtime.images): layout, digests, reproducibility."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from cores.runtime import images

APPLETS = ["sh", "sleep", "echo"]


@pytest.fixture()
def fake_busybox(tmp_path: Path) -> Path:
    path = tmp_path / "busybox"
    path.write_bytes(b"\x7fELF not really busybox")
    path.chmod(0o755)
    return path


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(files: dict[str, bytes], digest: str) -> bytes:
    return files["blobs/sha256/" + digest.split(":")[1]]


def test_archive_has_oci_index_docker_manifest_and_digest_named_blobs(tmp_path: Path, fake_busybox: Path) -> None:
    built = images.build_archive(images.ImageSpec("localhost/busybox:local", fake_busybox), tmp_path / "bb.tar", APPLETS)
    files = read_archive(built.archive)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]

    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    assert entry["digest"] == built.manifest_digest
    assert entry["annotations"]["io.containerd.image.name"] == "localhost/busybox:local"
    assert entry["size"] == len(blob(files, built.manifest_digest))

    manifest = json.loads(blob(files, built.manifest_digest))
    assert manifest["config"] == {"mediaType": images.MEDIA_CONFIG, "digest": built.config_digest,
                                  "size": len(blob(files, built.config_digest))}
    assert manifest["layers"] == [{"mediaType": images.MEDIA_LAYER, "digest": built.layer_digest,
                                   "size": len(blob(files, built.layer_digest))}]

    config = json.loads(blob(files, built.config_digest))
    # An uncompressed layer: its diff_id is its digest.
    assert config["rootfs"] == {"type": "layers", "diff_ids": [built.layer_digest]}
    assert config["os"] == "linux" and config["architecture"] == images.oci_architecture()
    assert config["config"]["Cmd"] == ["sh"]

    [docker] = json.loads(files["manifest.json"])
    assert docker["RepoTags"] == ["localhost/busybox:local"]
    assert sha(files[docker["Config"]]) == built.config_digest
    assert [sha(files[layer]) for layer in docker["Layers"]] == [built.layer_digest]


def test_layer_holds_busybox_and_applet_symlinks(tmp_path: Path, fake_busybox: Path) -> None:
    built = images.build_archive(images.ImageSpec("localhost/busybox:local", fake_busybox), tmp_path / "bb.tar", APPLETS)
    layer = blob(read_archive(built.archive), built.layer_digest)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("bin/busybox").read() == fake_busybox.read_bytes()  # type: ignore[union-attr]
    assert members["bin/busybox"].mode == 0o755
    for applet in APPLETS:
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())


def test_pause_image_runs_sleep_forever(tmp_path: Path, fake_busybox: Path) -> None:
    _, pause = images.standard_images(fake_busybox)
    built = images.build_archive(pause, tmp_path / "pause.tar", APPLETS)
    config = json.loads(blob(read_archive(built.archive), built.config_digest))
    assert config["config"]["Entrypoint"] == ["sleep", "2147483647"]
    assert "Cmd" not in config["config"]
    assert pause.name == images.PAUSE_IMAGE == "localhost/pause:local"


def test_same_input_gives_same_digests(tmp_path: Path, fake_busybox: Path) -> None:
    spec = images.ImageSpec("localhost/busybox:local", fake_busybox)
    first = images.build_archive(spec, tmp_path / "a.tar", APPLETS)
    second = images.build_archive(spec, tmp_path / "b.tar", list(reversed(APPLETS)))
    assert (first.manifest_digest, first.layer_digest) == (second.manifest_digest, second.layer_digest)
    assert first.archive.read_bytes() == second.archive.read_bytes()


def test_real_busybox_applets_are_listed() -> None:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.skip("busybox-static is not installed")
    applets = images.busybox_applets(busybox)
    assert {"sh", "sleep", "echo"} <= set(applets) and "busybox" not in applets
