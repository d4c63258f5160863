"""An asyncio CRI v1 client: one HTTP/2 connection over a unix socket, one method per RPC.

Built on grpclib (pure Python over ``h2``) rather than grpcio: same wire protocol, a third of
the memory (numbers in :mod:`cores.edge.cri`). Methods take and return the generated
``runtime.v1`` messages, except where a small record reads better (version, status, exec).
Every failure is a :class:`CriError` carrying the gRPC status; a runtime that is not there is
a :class:`RuntimeUnavailable` whose message names the endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpclib.client
import grpclib.const
import grpclib.exceptions
import h2.exceptions

from cores.edge.cri import api_grpc
from cores.edge.cri import api_pb2 as api
from cores.edge.cri.errors import CriError, RuntimeUnavailable

# The CRI version we speak, sent in VersionRequest (kubelet sends its own API version here).
CRI_API_VERSION = "v1"

Reply = TypeVar("Reply")


@dataclasses.dataclass(frozen=True)
class RuntimeVersion:
    runtime_name: str          # "containerd"
    runtime_version: str       # "1.6.20~ds1"
    runtime_api_version: str   # "v1"


@dataclasses.dataclass(frozen=True)
class RuntimeCondition:
    type: str
    status: bool
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class RuntimeStatus:
    conditions: tuple[RuntimeCondition, ...]
    info: Mapping[str, str]

    def is_true(self, condition: str) -> bool:
        return any(c.type == condition and c.status for c in self.conditions)

    @property
    def runtime_ready(self) -> bool:
        return self.is_true("RuntimeReady")

    @property
    def network_ready(self) -> bool:
        return self.is_true("NetworkReady")


@dataclasses.dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


def socket_path(endpoint: str) -> str:
    """``unix:///run/x.sock`` (or a bare path) -> ``/run/x.sock``; only unix sockets are supported."""
    if endpoint.startswith("unix://"):
        return endpoint[len("unix://"):]
    if endpoint.startswith("/"):
        return endpoint
    raise ValueError(f"unsupported CRI endpoint {endpoint!r}: expected unix:///path/to/socket")


class CriClient:
    """CRI RuntimeService and ImageService at ``endpoint``; ``timeout`` bounds every call (seconds)."""

    def __init__(self, endpoint: str, timeout: float = 10.0) -> None:
        self.endpoint = endpoint if endpoint.startswith("unix://") else f"unix://{socket_path(endpoint)}"
        self.timeout = timeout
        self._channel = grpclib.client.Channel(path=socket_path(endpoint))
        self._runtime = api_grpc.RuntimeServiceStub(self._channel)
        self._images = api_grpc.ImageServiceStub(self._channel)

    async def close(self) -> None:
        self._channel.close()

    async def __aenter__(self) -> CriClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        await self.close()

    # -- runtime -------------------------------------------------------------------------------

    async def version(self) -> RuntimeVersion:
        reply = await self._call(self._runtime.Version, api.VersionRequest(version=CRI_API_VERSION))
        return RuntimeVersion(reply.runtime_name, reply.runtime_version, reply.runtime_api_version)

    async def status(self, verbose: bool = False) -> RuntimeStatus:
        reply = await self._call(self._runtime.Status, api.StatusRequest(verbose=verbose))
        conditions = tuple(RuntimeCondition(c.type, c.status, c.reason, c.message) for c in reply.status.conditions)
        return RuntimeStatus(conditions, dict(reply.info))

    # -- pod sandboxes -------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: api.PodSandboxConfig, runtime_handler: str = "") -> str:
        """Create and start a sandbox; its id."""
        request = api.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        return (await self._call(self._runtime.RunPodSandbox, request)).pod_sandbox_id

    async def stop_pod_sandbox(self, pod_sandbox_id: str) -> None:
        await self._call(self._runtime.StopPodSandbox, api.StopPodSandboxRequest(pod_sandbox_id=pod_sandbox_id))

    async def remove_pod_sandbox(self, pod_sandbox_id: str) -> None:
        await self._call(self._runtime.RemovePodSandbox, api.RemovePodSandboxRequest(pod_sandbox_id=pod_sandbox_id))

    async def pod_sandbox_status(self, pod_sandbox_id: str, verbose: bool = False) -> api.PodSandboxStatusResponse:
        request = api.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id, verbose=verbose)
        return await self._call(self._runtime.PodSandboxStatus, request)

    async def list_pod_sandbox(self, labels: Mapping[str, str] | None = None, state: int | None = None,
                               pod_sandbox_id: str = "") -> list[api.PodSandbox]:
        """Sandboxes whose labels include all of ``labels`` (and in ``state``, e.g. ``api.SANDBOX_READY``)."""
        sandbox_filter = api.PodSandboxFilter(id=pod_sandbox_id, label_selector=dict(labels or {}))
        if state is not None:
            sandbox_filter.state.state = state  # type: ignore[assignment]
        reply = await self._call(self._runtime.ListPodSandbox, api.ListPodSandboxRequest(filter=sandbox_filter))
        return list(reply.items)

    # -- containers ----------------------------------------------------------------------------

    async def create_container(self, pod_sandbox_id: str, config: api.ContainerConfig,
                               sandbox_config: api.PodSandboxConfig) -> str:
        """Create a container in the sandbox (``sandbox_config`` is the one it was run with); its id."""
        request = api.CreateContainerRequest(pod_sandbox_id=pod_sandbox_id, config=config, sandbox_config=sandbox_config)
        return (await self._call(self._runtime.CreateContainer, request)).container_id

    async def start_container(self, container_id: str) -> None:
        await self._call(self._runtime.StartContainer, api.StartContainerRequest(container_id=container_id))

    async def stop_container(self, container_id: str, timeout: int) -> None:
        """SIGTERM (or the image's stop signal), SIGKILL after ``timeout`` seconds; this call waits for it."""
        request = api.StopContainerRequest(container_id=container_id, timeout=timeout)
        await self._call(self._runtime.StopContainer, request, extra_time=timeout)

    async def remove_container(self, container_id: str) -> None:
        await self._call(self._runtime.RemoveContainer, api.RemoveContainerRequest(container_id=container_id))

    async def list_containers(self, labels: Mapping[str, str] | None = None, pod_sandbox_id: str = "",
                              state: int | None = None, container_id: str = "") -> list[api.Container]:
        """Containers whose labels include all of ``labels``, optionally in one sandbox or state."""
        container_filter = api.ContainerFilter(id=container_id, pod_sandbox_id=pod_sandbox_id,
                                               label_selector=dict(labels or {}))
        if state is not None:
            container_filter.state.state = state  # type: ignore[assignment]
        reply = await self._call(self._runtime.ListContainers, api.ListContainersRequest(filter=container_filter))
        return list(reply.containers)

    async def container_status(self, container_id: str, verbose: bool = False) -> api.ContainerStatusResponse:
        request = api.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return await self._call(self._runtime.ContainerStatus, request)

    async def update_container_resources(self, container_id: str, linux: api.LinuxContainerResources) -> None:
        request = api.UpdateContainerResourcesRequest(container_id=container_id, linux=linux)
        await self._call(self._runtime.UpdateContainerResources, request)

    async def reopen_container_log(self, container_id: str) -> None:
        await self._call(self._runtime.ReopenContainerLog, api.ReopenContainerLogRequest(container_id=container_id))

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: int = 10) -> ExecResult:
        """Run ``cmd`` in the container and collect its output; the runtime kills it after ``timeout`` s."""
        request = api.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        reply = await self._call(self._runtime.ExecSync, request, extra_time=timeout)
        return ExecResult(reply.exit_code, reply.stdout, reply.stderr)

    # -- streaming and stats ---------------------------------------------------------------------

    async def exec_url(self, container_id: str, cmd: Sequence[str], *, tty: bool, stdin: bool,
                       stdout: bool, stderr: bool) -> str:
        """The runtime's streaming-server URL that runs ``cmd`` once a client connects to it."""
        request = api.ExecRequest(container_id=container_id, cmd=list(cmd), tty=tty, stdin=stdin,
                                  stdout=stdout, stderr=stderr)
        return str((await self._call(self._runtime.Exec, request)).url)

    async def attach_url(self, container_id: str, *, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> str:
        request = api.AttachRequest(container_id=container_id, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)
        return str((await self._call(self._runtime.Attach, request)).url)

    async def port_forward_url(self, pod_sandbox_id: str, ports: Sequence[int] = ()) -> str:
        request = api.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=list(ports))
        return str((await self._call(self._runtime.PortForward, request)).url)

    async def list_container_stats(self, pod_sandbox_id: str = "") -> list[api.ContainerStats]:
        request = api.ListContainerStatsRequest(filter=api.ContainerStatsFilter(pod_sandbox_id=pod_sandbox_id))
        return list((await self._call(self._runtime.ListContainerStats, request)).stats)

    # -- images --------------------------------------------------------------------------------

    async def list_images(self, image: str = "") -> list[api.Image]:
        request = api.ListImagesRequest(filter=api.ImageFilter(image=api.ImageSpec(image=image)))
        return list((await self._call(self._images.ListImages, request)).images)

    async def image_status(self, image: str) -> api.Image | None:
        """The image, or None when the runtime does not have it."""
        reply = await self._call(self._images.ImageStatus, api.ImageStatusRequest(image=api.ImageSpec(image=image)))
        return reply.image if reply.HasField("image") else None

    async def pull_image(self, image: str, auth: api.AuthConfig | None = None,
                         sandbox_config: api.PodSandboxConfig | None = None, timeout: float = 300.0) -> str:
        """Pull ``image``; the image reference (id) the runtime stored."""
        request = api.PullImageRequest(image=api.ImageSpec(image=image), auth=auth, sandbox_config=sandbox_config)
        return (await self._call(self._images.PullImage, request, extra_time=timeout)).image_ref

    async def remove_image(self, image: str) -> None:
        await self._call(self._images.RemoveImage, api.RemoveImageRequest(image=api.ImageSpec(image=image)))

    # -- one call ------------------------------------------------------------------------------

    async def _call(self, method: Any, request: Any, extra_time: float = 0) -> Any:
        name = method.name.lstrip("/")
        try:
            return await method(request, timeout=self.timeout + extra_time)
        except grpclib.exceptions.GRPCError as error:
            if error.status is grpclib.const.Status.UNAVAILABLE:
                raise RuntimeUnavailable(self.endpoint, name, error.message or "unavailable") from error
            raise CriError(name, error.status.name, error.status.value, error.message or "") from error
        except (OSError, grpclib.exceptions.StreamTerminatedError, h2.exceptions.ProtocolError) as error:
            raise RuntimeUnavailable(self.endpoint, name, _describe(error)) from error
        except asyncio.TimeoutError as error:
            raise CriError(name, "DEADLINE_EXCEEDED", grpclib.const.Status.DEADLINE_EXCEEDED.value,
                           f"no answer within {self.timeout + extra_time:g} s") from error


def _describe(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError):
        return f"no socket at {error.filename or 'the path'}" if error.filename else "no such socket"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
