"""IptablesManager: the DNAT that lets a real kube-apiserver reach edge pods' logs, exec and stats.

kube-apiserver dials ``<node InternalIP>:<kubeletEndpoint port>`` for ``kubectl logs``; an edge
node is not reachable there, so every TCP connection to a CloudCore's tunnel port is DNATed to
that CloudCore's stream server (upstream's ``internal`` mode, in the CloudCore process; see
:mod:`cores.cloud.iptablesmanager.rules` for the rules and :mod:`cores.cloud.tunnelport` for
the record they come from). The embedded control plane does not need it: it calls the stream
server directly, so ``keadm init`` turns this module on only for a real cluster.

At start the chain is flushed (rules of a CloudCore that is gone leave with it), then every
:data:`RECONCILE_SECONDS`, and at once when the record changes, the chain and its two jumps are
made when missing (someone may have flushed them), each CloudCore's rule is added when missing,
and the rules of CloudCores that left the record are deleted. ``mode: external`` leaves all
this to upstream's iptables-manager DaemonSet. Rules stay when CloudCore stops, as upstream's.

``iptables`` runs as a subprocess with an argument list (never a shell) and ``-w``: the xtables
lock is shared with kube-proxy and others. A missing binary, or no permission, is one error line
with the fix, and the module keeps trying; CloudCore's other modules are not affected.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from cores.beehive import Context
from cores.cloud import tunnelport
from cores.cloud.informer import Informer
from cores.cloud.iptablesmanager import rules
from cores.cloud.kube import Kube
from cores.common.config import Config
from cores.common.tasks import TaskSupervisor

log = logging.getLogger("kubeedge.iptablesmanager")

RECONCILE_SECONDS = 10.0  # upstream's period
COMMAND_TIMEOUT = 30.0
LOCK_WAIT_SECONDS = "5"


class IptablesError(Exception):
    pass


class Iptables:
    """``iptables -t nat`` as argument lists."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    async def run(self, *args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            self.binary, "-w", LOCK_WAIT_SECONDS, "-t", rules.TABLE, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                _, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise IptablesError(f"iptables {' '.join(args)} did not finish within {COMMAND_TIMEOUT:g}s") from None
        return int(process.returncode or 0), err.decode("utf-8", "replace").strip()

    async def must(self, *args: str) -> None:
        code, err = await self.run(*args)
        if code != 0:
            raise IptablesError(f"iptables -t {rules.TABLE} {' '.join(args)}: {err or f'exit {code}'}")

    async def ensure_chain(self, chain: str) -> None:
        code, err = await self.run("-N", chain)
        if code != 0 and "exists" not in err:
            raise IptablesError(f"iptables -t {rules.TABLE} -N {chain}: {err or f'exit {code}'}")

    async def ensure_rule(self, chain: str, rule: rules.Rule) -> bool:
        """Append ``rule`` unless it is there (``-C``, as upstream's EnsureRule); True when added."""
        code, _ = await self.run("-C", chain, *rule)
        if code == 0:
            return False
        await self.must("-A", chain, *rule)
        return True

    async def delete_rule(self, chain: str, rule: rules.Rule) -> None:
        code, _ = await self.run("-C", chain, *rule)
        if code == 0:
            await self.must("-D", chain, *rule)


class IptablesManager:
    name = "iptablesManager"
    group = "iptablesManager"

    def __init__(self, config: Config, kube: Kube) -> None:
        settings = config.modules.iptablesManager
        self.mode = str(settings.get("mode") or "internal")
        self.stream_port = int(config.modules.cloudStream.get("streamPort") or 10003)
        self.kube = kube
        self.applied: set[rules.Rule] = set()
        self.changed = asyncio.Event()
        self.informer: Informer | None = None
        self.tasks = TaskSupervisor(self.name)
        self._last_error = ""

    async def start(self, ctx: Context) -> None:
        try:
            if self.mode != "internal":
                log.info("iptables manager in %s mode: the DNAT rules are left to upstream's iptables-manager", self.mode)
            else:
                self.informer = Informer(self.kube, tunnelport.PATH, self._on_record,
                                         query=[("fieldSelector", f"metadata.name={tunnelport.CONFIGMAP}")])
                self.tasks.keep(self.informer.run, "informer-tunnelport")
                self.tasks.keep(self._reconcile_loop, "reconcile")
            while True:
                await ctx.receive(self.name)  # nothing is addressed to us; keep the mailbox empty
        finally:
            if self.informer is not None:
                self.informer.stop()
            await self.tasks.close()

    async def _on_record(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self.changed.set()

    async def _reconcile_loop(self) -> None:
        assert self.informer is not None
        iptables: Iptables | None = None
        flushed = False
        await self.informer.synced.wait()
        while True:
            try:
                if iptables is None:
                    found = shutil.which("iptables")
                    if found is None:
                        raise IptablesError("iptables is not on PATH: install it (Debian: apt install iptables); "
                                            "until then a real kube-apiserver cannot reach edge pods' logs and exec")
                    iptables = Iptables(found)
                if not flushed:
                    await iptables.ensure_chain(rules.CHAIN)
                    await iptables.must("-F", rules.CHAIN)
                    flushed = True
                await self.reconcile(iptables)
                self._last_error = ""
            except tunnelport.RecordError as error:
                self._report(f"the tunnel-port record cannot be read, rules left as they are: {error}")
            except (IptablesError, OSError) as error:
                self._report(str(error))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), RECONCILE_SECONDS)
            except TimeoutError:
                pass

    async def reconcile(self, iptables: Iptables) -> None:
        assert self.informer is not None
        record = tunnelport.record_of(self.informer.get(f"{tunnelport.NAMESPACE}/{tunnelport.CONFIGMAP}"))
        await iptables.ensure_chain(rules.CHAIN)
        for source in rules.JUMP_FROM:
            await iptables.ensure_rule(source, rules.jump_rule())
        desired = rules.dnat_rules(record, self.stream_port)
        for rule in sorted(desired):
            if await iptables.ensure_rule(rules.CHAIN, rule):
                log.info("DNAT %s added", rules.describe(rule))
            self.applied.add(rule)  # one by one: a pass that fails halfway still knows what it made
        for rule in sorted(self.applied - desired):
            await iptables.delete_rule(rules.CHAIN, rule)
            self.applied.discard(rule)
            log.info("DNAT %s deleted: its CloudCore left the tunnel-port record", rules.describe(rule))

    def _report(self, message: str) -> None:
        """Log a failure once, not every period."""
        if message != self._last_error:
            log.error("%s", message)
            self._last_error = message
