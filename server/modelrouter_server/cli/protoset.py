"""`modelrouter protoset -o FILE`: write the API's descriptor set, for tools that take one
instead of asking the server by reflection (`ghz --protoset`, `grpcurl -protoset`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from modelrouter.v1 import modelrouter_pb2 as pb

from modelrouter_server.cli._common import EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "protoset", help="write the API's FileDescriptorSet (for ghz/grpcurl -protoset)"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    parser.set_defaults(handler=run)


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """modelrouter.proto and everything it imports, dependencies first (as protoc's
    --include_imports writes them)."""
    out = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        file.CopyToProto(out.file.add())

    add(pb.DESCRIPTOR)
    return out


def run(args: argparse.Namespace) -> int:
    output: Path = args.output
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(descriptor_set().SerializeToString())
    except OSError as exc:
        print(f"modelrouter: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {output}")
    return EXIT_OK
