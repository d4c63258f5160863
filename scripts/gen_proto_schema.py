"""Regenerates cores/common/schemas/protobuf.json.gz: the protobuf field numbers of the kinds served.

Usage:
    python scripts/gen_proto_schema.py API APIMACHINERY APIEXTENSIONS [OUT]

Each source is a checkout or a bare git directory (read at HEAD) of kubernetes/api,
kubernetes/apimachinery and kubernetes/apiextensions-apiserver. OUT defaults to the package's
schemas/protobuf.json.gz.

Facts come from two places: each package's ``generated.proto`` (messages, field numbers, types,
repeated, maps) and its Go types (``*.go``), whose struct tags give the JSON name of each protobuf
field number (``XPreserveUnknownFields`` is ``x-kubernetes-preserve-unknown-fields`` in JSON and
``xKubernetesPreserveUnknownFields`` in proto), whether Go's JSON drops it when zero (``omitempty``
on a value, not a pointer), and whether it is an embedded struct that Go's JSON inlines
(``VolumeSource`` in ``Volume``). Only the API groups the control plane serves
(cores.controlplane.registry.BUILTINS) and the apimachinery packages they use are written. The table:

    {"sources": {repo: commit}, "apiVersions": {"apps/v1": "k8s.io.api.apps.v1", ...},
     "messages": {"k8s.io.api.core.v1.ConfigMap": {"1": FIELD, ...}, ...},
     "wrappers": [message names whose JSON form is their repeated ``items`` field]}
    FIELD = [json name, type, repeated (0/1), map [key type, value type] or 0, omit when zero (0/1), inline (0/1)]

A type is a scalar kind (``string``, ``int32``, ``bytes``...), a message's full name, or ``map``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cores.controlplane.registry import BUILTINS  # noqa: E402

OUT = ROOT / "cores" / "common" / "schemas" / "protobuf.json.gz"
APIMACHINERY_PACKAGES = ("pkg/apis/meta/v1", "pkg/api/resource", "pkg/util/intstr", "pkg/runtime",
                         "pkg/runtime/schema")
APIEXTENSIONS_PACKAGES = ("pkg/apis/apiextensions/v1",)
SCALARS = {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
           "sfixed32", "sfixed64", "bool", "string", "bytes"}


class Source:
    """Files of a checkout or of a bare git directory's HEAD."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.bare = not os.path.isdir(os.path.join(location, ".git")) \
            and os.path.isfile(os.path.join(location, "HEAD"))

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.location}", *args], check=True, capture_output=True,
                              text=True).stdout

    def commit(self) -> str:
        git_dir = self.location if self.bare else os.path.join(self.location, ".git")
        try:
            return subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], check=True,
                                  capture_output=True, text=True).stdout.strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            return "unknown"

    def listdir(self, directory: str) -> list[str]:
        if self.bare:
            listing = self._git("ls-tree", "--name-only", f"HEAD:{directory}")
            return [line.rsplit("/", 1)[-1] for line in listing.split()]
        return sorted(os.listdir(os.path.join(self.location, directory)))

    def read(self, path: str) -> str:
        if self.bare:
            return self._git("show", f"HEAD:{path}")
        return Path(self.location, path).read_text()

    def exists(self, path: str) -> bool:
        if self.bare:
            return subprocess.run(["git", f"--git-dir={self.location}", "cat-file", "-e", f"HEAD:{path}"],
                                  capture_output=True).returncode == 0
        return os.path.exists(os.path.join(self.location, path))


# --- generated.proto ---------------------------------------------------------------------------

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_FIELD = re.compile(r"^\s*(optional|required|repeated)?\s*"  # label
                    r"(map\s*<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)"  # type: map<key, value> or a name
                    r"\s+(\w+)\s*=\s*(\d+)")  # name = number


def _messages(text: str) -> Iterator[tuple[str, list[str], str]]:
    """(name, the comment lines just above it, its body) of each top-level message."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = re.match(r"^message (\w+) \{", lines[index])
        if not match:
            index += 1
            continue
        above, back = [], index - 1
        while back >= 0 and lines[back].startswith("//"):
            above.append(lines[back])
            back -= 1
        depth, body = 1, []
        index += 1
        while depth:
            line = lines[index]
            code = line.split("//", 1)[0]
            depth += code.count("{") - code.count("}")
            body.append(code)
            index += 1
        yield match.group(1), above, "\n".join(body[:-1])


def parse_proto(text: str) -> tuple[str, dict[str, dict[int, dict[str, object]]], set[str]]:
    """The package, its messages (number -> name, type, label, map key/value), the list wrappers."""
    package = re.search(r"^package ([\w.]+);", text, re.M)
    if package is None:
        raise ValueError("no package statement")
    messages: dict[str, dict[int, dict[str, object]]] = {}
    wrappers: set[str] = set()
    for name, above, body in _messages(text):
        fields: dict[int, dict[str, object]] = {}
        for line in _COMMENT.sub("", body).splitlines():
            match = _FIELD.match(line)
            if not match:
                continue
            label, kind, key, value, field, number = match.groups()
            fields[int(number)] = {"name": field, "type": "map" if key else kind, "repeated": label == "repeated",
                                   "map": [key, value] if key else None}
        messages[name] = fields
        # a Go slice type (``type ExtraValue []string``): its JSON form is the list itself
        nullable = any("+protobuf.nullable=true" in line for line in above)
        if nullable and [f["name"] for f in fields.values()] == ["items"]:
            wrappers.add(name)
    return package.group(1), messages, wrappers


# --- Go types --------------------------------------------------------------------------------

_STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.S | re.M)
_GO_FIELD = re.compile(r"^\s*(\w+\s+)?([\w.*\[\]]+)\s+`([^`]*)`", re.M)


def parse_go(text: str) -> dict[str, dict[int, tuple[str, bool, bool]]]:
    """Struct name -> protobuf field number -> (JSON name, omitted when zero, inlined by Go's JSON)."""
    structs: dict[str, dict[int, tuple[str, bool, bool]]] = {}
    for struct in _STRUCT.finditer(text):
        fields: dict[int, tuple[str, bool, bool]] = {}
        for field in _GO_FIELD.finditer(_COMMENT.sub("", struct.group(2))):
            tags = field.group(3)
            proto = re.search(r'protobuf:"\w+,(\d+),', tags)
            json_tag = re.search(r'json:"([^"]*)"', tags)
            if proto is None or json_tag is None:
                continue
            name, *options = json_tag.group(1).split(",")
            embedded = field.group(1) is None
            inline = name == "" and (embedded or "inline" in options)
            # a pointer is written (and emitted by Go's JSON) whenever set, zero or not
            omit = ("omitempty" in options or "omitzero" in options) and not field.group(2).startswith("*")
            fields[int(proto.group(1))] = (name, omit, inline)
        structs[struct.group(1)] = fields
    return structs


def _qualify(kind: str, package: str, known: set[str]) -> str:
    if kind in SCALARS or kind == "map":
        return kind
    if f"{package}.{kind}" in known:
        return f"{package}.{kind}"
    return kind.lstrip(".")


def read_package(source: Source, directory: str) -> tuple[str, dict[str, dict[str, list[object]]], set[str]]:
    package, messages, wrappers = parse_proto(source.read(f"{directory}/generated.proto"))
    go: dict[str, dict[int, tuple[str, bool, bool]]] = {}
    for file in source.listdir(directory):
        if file.endswith(".go") and not file.endswith("_test.go") and not file.startswith("zz_") \
                and file != "generated.pb.go":
            for struct, fields in parse_go(source.read(f"{directory}/{file}")).items():
                go.setdefault(struct, {}).update(fields)
    known = {f"{package}.{name}" for name in messages}
    table: dict[str, dict[str, list[object]]] = {}
    for name, fields in messages.items():
        entries: dict[str, list[object]] = {}
        for number, field in sorted(fields.items()):
            json_name, omit, inline = go.get(name, {}).get(number, (str(field["name"]), False, False))
            pair = field["map"]
            entries[str(number)] = [
                json_name, _qualify(str(field["type"]), package, known), int(bool(field["repeated"])),
                [_qualify(pair[0], package, known), _qualify(pair[1], package, known)] if isinstance(pair, list) else 0,
                int(omit), int(inline)]
        table[f"{package}.{name}"] = entries
    return package, table, {f"{package}.{name}" for name in wrappers}


def served_api_directories(api: Source) -> dict[str, str]:
    """apiVersion -> directory in kubernetes/api, for the built-in groups the control plane serves."""
    served = {resource.api_version for resource in BUILTINS if resource.group != "apiextensions.k8s.io"}
    found: dict[str, str] = {}
    for group_dir in api.listdir(""):
        try:
            versions = api.listdir(group_dir)
        except (subprocess.CalledProcessError, NotADirectoryError):
            continue
        for version in versions:
            register = f"{group_dir}/{version}/register.go"
            if not api.exists(f"{group_dir}/{version}/generated.proto") or not api.exists(register):
                continue
            group = re.search(r'GroupName\s*=\s*"([^"]*)"', api.read(register))
            if group is None:
                continue
            api_version = f"{group.group(1)}/{version}" if group.group(1) else version
            if api_version in served:
                found[api_version] = f"{group_dir}/{version}"
    missing = served - set(found)
    if missing:
        raise SystemExit(f"no generated.proto for {sorted(missing)}")
    return found


def main(argv: list[str]) -> None:
    if len(argv) not in (4, 5):
        raise SystemExit(__doc__)
    api, machinery, extensions = Source(argv[1]), Source(argv[2]), Source(argv[3])
    out = Path(argv[4]) if len(argv) == 5 else OUT
    messages: dict[str, dict[str, list[object]]] = {}
    wrappers: set[str] = set()
    api_versions: dict[str, str] = {}
    jobs = [(machinery, d, None) for d in APIMACHINERY_PACKAGES]
    jobs += [(api, d, v) for v, d in sorted(served_api_directories(api).items())]
    jobs += [(extensions, d, f"apiextensions.k8s.io/{d.rsplit('/', 1)[-1]}") for d in APIEXTENSIONS_PACKAGES]
    for source, directory, api_version in jobs:
        package, table, package_wrappers = read_package(source, directory)
        messages.update(table)
        wrappers |= package_wrappers
        if api_version:
            api_versions[api_version] = package
    for name, fields in messages.items():
        for number, field in fields.items():
            for kind in [field[1], *(field[3] or [])]:
                if kind not in SCALARS and kind != "map" and kind not in messages:
                    print(f"warning: {name}.{number} refers to unknown {kind}", file=sys.stderr)
    document = {"sources": {"kubernetes/api": api.commit(), "kubernetes/apimachinery": machinery.commit(),
                            "kubernetes/apiextensions-apiserver": extensions.commit()},
                "apiVersions": api_versions, "messages": messages, "wrappers": sorted(wrappers)}
    data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    out.write_bytes(gzip.compress(data, 9, mtime=0))
    print(f"{out}: {len(messages)} messages, {len(data)} bytes, {out.stat().st_size} gzipped", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
