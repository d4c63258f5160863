"""The controllers of the embedded control plane, run in its process on its loop.

What kube-controller-manager and kube-scheduler do for the resources this control plane serves,
one small module each: namespaces (default ServiceAccount, ``kube-root-ca.crt``, deletion),
the scheduler, node lifecycle (Unknown on a silent node, never evicting), ReplicaSets,
Deployments, DaemonSets, StatefulSets, Jobs and CronJobs, the Endpoints and EndpointSlices of Services, and
the Events they record. Each reads and writes through the in-process
:class:`~cores.controlplane.api.Api` (so admission, validation and defaults apply as to any
client) and is supervised: a crash is logged and the controller starts again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cores.common.config import Config
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.daemonset import DaemonSetController
from cores.controlplane.controllers.deployment import DeploymentController
from cores.controlplane.controllers.endpoints import EndpointsController
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.controllers.job import CronJobController, JobController
from cores.controlplane.controllers.namespace import NamespaceController
from cores.controlplane.controllers.nodelifecycle import NodeLifecycleController
from cores.controlplane.controllers.replicaset import ReplicaSetController
from cores.controlplane.controllers.scheduler import Scheduler
from cores.controlplane.controllers.statefulset import StatefulSetController


def start(api: Api, config: Config) -> list[asyncio.Task[None]]:
    """Start every controller as a supervised task; cancel the tasks to stop them."""
    settings = config.controllers
    resync = float(settings.resyncPeriodSeconds)
    recorder = EventRecorder(api)
    controllers = {
        "namespace": NamespaceController(api, Path(config.pkiDir) / "ca.crt", resync).run,
        "scheduler": Scheduler(api, recorder, resync).run,
        "nodelifecycle": NodeLifecycleController(api, recorder, float(settings.nodeMonitorGracePeriodSeconds),
                                                 float(settings.nodeMonitorPeriodSeconds)).run,
        "replicaset": ReplicaSetController(api, recorder, resync).run,
        "deployment": DeploymentController(api, recorder, resync).run,
        "daemonset": DaemonSetController(api, recorder, resync).run,
        "statefulset": StatefulSetController(api, recorder, resync).run,
        "job": JobController(api, recorder, resync).run,
        "cronjob": CronJobController(api, recorder, resync).run,
        "endpoints": EndpointsController(api, resync).run,
    }
    return [asyncio.create_task(base.supervise(name, run), name=f"controller-{name}") for name, run in controllers.items()]
