#!/usr/bin/env bash
# Regenerates the code for protos/ in every client language, into the repository (or under
# $1, for the drift check, which compares the two trees):
#   Python      client/src/modelrouter/v1      grpcio-tools (below)
#   Go          client/go/modelrouter/v1       buf generate, buf.gen.yaml
#   TypeScript  client/typescript/src/gen      buf generate, buf.gen.yaml and buf.gen.rpc.yaml
# The Python output path mirrors the proto package (modelrouter.v1), so the generated imports
# work without rewriting. Needs `make install`, `make tools` and `make node` (make protos
# runs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$root}
out=$base/client/src
py=${PYTHON:-$root/.venv/bin/python}
buf=$root/node_modules/.bin/buf
cd "$root"
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

# Go and TypeScript: buf with local plugins (buf.gen.yaml says which and why).
"$buf" generate --template buf.gen.yaml -o "$base"
# The google.rpc error details for TypeScript, from googleapis-common-protos in the venv.
site=$("$py" -c 'import pathlib, google.rpc.status_pb2 as s; print(pathlib.Path(s.__file__).parents[2])')
"$buf" generate "$site" --template buf.gen.rpc.yaml -o "$base" \
  --path "$site/google/rpc/status.proto" --path "$site/google/rpc/error_details.proto"
