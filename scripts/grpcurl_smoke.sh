#!/usr/bin/env bash
# Smoke test of a running router with the tools operators use: the README's grpcurl
# commands (reflection, describe, health, ListModels, Generate, GenerateStream,
# CountTokens, an INVALID_ARGUMENT) with their output checked, then a short ghz run that
# must finish without a single error.
#
#   scripts/grpcurl_smoke.sh [TARGET]        TARGET defaults to 127.0.0.1:50051
#
# Environment: GRPCURL, GHZ (default .tools/bin/*, built by `make tools`), PYTHON (checks
# the JSON; default .venv/bin/python), GHZ_REQUESTS (200), GHZ_CONCURRENCY (20).
# Exit status: 0 when every check passed, 1 when one failed, 2 when a tool is missing.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-127.0.0.1:50051}
grpcurl=${GRPCURL:-$root/.tools/bin/grpcurl}
ghz=${GHZ:-$root/.tools/bin/ghz}
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
requests=${GHZ_REQUESTS:-200}
concurrency=${GHZ_CONCURRENCY:-20}

for tool in "$grpcurl" "$ghz"; do
  if [ ! -x "$tool" ]; then
    echo "missing $tool: run 'make tools'" >&2
    exit 2
  fi
done

failures=0
out=$(mktemp)
trap 'rm -f "$out" "$out.cmd" "$out.protoset"' EXIT

# run NAME COMMAND...: run COMMAND with its output in $out; the `expect_*` calls
# that follow look at it and `pass` or `fail` report.
run() {
  name=$1
  shift
  printf '%s\n' "\$ ${*/#$grpcurl/grpcurl}" >"$out.cmd"
  "$@" >"$out" 2>&1
  status=$?
}
pass() { echo "ok    $name"; }
fail() {
  echo "FAIL  $name: $1"
  sed 's/^/      | /' "$out.cmd" "$out" | cut -c1-300 | head -40
  failures=$((failures + 1))
}
expect_status() { [ "$status" -eq "$1" ] || { fail "exit status $status, expected $1"; return 1; }; }
expect_text() { grep -qF -- "$1" "$out" || { fail "output lacks '$1'"; return 1; }; }
# expect_json PYTHON_EXPR: the output is one or more JSON documents (grpcurl prints the
# proto field names), bound to `docs`; the expression must be true.
expect_json() {
  "$py" - "$out" "$1" <<'PY' || { fail "JSON check failed: $1"; return 1; }
import json, sys
text = open(sys.argv[1]).read()
decoder, docs, i = json.JSONDecoder(), [], 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    doc, i = decoder.raw_decode(text, i)
    docs.append(doc)
sys.exit(0 if eval("(" + sys.argv[2] + ")", {"docs": docs}) else 1)
PY
}

hello='{"messages":[{"role":"ROLE_USER","content":"Hello"}],"task":"TASK_CHAT"}'
g=("$grpcurl" -plaintext -max-time 30)

run "list services" "${g[@]}" "$target" list
expect_status 0 && expect_text modelrouter.v1.ModelRouterService && expect_text grpc.health.v1.Health \
  && expect_text grpc.reflection.v1.ServerReflection \
  && expect_text grpc.reflection.v1alpha.ServerReflection && pass

# grpcurl asks reflection v1 first; describing the v1 service itself needs its descriptor.
run "reflection v1 describes itself" "${g[@]}" "$target" describe grpc.reflection.v1.ServerReflection
expect_status 0 && expect_text "rpc ServerReflectionInfo ( stream .grpc.reflection.v1.ServerReflectionRequest )" \
  && pass

run "describe modelrouter.v1.ModelRouterService" "${g[@]}" "$target" describe modelrouter.v1.ModelRouterService
expect_status 0 && expect_text "rpc Generate ( .modelrouter.v1.GenerateRequest )" \
  && expect_text "rpc GenerateStream ( .modelrouter.v1.GenerateStreamRequest ) returns ( stream .modelrouter.v1.GenerateStreamResponse )" && pass

run "health check" "${g[@]}" "$target" grpc.health.v1.Health/Check
expect_status 0 && expect_json 'docs[0]["status"] == "SERVING"' && pass

run "ListModels" "${g[@]}" "$target" modelrouter.v1.ModelRouterService/ListModels
expect_status 0 && expect_json 'len(docs[0]["models"]) >= 1 and all(m["id"] for m in docs[0]["models"])' \
  && pass

run "Generate (unary)" "${g[@]}" -d "$hello" "$target" modelrouter.v1.ModelRouterService/Generate
expect_status 0 && expect_json 'docs[0]["text"] and docs[0]["model"] and docs[0]["provider"]
  and int(docs[0]["usage"]["input_tokens"]) > 0 and int(docs[0]["usage"]["output_tokens"]) > 0' \
  && pass

run "GenerateStream" "${g[@]}" \
  -d '{"messages":[{"role":"ROLE_USER","content":"Hello"}],"model":"claude-3-7-sonnet"}' \
  "$target" modelrouter.v1.ModelRouterService/GenerateStream
expect_status 0 && expect_json '"start" in docs[0] and docs[0]["start"]["model"]
  and sum("delta" in d for d in docs) >= 1
  and all("delta" in d or "thinking_delta" in d or "resume" in d for d in docs[1:-1])
  and "finish" in docs[-1] and int(docs[-1]["finish"]["usage"]["output_tokens"]) > 0
  and docs[-1]["finish"]["finish_reason"] == "FINISH_REASON_STOP"' && pass

run "CountTokens" "${g[@]}" \
  -d '{"messages":[{"role":"ROLE_USER","content":"How long is this?"}],"model":"gpt-4o-mini"}' \
  "$target" modelrouter.v1.ModelRouterService/CountTokens
expect_status 0 && expect_json 'int(docs[0]["input_tokens"]) > 0 and docs[0]["model"]' && pass

run "Generate with no messages is INVALID_ARGUMENT" "${g[@]}" -d '{"task":"TASK_CHAT"}' \
  "$target" modelrouter.v1.ModelRouterService/Generate
# grpcurl exits 64 + the status code: INVALID_ARGUMENT is 3.
expect_status 67 && expect_text "Code: InvalidArgument" && pass

# ghz gets the descriptor set `modelrouter protoset` writes: its reflection client asks for
# the method's own symbol, which grpc-python's reflection service cannot resolve
# (grpc/grpc#34743); grpcurl asks for the service, which works.
protoset="$out.protoset"
run "modelrouter protoset" "$(dirname "$py")/modelrouter" protoset -o "$protoset"
expect_status 0 && expect_text "wrote $protoset" && pass

run "grpcurl -protoset (no reflection): ListModels" "${g[@]}" -use-reflection=false \
  -protoset "$protoset" "$target" modelrouter.v1.ModelRouterService/ListModels
expect_status 0 && expect_json 'len(docs[0]["models"]) >= 1' && pass

run "ghz: $requests Generate calls, concurrency $concurrency" "$ghz" --insecure \
  --protoset "$protoset" \
  --call modelrouter.v1.ModelRouterService.Generate -d "$hello" \
  -n "$requests" -c "$concurrency" --timeout 30s --format json "$target"
expect_status 0 && expect_json "docs[0]['count'] == $requests
  and docs[0]['statusCodeDistribution'] == {'OK': $requests}
  and not docs[0].get('errorDistribution')" && pass

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed against $target"
  exit 1
fi
echo "all checks passed against $target"
