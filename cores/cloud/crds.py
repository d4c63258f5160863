"""Upstream KubeEdge's CRDs (ObjectSync and the others CloudCore and upstream's cloudcore list), created when missing."""

from __future__ import annotations

import yaml

import templates
from cores.cloud.kube import Kube, KubeError

# ObjectSync first (CloudHub needs it before the first push), then every other upstream CRD
# (devices, rules, operations jobs, apps, policy): upstream cloudcore lists them all at start.
CRD_FILES = ("objectsyncs.yaml", "clusterobjectsyncs.yaml", "devices.yaml", "devicemodels.yaml", "devicestatuses.yaml",
             "rules.yaml", "ruleendpoints.yaml", "nodeupgradejobs.yaml", "imageprepulljobs.yaml", "configupdatejobs.yaml",
             "nodegroups.yaml", "edgeapplications.yaml", "serviceaccountaccesses.yaml")


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
