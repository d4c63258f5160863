"""`keadm debug diagnose` findings that need no cloud or runtime, each caused for real on local files and sockets:
a crash-looping EdgeCore's log, a taken node name, an expired join token, a locked and a corrupt database,
and a clock skewed against a (local, real TLS) bootstrap server."""

from __future__ import annotations

import datetime
import email.utils
import http.server
import socket
import sqlite3
import ssl
import threading
from pathlib import Path

from certs import token as tokens
from certs import x509 as certs
from cores.common import layout as layouts
from cores.install.debug import EdgeSite, diagnose


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def site(tmp_path: Path, *, token: str = "", https_port: int = 1) -> EdgeSite:
    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    document = layouts.edgecore_document(layout, node_name="edge-1", cloud_host="127.0.0.1", token=token,
                                         https_port=https_port, node_ip="127.0.0.1")
    layouts.write(layout.edgecore_config, document)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    return EdgeSite.load(layout.edgecore_config, layout.log_dir)


def test_a_crash_loop_and_a_taken_name_are_read_from_the_log(tmp_path: Path) -> None:
    edge = site(tmp_path)
    starts = "".join(f"2026-12-03T10:00:0{i}Z INFO  core: edgecore starting with modules: edged\n"
                     f"2026-12-03T10:00:0{i}Z ERROR core: edgecore: module edgehub failed: boom\n" for i in range(7))
    (edge.log_dir / "edgecore.log").write_text(starts + "2026-12-03T10:00:09Z ERROR edgehub: bootstrap refused: node name 'edge-1' is already taken in "
                                               "the cluster: choose another name\n")
    process = diagnose.edgecore_process(edge)[0]
    assert not process.ok and "crash-looping (7 starts" in process.summary and "boom" in process.evidence
    taken = diagnose.node_name_taken(edge)
    assert taken and "is taken" in taken[0].summary and "--edgenode-name" in taken[0].fix


def test_an_expired_join_token(tmp_path: Path) -> None:
    ca, key = certs.create_ca()
    old = tokens.create_token(certs.cert_to_der(ca), certs.key_to_sec1_der(key), datetime.timedelta(hours=1),
                              now=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2))
    finding = diagnose.token(site(tmp_path, token=old))[0]
    assert not finding.ok and "expired" in finding.summary and "keadm gettoken" in finding.fix
    fresh = tokens.create_token(certs.cert_to_der(ca), certs.key_to_sec1_der(key))
    assert diagnose.token(site(tmp_path / "fresh", token=fresh))[0].ok


def test_a_locked_and_a_corrupt_database(tmp_path: Path) -> None:
    edge = site(tmp_path)
    edge.database.parent.mkdir(parents=True, exist_ok=True)
    holder = sqlite3.connect(edge.database, isolation_level=None)
    holder.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, type TEXT, value TEXT)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO meta VALUES ('a', 'b', 'c')")
    try:
        found = {f.check: f for f in diagnose.storage(edge)}
        assert not found["database"].ok and "locked" in found["database"].summary
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert {f.check: f for f in diagnose.storage(edge)}["database"].ok
    edge.database.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    found = {f.check: f for f in diagnose.storage(edge)}
    assert not found["database"].ok and "corrupt" in found["database"].summary


def test_a_clock_skewed_against_the_clouds(tmp_path: Path) -> None:
    ca, ca_key = certs.create_ca()
    server_key = certs.generate_key()
    server_cert = certs.create_server_cert(ca, ca_key, server_key, ip_addresses=["127.0.0.1"], dns_names=[])
    (tmp_path / "s.crt").write_bytes(certs.cert_to_pem(server_cert))
    (tmp_path / "s.key").write_bytes(certs.key_to_pem(server_key))
    skewed = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10),
                                         usegmt=True)

    class Bootstrap(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            return skewed

        def do_GET(self) -> None:
            body = certs.cert_to_der(ca)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Bootstrap)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        edge = site(tmp_path / "edge", https_port=port)
        Path(str(edge.hub.tlsCaFile)).parent.mkdir(parents=True, exist_ok=True)
        Path(str(edge.hub.tlsCaFile)).write_bytes(certs.cert_to_pem(ca))
        found = {f.check: f for f in diagnose.ca_and_clock(edge)}
        assert found["cloud CA"].ok
        assert not found["clock"].ok and "ahead of the cloud" in found["clock"].summary and "chrony" in found["clock"].fix
    finally:
        server.shutdown()
        server.server_close()
