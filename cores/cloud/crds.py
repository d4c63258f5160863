"""The CRDs CloudCore relies on (ObjectSync, ClusterObjectSync, the devices API), created when missing.

``keadm init`` installs them (on the embedded control plane and on a real cluster alike) and
CloudHub makes sure of them at start. A CRD that exists is left as it is, except a devices CRD
that an older keadm of this project installed with an open schema (its stored version declares no
``properties``): that one is replaced by upstream's structural schema, which every object valid
before still satisfies (the Device API of upstream v1beta1). CRDs installed by someone else
(upstream's Helm chart, an operator) are never touched.
"""

from __future__ import annotations

import logging
from typing import Any

import yaml

import templates
from cores.cloud.kube import Kube, KubeError

log = logging.getLogger("kubeedge.crds")

# ObjectSync first (CloudHub needs it before the first push), then every other upstream CRD
# (devices, rules, operations jobs, apps, policy): upstream cloudcore lists them all at start.
CRD_FILES = ("objectsyncs.yaml", "clusterobjectsyncs.yaml", "devices.yaml", "devicemodels.yaml", "devicestatuses.yaml",
             "rules.yaml", "ruleendpoints.yaml", "nodeupgradejobs.yaml", "imageprepulljobs.yaml", "configupdatejobs.yaml",
             "nodegroups.yaml", "edgeapplications.yaml", "serviceaccountaccesses.yaml")
# CRDs an older keadm of ours installed with an open schema, replaced by the structural one
DEVICE_CRD_FILES = frozenset({"devices.yaml", "devicemodels.yaml", "devicestatuses.yaml", "rules.yaml", "ruleendpoints.yaml"})
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def load(file_name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(templates.read_text(f"crds/{file_name}"))
    return body


def _is_open_schema(crd: dict[str, Any]) -> bool:
    """Whether ``crd`` is the schema-less devices CRD this project's older keadm installed."""
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("storage"):
            schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
            return not schema.get("properties") and bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    return False


async def ensure_crds(kube: Kube) -> list[str]:
    """Create each CRD that does not exist yet (and upgrade an older open devices schema); the names of all of them."""
    names = []
    for file_name in CRD_FILES:
        body = load(file_name)
        name = body["metadata"]["name"]
        names.append(name)
        try:
            await kube.request("POST", CRD_PATH, body)
            continue
        except KubeError as error:
            if error.code != 409:
                raise
        if file_name in DEVICE_CRD_FILES:
            await _upgrade_open_schema(kube, name, body)
    return names


async def _upgrade_open_schema(kube: Kube, name: str, body: dict[str, Any]) -> None:
    existing = await kube.request("GET", f"{CRD_PATH}/{name}")
    if not _is_open_schema(existing):
        return
    replacement = {**body, "metadata": {**body["metadata"], "resourceVersion": existing["metadata"].get("resourceVersion", "")}}
    try:
        await kube.request("PUT", f"{CRD_PATH}/{name}", replacement)
    except KubeError as error:
        if error.code != 409:  # changed meanwhile: whoever changed it wins
            raise
        return
    log.info("CRD %s: open schema replaced by the structural schema", name)
