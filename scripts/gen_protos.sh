#!/usr/bin/env bash
# Regenerates the Python code for protos/ into the client package (or into $1, for the
# drift check). The output path mirrors the proto package (modelrouter.v1), so the
# generated imports work without rewriting.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/client/src}
py=${PYTHON:-$root/.venv/bin/python}
# protoc finds the mypy-protobuf plugins on PATH, beside the interpreter.
export PATH="$(dirname "$py"):$PATH"
mkdir -p "$out/modelrouter/v1"
"$py" -m grpc_tools.protoc \
  -I "$root/protos" \
  --python_out="$out" \
  --grpc_python_out="$out" \
  --mypy_out="$out" \
  --mypy_grpc_out="$out" \
  "$root"/protos/modelrouter/v1/*.proto
for init in "$out/modelrouter/__init__.py" "$out/modelrouter/v1/__init__.py"; do
  [ -f "$init" ] || printf '"""Generated from protos/ by scripts/gen_protos.sh; do not edit."""\n' > "$init"
done
# PEP 561 marker: the .pyi files mypy-protobuf writes are the package's types.
touch "$out/modelrouter/py.typed" "$out/modelrouter/v1/py.typed"
