"""Many hollow edges in one process: each the real EdgeHub and MetaManager with the hollow Edged.

Every node has its own beehive context, certificate, SQLite file and mTLS WebSocket session, so
to CloudCore it is indistinguishable from a real EdgeCore; only pods are not run. Library code
for the density benchmark: ``python -m cores.edge.fleet --count 250 --prefix hollow-a ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from cores.beehive import Context, ModuleRunner
from cores.common import config as configs
from cores.common import layout as layouts
from cores.common import logs

log = logging.getLogger("kubeedge.fleet")


def node_config(base: Path, name: str, cloud_host: str, websocket_port: int, https_port: int, token: str) -> configs.Config:
    layout = layouts.Layout(base / name / "etc", base / name / "var", base / name / "log")
    document = layouts.edgecore_document(layout, node_name=name, cloud_host=cloud_host, token=token,
                                         websocket_port=websocket_port, https_port=https_port, node_ip="127.0.0.1")
    document["modules"]["edgeStream"]["enable"] = False  # hollow nodes run no containers to stream
    return configs.Config(configs.overlay(configs.default_document(configs.EDGECORE, hostname=name), document),
                          source=str(layout.edgecore_config))


async def run_node(config: configs.Config, stop: asyncio.Event) -> None:
    from cores.edge.edgehub import EdgeHub
    from cores.edge.hollow import HollowEdged
    from cores.edge.metamanager import MetaManager

    runner = ModuleRunner(Context(), [EdgeHub(config), MetaManager(config), HollowEdged(config)])
    await runner.run(stop)


async def run_fleet(names: list[str], base: Path, cloud_host: str, websocket_port: int, https_port: int,
                    token: str, ramp_per_second: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = []
    for name in names:
        config = node_config(base, name, cloud_host, websocket_port, https_port, token)
        tasks.append(asyncio.create_task(run_node(config, stop), name=name))
        await asyncio.sleep(1 / ramp_per_second)  # do not bootstrap every node in the same instant
    log.info("fleet of %d hollow edges is running", len(names))
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="node names are <prefix>-<n>")
    parser.add_argument("--dir", type=Path, required=True, help="per-node certificates and SQLite files go here")
    parser.add_argument("--cloud-host", default="127.0.0.1")
    parser.add_argument("--websocket-port", type=int, default=10000)
    parser.add_argument("--https-port", type=int, default=10002)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ramp", type=float, default=50.0, help="nodes started per second")
    args = parser.parse_args()
    logs.setup(0)
    logging.getLogger("kubeedge").setLevel(logging.WARNING)  # thousands of nodes: only problems
    logging.getLogger("kubeedge.fleet").setLevel(logging.INFO)
    names = [f"{args.prefix}-{index}" for index in range(args.count)]
    asyncio.run(run_fleet(names, args.dir, args.cloud_host, args.websocket_port, args.https_port, args.token, args.ramp))


if __name__ == "__main__":
    main()
