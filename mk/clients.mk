# The contract (buf) and the Go and TypeScript clients: part of `make test`.
# Uses $(STAMP), $(BIN), $(BUF), $(NODE_STAMP), $(GO), $(NPM) and the tools from the
# Makefile and mk/tools.mk. Go and npm keep their caches (~/go/pkg/mod, ~/.cache/go-build,
# ~/.npm), so only the first run downloads and compiles.

.PHONY: buf-check buf-lint buf-format buf-breaking test-go test-ts protoset

# buf lint (STANDARD + COMMENTS, buf.yaml), buf format (no diff), buf breaking (every
# contract change since buf.yaml came, scripts/buf_breaking.sh).
buf-check: buf-lint buf-format buf-breaking

buf-lint: $(NODE_STAMP)
	$(BUF) lint

buf-format: $(NODE_STAMP)
	$(BUF) format --diff --exit-code

buf-breaking: $(NODE_STAMP)
	BUF=$(BUF) scripts/buf_breaking.sh

# The clients' tests start `modelrouter serve` through
# .venv/bin/python -m modelrouter_testsupport.live_router; `-p 1`: one package (one router) at
# a time, on 2 cores. `-count=1`: go test's result cache cannot see that the server (Python,
# outside the module) changed, so a cached pass would hide a broken server.
test-go: $(STAMP)
	cd client/go && $(GO) vet ./... && $(GO) test -count=1 -p 1 ./...

test-ts: $(STAMP) $(NODE_STAMP)
	$(NPM) --workspace client/typescript test

# The descriptor set for ghz/grpcurl -protoset, when reflection is not wanted.
protoset: $(RUN_STAMP)
	@mkdir -p build
	$(BIN)/modelrouter protoset -o build/modelrouter.protoset
