"""MetaServer on upstream's dummy interface (``requireAuthorization``), inside a network namespace
the test creates, so the host's interfaces stay untouched: ``edge-dummy0`` is made with
169.254.30.10 (``lo`` holds it where the kernel has no dummy driver), and MetaServer answers
HTTPS there as on its own address."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.netns import NetworkNamespace, Unavailable
from tests.timeouts import scaled

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import asyncio, json, ssl, sys, urllib.request
    from pathlib import Path
    from cores.edge.metamanager.metaserver import MetaServer
    from cores.edge.metamanager.metatls import serving_context
    from cores.edge.metamanager.store import MetaStore

    base = Path(sys.argv[1])
    settings = {"tlsCaFile": str(base / "ca" / "rootCA.crt"), "tlsCertFile": str(base / "certs" / "server.crt"),
                "dummyServer": "169.254.30.10:10561"}

    async def main():
        store = MetaStore(base / "edge.db")
        async def db(call, *args):
            return call(*args)
        context, ca = serving_context(settings, "127.0.0.1")
        server = MetaServer("127.0.0.1:10560", db, store, ssl_context=context)
        await server.start(settings["dummyServer"])
        client = ssl.create_default_context(cafile=str(ca))
        answers = {}
        for url in ("https://169.254.30.10:10561/version", "https://127.0.0.1:10560/version"):
            def get(u=url):
                with urllib.request.urlopen(u, context=client, timeout=10) as response:
                    return response.status, json.loads(response.read())["gitVersion"]
            answers[url] = await asyncio.to_thread(get)
        await server.stop()
        print(json.dumps(answers))

    asyncio.run(main())
''')


def test_metaserver_answers_on_the_dummy_interface(tmp_path: Path) -> None:
    try:
        space = NetworkNamespace.create(third_octet=79)
    except Unavailable as why:
        pytest.skip(str(why))
    try:
        script = tmp_path / "dummy.py"
        script.write_text(SCRIPT)
        done = subprocess.run([*space.prefix(), sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                              timeout=scaled(60), cwd=Path(__file__).resolve().parents[2], check=False)
        assert done.returncode == 0, done.stderr
        answers = json.loads(done.stdout.strip().splitlines()[-1])
        assert all(status == 200 and version.startswith("v1.") for status, version in answers.values()), answers
        shown = subprocess.run([*space.prefix(), "ip", "-o", "addr", "show"], capture_output=True, text=True, check=False)
        holder = next(line.split()[1] for line in shown.stdout.splitlines() if "169.254.30.10/32" in line)
        assert holder in ("edge-dummy0", "lo"), shown.stdout  # lo where the kernel has no dummy driver (this VM's)
        host = subprocess.run(["ip", "-o", "link", "show", "edge-dummy0"], capture_output=True, text=True, check=False)
        assert host.returncode != 0  # made in the namespace only
    finally:
        space.delete()
