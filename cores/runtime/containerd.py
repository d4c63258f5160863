"""Starting, using and stopping one private containerd, with its local images.

Tests, benchmarks and the README demo share this: :class:`Containerd` writes a config under a
base directory, starts Debian's ``containerd`` in its own session (tracked by a pid file that
also records the process start time, so a recycled pid is never taken for ours), waits until it
answers, imports ``localhost/busybox:local`` and ``localhost/pause:local``, and on
:meth:`Containerd.stop` removes every pod it runs before stopping it by PID. Several EdgeCores
share one containerd; each labels what it creates.

Stopping is more than a signal because containerd leaves things behind: shims outlive it (so
pods are removed first through CRI, and stray shims of this socket are killed afterwards), the
sandbox network namespaces are mounts under the state dir, and the CNI bridge and empty pod
cgroups stay after their last pod is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from cores.runtime import config, images

log = logging.getLogger("kubeedge.runtime")

# Binaries we run, and the Debian package that installs each.
REQUIRED_BINARIES = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
}
REQUIRED_FILES = {
    Path("/bin/busybox"): "busybox-static",
    config.CNI_BIN_DIR / "bridge": "containernetworking-plugins",
    config.CNI_BIN_DIR / "host-local": "containernetworking-plugins",
    config.CNI_BIN_DIR / "loopback": "containernetworking-plugins",
}
# sockaddr_un.sun_path is 108 bytes; containerd also appends ".ttrpc".
_MAX_SOCKET_PATH = 100


class RuntimeSetupError(Exception):
    """containerd could not be prepared, started or stopped; the message says what to do."""


class MissingBinary(RuntimeSetupError):
    pass


class AlreadyRunning(RuntimeSetupError):
    pass


@dataclasses.dataclass(frozen=True)
class _PidRecord:
    pid: int
    start_time: int  # field 22 of /proc/<pid>/stat, in clock ticks since boot

    def alive(self) -> bool:
        return _process_start_time(self.pid) == self.start_time


def find_binaries() -> dict[str, Path]:
    """Paths of containerd, ctr and runc; :class:`MissingBinary` names the Debian packages to install."""
    found: dict[str, Path] = {}
    missing: set[str] = set()
    for name, package in REQUIRED_BINARIES.items():
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if path is None:
            missing.add(package)
        else:
            found[name] = Path(path)
    missing.update(package for path, package in REQUIRED_FILES.items() if not path.exists())
    if missing:
        packages = " ".join(sorted(missing))
        raise MissingBinary(f"the container runtime needs Debian packages that are not installed: {packages} "
                            f"(as root: apt-get install -y {packages})")
    return found


class Containerd:
    """One private containerd whose config, root, state and socket live under ``base_dir``."""

    def __init__(self, base_dir: Path) -> None:
        self.layout = config.Layout(Path(base_dir).absolute())
        self._record: _PidRecord | None = None
        # Kept while containerd runs: a Popen dropped early warns "subprocess is still running".
        self._child: subprocess.Popen[bytes] | None = None

    # -- what callers use ----------------------------------------------------------------------

    @property
    def socket(self) -> Path:
        return self.layout.socket

    @property
    def endpoint(self) -> str:
        return f"unix://{self.layout.socket}"

    @property
    def pid(self) -> int | None:
        record = self._record or _read_pid_record(self.layout.pid_file)
        return record.pid if record is not None and record.alive() else None

    def start(self, timeout: float = 30.0, *, with_images: bool = True) -> None:
        """Start containerd, wait until it answers, and (by default) import the local images."""
        binaries = find_binaries()
        if len(str(self.layout.socket)) > _MAX_SOCKET_PATH:
            raise RuntimeSetupError(f"socket path {self.layout.socket} is too long for a unix socket; use a shorter directory")
        existing = _read_pid_record(self.layout.pid_file)
        if existing is not None and existing.alive():
            raise AlreadyRunning(f"containerd for {self.layout.base} already runs as pid {existing.pid}; "
                                 f"stop it first (python -m cores.runtime stop --dir {self.layout.base})")
        self._write_config(binaries["runc"])
        self.layout.socket.unlink(missing_ok=True)
        started = time.monotonic()
        with open(self.layout.log_file, "ab") as log_output:
            child = subprocess.Popen(
                [str(binaries["containerd"]), "--config", str(self.layout.config_file)],
                stdin=subprocess.DEVNULL, stdout=log_output, stderr=log_output, start_new_session=True,
            )
        self._child = child
        start_time = _process_start_time(child.pid)
        self._record = _PidRecord(child.pid, start_time if start_time is not None else -1)
        _write_atomically(self.layout.pid_file, json.dumps(dataclasses.asdict(self._record)))
        try:
            self._wait_until_answering(child, timeout)
            log.info("containerd pid %d answers on %s after %.2f s", child.pid, self.layout.socket,
                     time.monotonic() - started)
            if with_images:
                self.ensure_images()
        except BaseException:
            self.stop()
            raise

    def ensure_images(self) -> list[images.BuiltImage]:
        """Build and import ``localhost/busybox:local`` and ``localhost/pause:local``; an image already
        there with the same manifest digest (same busybox) is not imported again."""
        present = {}
        for line in self.ctr("images", "ls").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                present[fields[0]] = fields[2]  # REF TYPE DIGEST SIZE ...
        built = []
        for spec in images.standard_images():
            archive = self.layout.images_dir / (spec.name.split("/", 1)[1].replace(":", "_") + ".tar")
            image = images.build_archive(spec, archive)
            if present.get(spec.name) != image.manifest_digest:
                self.ctr("images", "import", str(archive))
            built.append(image)
        return built

    def ctr(self, *args: str, namespace: str = "k8s.io", timeout: float = 60.0) -> str:
        """Run ``ctr`` against this containerd; its stdout, or :class:`RuntimeSetupError` with stderr."""
        argv = ["ctr", "--address", str(self.layout.socket), "--namespace", namespace, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeSetupError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def stop(self, grace: float = 10.0) -> None:
        """Remove all pods, stop containerd by PID (SIGTERM, then SIGKILL), and clean what it leaves.

        Idempotent: stopping a stopped containerd only cleans up again.
        """
        record = self._record or _read_pid_record(self.layout.pid_file)
        cgroups: set[str] = set()
        if record is not None and record.alive():
            cgroups = self._remove_all_pods()
        if record is not None:
            _terminate(record, grace)
        cgroups.update(self._kill_stray_shims())
        _unmount_under(self.layout.base)
        _delete_link(self.layout.bridge)
        _remove_cgroups(cgroups)
        self.layout.pid_file.unlink(missing_ok=True)
        self.layout.socket.unlink(missing_ok=True)
        if self._child is not None:
            self._child.poll()  # already reaped by _terminate; this only settles the Popen
            self._child = None
        self._record = None

    def __enter__(self) -> Containerd:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    # -- inside --------------------------------------------------------------------------------

    def _write_config(self, runc: Path) -> None:
        for directory in (self.layout.root, self.layout.state, self.layout.cni_conf_dir,
                          self.layout.cni_data_dir, self.layout.images_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.layout.config_file.write_text(config.containerd_toml(self.layout, runc))
        (self.layout.cni_conf_dir / "10-kubeedge-py.conflist").write_text(config.cni_conflist(self.layout))

    def _wait_until_answering(self, child: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if child.poll() is not None:
                raise RuntimeSetupError(f"containerd exited with code {child.returncode} at start; "
                                        f"last lines of {self.layout.log_file}:\n{_tail(self.layout.log_file)}")
            if self.layout.socket.exists():
                try:
                    self.ctr("version", timeout=max(1.0, deadline - time.monotonic()))
                    return
                except (RuntimeSetupError, subprocess.TimeoutExpired):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeSetupError(f"containerd did not answer on {self.layout.socket} within {timeout:g} s; "
                                        f"see {self.layout.log_file}")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _remove_all_pods(self) -> set[str]:
        """Stop and remove every pod sandbox through CRI (this tears down its network too), then any
        task left in any namespace through ctr. Returns the cgroup paths those pods used."""
        cgroups: set[str] = set()
        try:
            cgroups = asyncio.run(_remove_pods_through_cri(self.endpoint))
        except Exception as error:  # the fallback below still runs
            log.warning("removing pods through CRI failed: %s", error)
        try:
            for namespace in self.ctr("namespaces", "ls", "-q").split():
                for task in self.ctr("tasks", "ls", "-q", namespace=namespace).split():
                    cgroups.update(self._cgroup_of(task, namespace))
                    subprocess.run(["ctr", "--address", str(self.layout.socket), "-n", namespace,
                                    "tasks", "delete", "--force", task], capture_output=True, timeout=30)
        except (RuntimeSetupError, subprocess.TimeoutExpired) as error:
            log.warning("removing tasks through ctr failed: %s", error)
        return cgroups

    def _cgroup_of(self, container: str, namespace: str) -> set[str]:
        try:
            spec = json.loads(self.ctr("containers", "info", container, namespace=namespace)).get("Spec") or {}
        except (RuntimeSetupError, ValueError, subprocess.TimeoutExpired):
            return set()
        path = (spec.get("linux") or {}).get("cgroupsPath")
        return {path} if path else set()

    def _kill_stray_shims(self) -> set[str]:
        """SIGKILL the shims (and what they run) started by this containerd that outlived it
        (containerd was killed, or CRI could not remove the pods); the cgroups their pods used."""
        cgroups: set[str] = set()
        killed: list[int] = []
        for pid in _pids_with_argv(lambda argv: bool(argv) and "containerd-shim" in os.path.basename(argv[0])
                                   and str(self.layout.socket) in argv):
            argv = _read_argv(pid)
            descendants = _descendants(pid)
            for descendant in descendants:
                cgroups.update(_cgroups_of(descendant))
            for victim in [*descendants, pid]:
                _kill(victim, signal.SIGKILL)
                killed.append(victim)
            _shim_socket(self.layout.socket, argv).unlink(missing_ok=True)
            log.warning("killed stray shim pid %d of %s", pid, self.layout.socket)
        deadline = time.monotonic() + 5
        while any(_process_start_time(pid) is not None for pid in killed) and time.monotonic() < deadline:
            time.sleep(0.02)
        return cgroups


async def _remove_pods_through_cri(endpoint: str) -> set[str]:
    from cores.edge.cri import CriClient

    cgroups: set[str] = set()
    async with CriClient(endpoint, timeout=30) as cri:
        for container in await cri.list_containers():
            cgroups.update(_cgroup_from_info((await cri.container_status(container.id, verbose=True)).info))
            await cri.stop_container(container.id, timeout=0)
            await cri.remove_container(container.id)
        for sandbox in await cri.list_pod_sandbox():
            cgroups.update(_cgroup_from_info((await cri.pod_sandbox_status(sandbox.id, verbose=True)).info))
            await cri.stop_pod_sandbox(sandbox.id)
            await cri.remove_pod_sandbox(sandbox.id)
    return cgroups


def _cgroup_from_info(info: Mapping[str, str]) -> set[str]:
    try:
        verbose = json.loads(dict(info).get("info", "{}"))
        path = verbose["runtimeSpec"]["linux"]["cgroupsPath"]
    except (KeyError, TypeError, ValueError):
        return set()
    return {path} if path else set()


# -- processes ---------------------------------------------------------------------------------


def _terminate(record: _PidRecord, grace: float) -> None:
    if not record.alive():
        _reap(record.pid)
        return
    _kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not record.alive():
            return
        time.sleep(0.02)
    log.warning("containerd pid %d ignored SIGTERM for %g s; sending SIGKILL", record.pid, grace)
    _kill(record.pid, signal.SIGKILL)
    for _ in range(250):
        _reap(record.pid)
        if not record.alive():
            return
        time.sleep(0.02)
    raise RuntimeSetupError(f"containerd pid {record.pid} survived SIGKILL")


def _kill(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie (and look alive)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _read_proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2:].split()


def _process_start_time(pid: int) -> int | None:
    fields = _read_proc_stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def _pids_with_argv(match: Callable[[list[str]], bool]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _read_argv(int(entry.name))
        if argv and match(argv):
            pids.append(int(entry.name))
    return pids


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _read_proc_stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _read_argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _shim_socket(containerd_socket: Path, shim_argv: list[str]) -> Path:
    """Where a runc v2 shim listens: containerd 1.6 hard-codes /run/containerd/s/<sha256 of
    "<containerd socket>/<namespace>/<id>">. A killed shim leaves it behind."""
    options = dict(zip(shim_argv[1::2], shim_argv[2::2])) if shim_argv else {}
    key = os.path.join(str(containerd_socket), options.get("-namespace", ""), options.get("-id", ""))
    return Path("/run/containerd/s", hashlib.sha256(key.encode()).hexdigest())


def _cgroups_of(pid: int) -> set[str]:
    """The cgroup paths of a process (one per v1 hierarchy, usually all the same), except the root."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return set()
    return {line.split(":", 2)[2] for line in lines if line.count(":") >= 2 and line.split(":", 2)[2] != "/"}


def _read_pid_record(path: Path) -> _PidRecord | None:
    try:
        data = json.loads(path.read_text())
        return _PidRecord(int(data["pid"]), int(data["start_time"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- what containerd leaves behind -------------------------------------------------------------


def _unmount_under(base: Path) -> None:
    """Detach every mount below ``base`` (sandbox netns files, overlay rootfs), deepest first."""
    prefix = str(base.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].encode().decode("unicode_escape")  # octal escapes like \040
        if target.startswith(prefix):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        result = subprocess.run(["umount", "-l", target], capture_output=True, text=True)
        if result.returncode != 0:
            log.warning("could not unmount %s: %s", target, result.stderr.strip())


def _delete_link(name: str) -> None:
    if Path("/sys/class/net", name).exists():
        result = subprocess.run(["ip", "link", "delete", name], capture_output=True, text=True)
        if result.returncode != 0:
            log.warning("could not delete the bridge %s: %s", name, result.stderr.strip())


def _remove_cgroups(paths: set[str], root: Path = Path("/sys/fs/cgroup"), patience: float = 5.0) -> None:
    """rmdir the (now empty) cgroups pods used, and their parents that became empty, in every
    hierarchy (cgroup v1 has one per controller). Shared ones that still hold pods stay.

    A killed process keeps its cgroup busy until its parent reaps it; after a stray shim is
    killed that parent is PID 1, which may take a moment, hence a few retries on EBUSY."""
    if not paths or not root.is_dir():
        return
    hierarchies = [root] if (root / "cgroup.controllers").exists() else [
        h for h in root.iterdir() if h.is_dir() and not h.is_symlink()]
    pending = {(hierarchy, Path(path.strip("/"))) for hierarchy in hierarchies for path in paths}
    deadline = time.monotonic() + patience
    while pending:
        pending = {(hierarchy, relative) for hierarchy, relative in pending if _rmdir_upwards(hierarchy, relative)}
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for hierarchy, relative in pending:
        log.warning("cgroup %s is still busy; left in place", hierarchy / relative)


def _rmdir_upwards(hierarchy: Path, relative: Path) -> bool:
    """Remove ``relative`` and its empty parents; True if the leaf itself is still busy."""
    leaf = True
    while relative.parts:
        try:
            (hierarchy / relative).rmdir()
        except FileNotFoundError:
            pass  # runc removed it already; its parent may still be ours to remove
        except OSError as error:
            # The leaf busy: retry later. A parent busy or not empty: it holds other pods.
            return leaf and error.errno == errno.EBUSY
        leaf = False
        relative = relative.parent
    return False
