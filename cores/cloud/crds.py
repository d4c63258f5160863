"""The CRDs CloudCore relies on (ObjectSync, ClusterObjectSync, devices), created when missing."""

from __future__ import annotations

import yaml

import templates
from cores.cloud.kube import Kube, KubeError

CRD_FILES = ("objectsyncs.yaml", "clusterobjectsyncs.yaml", "devices.yaml", "devicemodels.yaml", "devicestatuses.yaml")


async def ensure_crds(kube: Kube) -> list[str]:
    """Create each CRD that does not exist yet; the names of all of them."""
    names = []
    for file_name in CRD_FILES:
        body = yaml.safe_load(templates.read_text(f"crds/{file_name}"))
        names.append(body["metadata"]["name"])
        try:
            await kube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body)
        except KubeError as error:
            if error.code != 409:
                raise
    return names
