"""Regenerate the CRI v1 Python modules from cores/edge/cri/api.proto.

    python scripts/gen_cri.py            # writes api_pb2.py, api_pb2.pyi, api_grpc.py beside api.proto
    python scripts/gen_cri.py --check    # exit 1 if the committed api_pb2 does not match api.proto

Needs grpcio-tools (test extra) and grpclib (whose protoc plugin writes api_grpc.py). The
generated api_pb2.py checks at import that the protobuf runtime is at least the version of
the protoc that wrote it: pyproject's protobuf lower bound follows the grpcio-tools used here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROTO = Path("cores/edge/cri/api.proto")


def protoc(*args: str) -> None:
    plugin = Path(sys.executable).parent / "protoc-gen-grpclib_python"
    command = [sys.executable, "-m", "grpc_tools.protoc", f"--plugin=protoc-gen-grpclib_python={plugin}", "-I.", *args, str(PROTO)]
    subprocess.run(command, cwd=REPO, check=True)


def current_descriptor() -> Any:
    """The FileDescriptorProto protoc makes of api.proto now, as api_pb2 embeds it (no json_name)."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "api.pb")
        protoc(f"--descriptor_set_out={out}")
        proto = descriptor_pb2.FileDescriptorSet.FromString(Path(out).read_bytes()).file[0]
    _clear_json_names(proto.message_type)
    return proto


def _clear_json_names(messages: Any) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _clear_json_names(message.nested_type)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    if parser.parse_args().check:
        sys.path.insert(0, str(REPO))
        from google.protobuf import descriptor_pb2

        from cores.edge.cri import api_pb2

        if descriptor_pb2.FileDescriptorProto.FromString(api_pb2.DESCRIPTOR.serialized_pb) != current_descriptor():
            print(f"{PROTO.parent}/api_pb2.py is stale: run python scripts/gen_cri.py", file=sys.stderr)
            return 1
        return 0
    protoc("--python_out=.", "--pyi_out=.", "--grpclib_python_out=.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
