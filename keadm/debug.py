"""``keadm debug``: check, diagnose, collect and get, at an edge machine, with the cloud away or not."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from keadm.main import UserError
from keadm.steps import DEFAULT_CONFIG_DIR, DEFAULT_LOG_DIR

DEFAULT_CONFIG = f"{DEFAULT_CONFIG_DIR}/config/edgecore.yaml"

config_option = click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                             type=click.Path(dir_okay=False), help="EdgeCore's config (keadm join writes it).")
log_dir_option = click.option("--log-dir", default=DEFAULT_LOG_DIR, show_default=True, type=click.Path(file_okay=False),
                              help="Where EdgeCore's log is.")


def _site(config_path: str, log_dir: str) -> Any:
    from cores.install.debug import EdgeSite, NotInstalled

    try:
        return EdgeSite.load(Path(config_path), Path(log_dir))
    except NotInstalled as error:
        raise UserError(str(error)) from None


@click.group(help="""Look at this edge machine: what it knows, what is wrong, what to send with a bug report.

\b
Examples:
  keadm debug check all                  can this machine run EdgeCore? (before keadm join)
  keadm debug diagnose node              what is wrong with this edge, and the fix
  keadm debug diagnose pod nginx -n web  why a pod does not run
  keadm debug get pods -A                pods this edge holds, from its database
  keadm debug collect -o /tmp            an archive for a bug report (no keys, no tokens)
""")
def debug() -> None:
    pass


@debug.command(help="""Check this machine against EdgeCore's needs: all, cpu, mem, disk, dns, network, pid or runtime.

\b
Thresholds are upstream's: >= 1 core and < 90% busy; >= 256 MB memory, 128 MB free; >= 1 GB disk,
512 MB free; >= 5% of pid_max free. 'all' stops at the first failure. Exit code 0 when it passes.
""")
@click.argument("item", type=click.Choice(["all", "cpu", "mem", "disk", "dns", "network", "pid", "runtime"]))
@click.option("-d", "--domain", default="www.github.com", show_default=True, help="dns: the name to resolve.")
@click.option("-D", "--dns-ip", default="", help="dns: ask this resolver (UDP 53) instead of the system's.")
@click.option("-s", "--server", default="", help="network: the cloud's host:port (default: from --config).")
@click.option("--runtime-endpoint", default="", help="runtime: the CRI socket (default: from --config, else containerd's).")
@config_option
def check(item: str, domain: str, dns_ip: str, server: str, runtime_endpoint: str, config_path: str) -> None:
    from cores.install.debug import EdgeSite, NotInstalled
    from cores.install.debug import check as checks

    site = None
    try:
        site = EdgeSite.load(Path(config_path), Path(DEFAULT_LOG_DIR))
    except NotInstalled:
        pass  # checks run before anything is installed
    runs = {
        "cpu": checks.cpu, "mem": checks.mem, "disk": checks.disk, "pid": checks.pid,
        "dns": lambda: checks.dns(domain, dns_ip),
        "network": lambda: checks.network(server or (":".join(map(str, site.websocket_address)) if site else "")),
        "runtime": lambda: checks.runtime(runtime_endpoint or (site.runtime_endpoint if site else
                                                               "unix:///run/containerd/containerd.sock")),
    }
    failed = False
    for name in (checks.ITEMS if item == "all" else (item,)):
        result = runs[name]()
        click.echo(f"{name} check {'succeed' if result.ok else 'failed'}: {result.detail}")
        if not result.ok:
            failed = True
            break
    if failed:
        sys.exit(1)


@debug.command(help="""Find what is wrong with this edge: each finding names the cause, the evidence and the fix.

\b
  node            EdgeCore's process and log, certificate, token, disk, database, runtime
                  and cgroup driver, MQTT broker, the cloud (DNS, TCP, TLS, CA, clock)
  pod NAME [-n]   the node's checks, then the pod from the edge database: stuck containers,
                  ConfigMaps missing here, its conditions
  install         can this machine run EdgeCore (as `keadm debug check all`)
Exit code 0 only when nothing is wrong; -o json for machines. Runs with the cloud away.
""")
@click.argument("target", type=click.Choice(["node", "pod", "install"]))
@click.argument("name", required=False, default="")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@config_option
@log_dir_option
def diagnose(target: str, name: str, namespace: str, output: str, config_path: str, log_dir: str) -> None:
    from cores.install.debug import check as checks
    from cores.install.debug import diagnose as diagnosis
    from cores.install.debug.diagnose import Finding

    findings: list[Finding] = []
    if target == "install":
        for run in (checks.cpu, checks.mem, checks.disk, checks.pid):
            result = run()
            findings.append(Finding(result.item, result.ok, result.detail, "", "" if result.ok else "add resources to this machine"))
    else:
        if target == "pod" and not name:
            raise UserError("diagnose pod needs the pod's name: keadm debug diagnose pod NAME [-n NAMESPACE]")
        site = _site(config_path, log_dir)
        findings = _with_progress(lambda progress: diagnosis.node(site, progress), output)
        if target == "pod":
            findings += diagnosis.pod(site, namespace, name)
    if output == "json":
        click.echo(json.dumps({"ok": all(f.ok for f in findings), "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        _print_findings(findings)
    if not all(f.ok for f in findings):
        sys.exit(1)


def _with_progress(run: Any, output: str) -> Any:
    if output == "json" or not sys.stderr.isatty():
        return run(lambda _: None)
    from rich.console import Console

    with Console(stderr=True).status("diagnosing") as status:
        return run(lambda step: status.update(f"checking {step.replace('_', ' ')}"))


def _print_findings(findings: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=True)
    for heading in ("", "check", "finding", "evidence", "what to do"):
        table.add_column(heading, overflow="fold")
    for finding in findings:
        table.add_row("[green]ok[/]" if finding.ok else "[red]FAIL[/]", finding.check, finding.summary, finding.evidence,
                      finding.fix)
    console = Console(width=max(Console().width, 120))
    console.print(table)
    bad = sum(not f.ok for f in findings)
    console.print("nothing is wrong" if not bad else f"{bad} problem(s) found")


@debug.command(help="""Make an archive for a bug report: system facts, EdgeCore's config (secrets redacted), logs,
a copy of the edge database, public certificates and versions. No private key and no token goes in.
""")
@click.option("-o", "--output-path", default=".", show_default=True, type=click.Path(file_okay=False))
@click.option("-d", "--detail", is_flag=True, help="Whole logs (default: their last 20 MB).")
@config_option
@log_dir_option
def collect(output_path: str, detail: bool, config_path: str, log_dir: str) -> None:
    from cores.install.debug.collect import collect as make_archive
    from keadm import __version__

    archive = make_archive(_site(config_path, log_dir), Path(output_path), detail, version=f"keadm {__version__}")
    click.echo(str(archive))


@debug.command(help="""Print objects from this edge's database, as kubectl prints them (the cloud is not asked).

\b
Resources: all, pods (po), nodes (no), services (svc), endpoints (ep), configmaps (cm), secrets,
leases, devices.
Examples:
  keadm debug get pods -A
  keadm debug get cm my-config -n web -o yaml
  keadm debug get pods -l app=nginx -o wide
""")
@click.argument("resource")
@click.argument("name", required=False, default="")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default="", help="Label selector, as kubectl's.")
@click.option("-o", "--output", default="", type=click.Choice(["", "wide", "json", "yaml"]), help="yaml, json or wide.")
@click.option("-p", "--edgedb-path", default="", help="The edge database (default: dataSource from --config).")
@config_option
def get(resource: str, name: str, namespace: str, all_namespaces: bool, selector: str, output: str, edgedb_path: str,
        config_path: str) -> None:
    from cores.install.debug.get import GetError
    from cores.install.debug.get import get as read_objects

    database = Path(edgedb_path) if edgedb_path else _site(config_path, DEFAULT_LOG_DIR).database
    try:
        click.echo(read_objects(database, resource, name, namespace=namespace, all_namespaces=all_namespaces,
                                selector=selector, output=output))
    except GetError as error:
        raise UserError(str(error)) from None
