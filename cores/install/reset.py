"""``keadm reset``: stop what init/join started and remove what they created, and nothing else.

The installation manifest says what that is. On the edge, the pod sandboxes and containers
labelled ``kubeedge.io/node-name=<this node>`` are removed through CRI, so other edges' containers
on a shared containerd stay. A second reset finds no manifest and has nothing to do.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from cores.common import layout as layouts
from cores.common import supervision
from cores.controlplane.launcher import keadm_argv
from cores.install import Manifest

log = logging.getLogger("kubeedge.install")


def detect(data_dir: Path) -> Manifest | None:
    return Manifest.load(data_dir)


def _spec(manifest: Manifest, component: supervision.Component) -> supervision.ServiceSpec:
    layout = layouts.Layout(Path(manifest.config_dir), Path(manifest.data_dir), Path(manifest.log_dir))
    return supervision.ServiceSpec(component=component, config_dir=layout.config_dir, log_dir=layout.log_dir,
                                   run_dir=layout.run_dir, argv=(*keadm_argv(), "run", component))


def stop_components(manifest: Manifest) -> list[str]:
    stopped: list[str] = []
    for component in reversed(manifest.components):
        if supervision.stop(_spec(manifest, component)):
            stopped.append(component)
    return stopped


def remove_node_containers(manifest: Manifest) -> tuple[int, str]:
    """(number removed, problem) for this node's labelled sandboxes and containers."""
    if not manifest.runtime_endpoint or not manifest.node_name:
        return 0, ""
    from cores.edge.cri import CriClient, CriError, labels_for_node

    async def clean() -> int:
        async with CriClient(manifest.runtime_endpoint, timeout=10) as client:
            selector = labels_for_node(manifest.node_name)
            removed = 0
            for container in await client.list_containers(labels=selector):
                await client.stop_container(container.id, 0)
                await client.remove_container(container.id)
                removed += 1
            for sandbox in await client.list_pod_sandbox(labels=selector):
                await client.stop_pod_sandbox(sandbox.id)
                await client.remove_pod_sandbox(sandbox.id)
                removed += 1
            return removed

    try:
        return asyncio.run(clean()), ""
    except CriError as error:
        return 0, str(error)


def reset(manifest: Manifest) -> dict[str, object]:
    stopped = stop_components(manifest)
    containers, problem = remove_node_containers(manifest) if manifest.side == "edge" else (0, "")
    removed = manifest.remove_created()
    return {"stopped": stopped, "containers": containers, "runtime_problem": problem, "removed": removed}
