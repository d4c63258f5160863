"""Starting and stopping one private mosquitto (Debian's), the external broker of ``mqttMode`` 2.

Tests, benchmarks and the README demo use it: :class:`Mosquitto` writes a config under a base
directory (one listener on 127.0.0.1 and a free port, anonymous clients, no persistence), starts
``mosquitto`` as a child, waits until the port answers, and stops it by PID. It can be stopped and
started again on the same port, to play a broker restart.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from cores.runtime.upstream import free_port

BINARY = "/usr/sbin/mosquitto"


class MosquittoMissing(RuntimeError):
    pass


def binary() -> str:
    found = shutil.which("mosquitto") or (BINARY if Path(BINARY).exists() else None)
    if not found:
        raise MosquittoMissing("mosquitto is not installed (Debian package mosquitto)")
    return found


class Mosquitto:
    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config = base / "mosquitto.conf"
        self.log = base / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.base.mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                               f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice\n")
        self.process = subprocess.Popen([binary(), "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {error.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
