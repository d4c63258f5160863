"""``keadm ctl``: this node's pods and devices, at the edge machine, through MetaServer and CRI."""

from __future__ import annotations

import sys
from typing import Any

import click

from keadm.debug import DEFAULT_CONFIG, _site
from keadm.main import UserError
from keadm.steps import DEFAULT_LOG_DIR

# -c is the container here, as in kubectl; the config is --config alone
config_option = click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                             type=click.Path(dir_okay=False), help="EdgeCore's config (keadm join writes it).")


@click.group(help="""Work with this edge node's pods and devices, with the cloud reachable or not.

\b
get and describe read from EdgeCore's MetaServer (metaManager.metaServer.enable: true in
edgecore.yaml); logs and exec go to the container runtime directly.
Examples:
  keadm ctl get pods -A                    the pods of this node
  keadm ctl describe pod nginx -n web      a pod's containers, state and conditions
  keadm ctl logs nginx -n web --tail 20    its log, from the runtime
  keadm ctl exec nginx -- cat /etc/hosts   run a command in it
""")
def ctl() -> None:
    pass


def _ctl(config_path: str) -> Any:
    from cores.install.ctl import Ctl

    return Ctl(_site(config_path, DEFAULT_LOG_DIR))


def _fail(error: Exception) -> UserError:
    return UserError(str(error))


@ctl.command(help="""List this node's pods or devices, as kubectl prints them.

\b
Examples:
  keadm ctl get pod                 pods in the default namespace
  keadm ctl get pods -A -o wide
  keadm ctl get device -n factory -l line=3
""")
@click.argument("resource", type=click.Choice(["pod", "pods", "po", "device", "devices"]))
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default="", help="Label selector, as kubectl's.")
@click.option("-o", "--output", default="", type=click.Choice(["", "wide", "json", "yaml"]), help="yaml, json or wide.")
@config_option
def get(resource: str, names: tuple[str, ...], namespace: str, all_namespaces: bool, selector: str, output: str,
        config_path: str) -> None:
    from cores.install.ctl import CtlError

    try:
        text, missing = _ctl(config_path).get(resource, list(names), namespace=namespace, all_namespaces=all_namespaces,
                                              selector=selector, output=output)
    except CtlError as error:
        raise _fail(error) from None
    if text:
        click.echo(text)
    for line in missing:
        click.echo(f"error: {line}", err=True)
    if missing:
        sys.exit(1)


@ctl.command(help="Show one pod or device of this node in detail.")
@click.argument("resource", type=click.Choice(["pod", "pods", "po", "device", "devices"]))
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True)
@config_option
def describe(resource: str, name: str, namespace: str, config_path: str) -> None:
    from cores.install.ctl import CtlError

    try:
        click.echo(_ctl(config_path).describe(resource, name, namespace=namespace))
    except CtlError as error:
        raise _fail(error) from None


@ctl.command(help="""Print a container's log, read through the container runtime (no cloud needed).

\b
Examples:
  keadm ctl logs nginx -n web
  keadm ctl logs nginx -c sidecar --tail 50 -f
""")
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", default="", help="The container (needed when the pod has several).")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the container ends.")
@click.option("--timestamps", is_flag=True, help="Put each line's time in front of it.")
@config_option
def logs(pod: str, namespace: str, container: str, tail: int | None, follow: bool, timestamps: bool, config_path: str) -> None:
    from cores.install.ctl import CtlError, write_stdout

    try:
        _ctl(config_path).logs(pod, namespace=namespace, container=container, tail=tail, follow=follow,
                               timestamps=timestamps, write=write_stdout)
    except CtlError as error:
        raise _fail(error) from None
    except KeyboardInterrupt:
        pass


@ctl.command(context_settings={"ignore_unknown_options": True}, help="""Run a command in a container and print its output;
the exit code is the command's.

\b
Examples:
  keadm ctl exec nginx -- nginx -t
  keadm ctl exec nginx -n web -c sidecar -- sh -c 'ls /data'
""")
@click.argument("pod")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", default="", help="The container (needed when the pod has several).")
@click.option("--timeout", type=click.IntRange(min=1), default=60, show_default=True, help="Seconds before the command is killed.")
@config_option
def exec(pod: str, command: tuple[str, ...], namespace: str, container: str, timeout: int, config_path: str) -> None:  # noqa: A001
    from cores.install.ctl import CtlError

    try:
        stdout, stderr, code = _ctl(config_path).exec(pod, list(command), namespace=namespace, container=container,
                                                      timeout=timeout)
    except CtlError as error:
        raise _fail(error) from None
    sys.stdout.buffer.write(stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(stderr)
    sys.stderr.buffer.flush()
    sys.exit(code)


@ctl.group(help="Restart pods of this node: their containers are stopped and start again by their restart policy.")
def restart() -> None:
    pass


@restart.command("pod", help="""Restart the named pods (through MetaServer, as upstream's keadm ctl restart pod).


Example:
  keadm ctl restart pod nginx web-0 -n web
""")
@click.argument("names", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@config_option
def restart_pod(names: tuple[str, ...], namespace: str, config_path: str) -> None:
    from cores.install.ctl import CtlError

    try:
        done, failed = _ctl(config_path).restart(list(names), namespace=namespace)
    except CtlError as error:
        raise _fail(error) from None
    for line in done:
        click.echo(line)
    for line in failed:
        click.echo(f"error: {line}", err=True)
    if failed:
        sys.exit(1)


@ctl.command(help="""Confirm a node upgrade that waits for it (a NodeUpgradeJob with requireConfirmation).

This EdgeCore runs no upgrade jobs yet, so MetaServer answers, as upstream's does when none waits,
that there are no valid upgrade tasks to execute (exit 1).
Example:
  keadm ctl confirm
""")
@config_option
def confirm(config_path: str) -> None:
    from cores.install.ctl import CtlError

    try:
        _ctl(config_path).confirm()
    except CtlError as error:
        raise _fail(error) from None
    click.echo("node upgrade confirmed")


@ctl.command("unhold-upgrade", help="""Let pods held by the annotation edge.kubeedge.io/hold-upgrade: "true" start.


Edged keeps such a pod Pending (condition HeldUpgrade) until it is unheld here, so an upgrade
happens when the person at the machine says so.
Examples:
  keadm ctl unhold-upgrade pod nginx -n web    one pod
  keadm ctl unhold-upgrade node                every held pod of this node
""")
@click.argument("resource", type=click.Choice(["pod", "node"]))
@click.argument("name", required=False, default="")
@click.option("-n", "--namespace", default="default", show_default=True)
@config_option
def unhold_upgrade(resource: str, name: str, namespace: str, config_path: str) -> None:
    from cores.install.ctl import CtlError

    if resource == "pod" and not name:
        raise UserError("name the pod: keadm ctl unhold-upgrade pod <name> [-n namespace]")
    try:
        click.echo(_ctl(config_path).unhold_upgrade(resource, name, namespace=namespace))
    except CtlError as error:
        raise _fail(error) from None
