"""Upstream cloud pushes (pod.jsonl, configmap-update.jsonl, device.jsonl) replayed against our real EdgeCore.

A test WebSocket server stands in for the cloud over mutual TLS; our EdgeCore must ack every
push as the real edgecore did ("OK", same resource, parent = the push), and only after the
object is in its SQLite database. Device pushes also reach DeviceTwin's ``device`` table, with
the Device's desired value as the twin's expected value.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import ssl
import threading
from pathlib import Path
from typing import Any

import websockets

from certs import x509 as certs
from cores.common import layout as layouts
from cores.common.supervision import ServiceSpec, start, stop
from cores.controlplane.launcher import keadm_argv
from tests.integration.conftest import free_port
from tests.captures import UPSTREAM
from tests.timeouts import scaled

NODE = "peer-edge-cap"


def recorded_pushes(names: tuple[str, ...] = ("pod.jsonl", "configmap-update.jsonl")) -> list[dict[str, Any]]:
    pushes = []
    for name in names:
        for line in (UPSTREAM / name).read_text().splitlines():
            record = json.loads(line)
            frame = record["frame"]
            if record["dir"] == "cloud->edge" and frame["route"].get("operation") in ("insert", "update", "delete") \
                    and frame["route"].get("group") == "resource" and "/secret/" not in frame["route"]["resource"]:
                pushes.append(frame)
    return pushes


def make_pki(directory: Path) -> dict[str, Path]:
    ca, ca_key = certs.create_ca()
    server_key, node_key = certs.generate_key(), certs.generate_key()
    server = certs.create_server_cert(ca, ca_key, server_key, ip_addresses=["127.0.0.1"], dns_names=["localhost"])
    node = certs.sign_node_csr(certs.csr_to_der(certs.create_node_csr(NODE, node_key)), ca, ca_key, NODE)
    files = {"ca": directory / "ca.crt", "server": directory / "server.crt", "server_key": directory / "server.key",
             "node": directory / "node.crt", "node_key": directory / "node.key"}
    directory.mkdir(parents=True, exist_ok=True)
    files["ca"].write_bytes(certs.cert_to_pem(ca))
    files["server"].write_bytes(certs.cert_to_pem(server))
    files["server_key"].write_bytes(certs.key_to_pem(server_key))
    files["node"].write_bytes(certs.cert_to_pem(node))
    files["node_key"].write_bytes(certs.key_to_pem(node_key))
    return files


def test_edge_acks_recorded_pushes_after_storing_them(tmp_path: Path) -> None:
    pushes = recorded_pushes()
    assert len(pushes) >= 8
    received, stored_before_ack = replay(tmp_path, pushes)
    acks = {f["header"]["parent_msg_id"]: f for f in received if f["route"].get("operation") == "response"}
    for push in pushes:
        ack = acks[push["header"]["msg_id"]]
        assert ack["content"] == "OK"
        assert (ack["route"]["source"], ack["route"]["group"], ack["route"]["resource"]) == (
            push["route"]["source"], "resource", push["route"]["resource"])
    assert all(stored_before_ack), "an ack came before the object was committed"


def test_edge_takes_recorded_device_pushes_into_its_twin(tmp_path: Path) -> None:
    """device.jsonl's membership updates and Device/DeviceModel pushes, in the recorded order."""
    frames = [json.loads(line)["frame"] for line in (UPSTREAM / "device.jsonl").read_text().splitlines()
              if json.loads(line)["dir"] == "cloud->edge"]
    device_frames = [f for f in frames if f["route"]["resource"] == "membership"
                     or "/device/" in f["route"]["resource"] or "/devicemodel/" in f["route"]["resource"]]
    first_round = device_frames[:4]  # membership add, model insert, device insert, device update
    assert [f["route"]["operation"] for f in first_round] == ["update", "insert", "insert", "update"]
    database = tmp_path / "var" / "edgecore.db"

    def twin_rows() -> list[tuple[str, str, str]]:
        with sqlite3.connect(database) as db:
            return [(str(r[0]), str(r[1]), str(r[2])) for r in db.execute("SELECT deviceid, name, expected FROM device_twin")]

    seen: dict[str, Any] = {}
    received, stored_before_ack = replay(tmp_path, device_frames, after=lambda frame: seen.setdefault(
        frame["header"]["msg_id"], (device_ids(database), twin_rows())))
    assert all(stored_before_ack)
    acks = {f["header"]["parent_msg_id"]: f for f in received if f["route"].get("operation") == "response"}
    for frame in device_frames:
        if frame["route"]["resource"] == "membership":
            assert frame["header"]["msg_id"] not in acks  # upstream's edge does not ack membership either
            continue
        ack = acks[frame["header"]["msg_id"]]
        assert ack["content"] == "OK" and ack["route"]["resource"] == frame["route"]["resource"]
    device_insert = first_round[2]
    devices, twins = seen[device_insert["header"]["msg_id"]]
    assert devices == ["default/cap-thermo"]
    assert twins == [("default/cap-thermo", "temperature", "25")]
    assert device_ids(database) == []  # the recording ends with the device deleted


def device_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [str(row[0]) for row in db.execute("SELECT id FROM device")]


def replay(tmp_path: Path, pushes: list[dict[str, Any]], after: Any = None) -> tuple[list[dict[str, Any]], list[bool]]:
    """Send ``pushes`` one by one to a real EdgeCore, each after the previous one's ack (or a short
    pause, for the unacked membership updates); the frames the edge sent, and per acked push
    whether its row was committed before the ack."""
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    received: list[dict[str, Any]] = []
    done = threading.Event()
    stored_before_ack: list[bool] = []
    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    database = layout.data_dir / "edgecore.db"

    def in_database(resource: str) -> bool:
        try:
            with sqlite3.connect(database) as db:
                return db.execute("SELECT 1 FROM meta WHERE key = ?", (resource,)).fetchone() is not None
        except sqlite3.Error:
            return False

    async def cloud(connection: Any) -> None:
        for push in pushes:
            await connection.send(json.dumps(push, separators=(",", ":")) + "\n")
            acked = push["route"]["group"] == "resource"
            while True:
                try:
                    frame = json.loads(await asyncio.wait_for(connection.recv(), scaled(10) if acked else 0.5))
                except TimeoutError:
                    if acked:
                        raise
                    break
                received.append(frame)
                if frame["header"].get("parent_msg_id") == push["header"]["msg_id"]:
                    stored = in_database(push["route"]["resource"])
                    stored_before_ack.append(stored if push["route"]["operation"] != "delete" else not stored)
                    break
            if after is not None:
                await asyncio.sleep(0.3)  # the twin acts on a push after MetaManager's ack
                after(push)
        done.set()

    async def serve() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"]))
        context.load_cert_chain(pki["server"], pki["server_key"])
        context.verify_mode = ssl.CERT_REQUIRED
        async with websockets.serve(cloud, "127.0.0.1", port, ssl=context, ping_interval=None):
            await asyncio.to_thread(done.wait, scaled(60))

    server = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    server.start()
    document = layouts.edgecore_document(layout, node_name=NODE, cloud_host="127.0.0.1", token="", websocket_port=port,
                                         https_port=free_port(), node_ip="127.0.0.1")
    hub = document["modules"]["edgeHub"]
    hub.update(tlsCaFile=str(pki["ca"]), tlsCertFile=str(pki["node"]), tlsPrivateKeyFile=str(pki["node_key"]))
    document["modules"]["edged"]["enable"] = False  # only the link and the store are under test here
    config = layouts.write(layout.edgecore_config, document)
    spec = ServiceSpec(component="edgecore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
                       argv=(*keadm_argv(), "run", "edge", "--config", str(config)), readiness_timeout=scaled(30))
    start(spec)
    try:
        assert done.wait(scaled(60)), "the edge did not ack every push: " + spec.log_file.read_text()[-2000:]
    finally:
        stop(spec)
        server.join(scaled(10))
    return received, stored_before_ack
