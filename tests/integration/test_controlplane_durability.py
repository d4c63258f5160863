"""Concurrent writers and watchers, kill -9 of the server mid-stream, restart: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from cores.common.supervision import status
from cores.controlplane import launcher
from cores.controlplane.store import Store, Transaction
from tests.integration.conftest import start_controlplane
from tests.timeouts import scaled

SOAK_SECONDS = float(os.environ.get("KUBEEDGE_SOAK_SECONDS", "60"))
WRITERS, WATCHERS = 10, 5
NAMESPACE = "soak"


class Writer(threading.Thread):
    def __init__(self, index: int, kubeconfig: Path, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.index, self.stop_event = index, stop
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.acked: dict[str, str] = {}  # configmap name -> last value the server acknowledged
        self.writes = 0
        self.revisions: set[int] = set()  # resourceVersions of the writes the server acknowledged

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.api.api_client.close()

    def _loop(self) -> None:
        count = 0
        while not self.stop_event.is_set():
            name = f"w{self.index}-{count % 20}"
            value = f"{count}"
            try:
                self.revisions.add(self._write(name, value))
                self.acked[name] = value
                self.writes += 1
                count += 1
            except (ApiException, urllib3.exceptions.HTTPError, OSError):
                time.sleep(0.2)  # server down: retry the same write

    def _write(self, name: str, value: str) -> int:
        body = {"metadata": {"name": name}, "data": {"v": value}}
        if name in self.acked:
            return int(self.api.replace_namespaced_config_map(name, NAMESPACE, body).metadata.resource_version)
        try:
            return int(self.api.create_namespaced_config_map(NAMESPACE, body).metadata.resource_version)
        except ApiException as error:
            if error.status != 409:
                raise
            # an earlier try did land
            return int(self.api.replace_namespaced_config_map(name, NAMESPACE, body).metadata.resource_version)


class Watcher(threading.Thread):
    def __init__(self, kubeconfig: Path, since: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.since, self.stop_event = since, stop
        self.revisions: list[int] = []
        self.reconnects = 0

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.api.api_client.close()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                for event in watch.Watch().stream(self.api.list_namespaced_config_map, NAMESPACE,
                                                  resource_version=self.since, timeout_seconds=5):
                    revision = event["object"].metadata.resource_version
                    self.revisions.append(int(revision))
                    self.since = revision
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError):
                self.reconnects += 1
                time.sleep(0.2)


@pytest.mark.slow
def test_writers_watchers_and_kill_9(tmp_path: Path) -> None:
    plane = start_controlplane(tmp_path)
    setup = client.CoreV1Api(config.new_client_from_config(config_file=str(plane.kubeconfig)))
    try:
        setup.create_namespace({"metadata": {"name": NAMESPACE}})
        # the namespace controller's writes (default ServiceAccount, kube-root-ca.crt) come first,
        # so the only writes from `since` on are the writers'
        deadline = time.monotonic() + scaled(10)
        while not (setup.list_namespaced_service_account(NAMESPACE).items
                   and setup.list_namespaced_config_map(NAMESPACE, field_selector="metadata.name=kube-root-ca.crt").items):
            assert time.monotonic() < deadline, "the namespace controller did not fill the namespace"
            time.sleep(0.1)
        since = setup.list_namespaced_config_map(NAMESPACE).metadata.resource_version
        stop, stop_watching = threading.Event(), threading.Event()
        writers = [Writer(i, plane.kubeconfig, stop) for i in range(WRITERS)]
        watchers = [Watcher(plane.kubeconfig, since, stop_watching) for _ in range(WATCHERS)]
        for thread in [*watchers, *writers]:
            thread.start()
        time.sleep(SOAK_SECONDS / 2)
        pid = status(plane.spec).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        plane = launcher.start(plane.config_path, plane.spec.log_dir, plane.spec.run_dir, readiness_timeout=scaled(30))
        time.sleep(SOAK_SECONDS / 2)
        stop.set()
        for thread in writers:
            thread.join(scaled(30))
        final = setup.list_namespaced_config_map(NAMESPACE)
        newest = max(int(cm.metadata.resource_version) for cm in final.items)
        # The watchers (the Python client decodes every event) may lag the writers; let them drain.
        deadline = time.monotonic() + scaled(120)
        while time.monotonic() < deadline and any(not w.revisions or w.revisions[-1] < newest for w in watchers):
            time.sleep(0.5)
        stop_watching.set()
        for thread in watchers:
            thread.join(scaled(30))

        stored = {cm.metadata.name: cm.data["v"] for cm in final.items if cm.metadata.name != "kube-root-ca.crt"}
        for writer in writers:
            assert writer.acked, f"writer {writer.index} never got a write through"
            for name, value in writer.acked.items():
                assert int(stored[name]) >= int(value), f"acknowledged write {name}={value} lost (stored {stored.get(name)})"
        total = sum(w.writes for w in writers)
        assert total >= 20 * WRITERS, f"only {total} writes went through"
        # Controllers write other objects too, so revisions of configmaps are not contiguous; what
        # must hold is that every watcher saw every acknowledged write, in order, exactly once.
        acknowledged = set().union(*(w.revisions for w in writers))
        last = max(int(cm.metadata.resource_version) for cm in final.items)
        for watcher in watchers:
            assert watcher.reconnects >= 1, "the kill should have broken every watch"
            revisions = watcher.revisions
            assert revisions == sorted(set(revisions)), "events out of order or duplicated"
            assert revisions[-1] >= last, f"watcher stopped at {revisions[-1]}, last write was {last}"
            missed = sorted(acknowledged - set(revisions))
            assert not missed, f"watcher missed acknowledged writes: {missed[:5]}"
    finally:
        setup.api_client.close()
        launcher.stop(plane)


SYNCHRONOUS_FULL = 2  # what ``PRAGMA synchronous`` returns for FULL


def test_store_connections_sync_every_commit(tmp_path: Path) -> None:
    """Every connection of the store (the writer and each reader) runs WAL with synchronous=FULL,
    so the COMMIT that precedes an acknowledgement has fsynced the WAL."""

    def pragmas(db: sqlite3.Connection) -> tuple[str, int]:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0]), int(db.execute("PRAGMA synchronous").fetchone()[0])

    async def scenario(store: Store) -> tuple[tuple[str, int], tuple[str, int], list[tuple[str, int]]]:
        def write(txn: Transaction) -> tuple[str, int]:
            txn.put("/api/configmaps/default/a", {"metadata": {"name": "a", "namespace": "default"}})
            return pragmas(txn._db)  # the connection the transaction (and its COMMIT) runs on

        in_transaction = await store.transact(write)
        assert await store.get("/api/configmaps/default/a") is not None
        # several reads at once, so more than one reader connection of the pool is opened
        readers = await asyncio.gather(*(store._read(pragmas) for _ in range(8)))
        return pragmas(store._writer), in_transaction, readers

    store = Store(tmp_path / "state.db", lambda obj, plural: {})
    try:
        writer, in_transaction, readers = asyncio.run(scenario(store))
    finally:
        store.close()
    assert writer == ("wal", SYNCHRONOUS_FULL)
    assert in_transaction == ("wal", SYNCHRONOUS_FULL)
    assert readers and all(reader == ("wal", SYNCHRONOUS_FULL) for reader in readers)
