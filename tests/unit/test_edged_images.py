"""Image choice and pulls: imagePullPolicy, autonomy when the registry is away, kubelet's pull back-off."""

from __future__ import annotations

from typing import Any

import pytest

from cores.edge.cri import CriError, api
from cores.edge.edged.backoff import Backoff
from cores.edge.edged.events import EventRecorder
from cores.edge.edged.images import ImagePuller

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {}}


class Events(EventRecorder):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def pod(self, pod: Any, kind: str, reason: str, message: str, container: str = "") -> None:
        self.seen.append(reason)


class Images:
    """CRI's image calls: what is present, and whether a pull works."""

    def __init__(self, present: bool, pull_works: bool) -> None:
        self.present, self.pull_works, self.pulls = present, pull_works, 0

    async def image_status(self, image: str) -> api.Image | None:
        return api.Image(id="sha256:local") if self.present else None

    async def pull_image(self, image: str) -> str:
        self.pulls += 1
        if not self.pull_works:
            raise CriError("runtime.v1.ImageService/PullImage", "UNKNOWN", 2, "no registry")
        return "sha256:pulled"


def puller(cri: Images) -> tuple[ImagePuller, Events, Backoff]:
    events, backoff = Events(), Backoff()
    return ImagePuller(cri, backoff, events), events, backoff  # type: ignore[arg-type]


@pytest.mark.parametrize(("policy", "present", "ref", "reason", "pulls"), [
    ("Never", False, None, "ErrImageNeverPull", 0),
    ("Never", True, "sha256:local", "", 0),
    ("IfNotPresent", True, "sha256:local", "", 0),
    ("IfNotPresent", False, "sha256:pulled", "", 1),
    ("Always", True, "sha256:pulled", "", 1),
])
async def test_pull_policy(policy: str, present: bool, ref: str | None, reason: str, pulls: int) -> None:
    cri = Images(present, pull_works=True)
    images, events, _ = puller(cri)
    choice = await images.choose(POD, {"name": "main", "image": "localhost/busybox:local", "imagePullPolicy": policy})
    assert (choice.ref, choice.reason, cri.pulls) == (ref, reason, pulls)


async def test_always_runs_the_local_image_when_the_registry_is_away() -> None:
    cri = Images(present=True, pull_works=False)
    images, events, backoff = puller(cri)
    choice = await images.choose(POD, {"name": "main", "image": "localhost/busybox:latest"})
    assert choice.ref == "sha256:local" and not backoff.entries
    assert events.seen == ["Pulling", "Failed"]


async def test_a_missing_image_that_fails_to_pull_backs_off() -> None:
    cri = Images(present=False, pull_works=False)
    images, events, backoff = puller(cri)
    spec = {"name": "main", "image": "registry.example/app:1"}
    first = await images.choose(POD, spec)
    assert (first.ref, first.reason) == (None, "ErrImagePull") and "no registry" in first.message
    assert "u1/main/pull" in backoff.entries
    second = await images.choose(POD, spec)
    assert (second.reason, cri.pulls) == ("ImagePullBackOff", 1) and 9 < second.retry_in <= 10
    assert events.seen == ["Pulling", "Failed", "BackOff"]
