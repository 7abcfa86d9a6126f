# Pinned developer tools, all project-local (git-ignored), installed from the registries:
#   .tools/bin      grpcurl, ghz, protoc-gen-go, protoc-gen-go-grpc   (`make tools`, go install)
#   node_modules    buf, protoc-gen-es, TypeScript and the TS client's deps  (`make node`, npm ci)
# `make tools` needs Go (>= 1.22) and the Go module proxy, `make node` needs Node (>= 20) and
# npm, once; later runs use the caches.
#
# Pinned to the newest versions proxy.golang.org served when this was written. ghz's
# `go list -m -versions` still reports v0.93.0 (its later tags are not in the proxy's
# list), so bump GHZ_VERSION by asking for the version explicitly:
#   go list -m github.com/bojand/ghz@vX.Y.Z
# buf, protoc-gen-es and the npm packages are pinned in package.json / package-lock.json.

GO            ?= go
NPM           ?= npm
TOOLS_BIN     := $(CURDIR)/.tools/bin
GRPCURL_VERSION := v1.9.4
GHZ_VERSION     := v0.121.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL       := $(TOOLS_BIN)/grpcurl
GHZ           := $(TOOLS_BIN)/ghz
PROTOC_GEN_GO      := $(TOOLS_BIN)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS_BIN)/protoc-gen-go-grpc
NODE_STAMP    := node_modules/.installed
BUF           := $(CURDIR)/node_modules/.bin/buf

# What `make protos` and the drift check need.
GEN_TOOLS     := $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) $(NODE_STAMP)

.PHONY: tools node grpcurl

tools: $(GRPCURL) $(GHZ) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	@echo "tools are in $(TOOLS_BIN): run them from there (.tools/bin/grpcurl ...)"
	@echo "  or through make: make grpcurl ARGS='-plaintext 127.0.0.1:50051 list'"

# `make grpcurl ARGS='...'`: the pinned grpcurl, for those who would rather not type the path.
grpcurl: $(GRPCURL)
	$(GRPCURL) $(ARGS)

# The version is part of a stamp file, so changing the pin rebuilds the tool.
$(TOOLS_BIN)/.grpcurl-$(GRPCURL_VERSION):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@rm -f $(TOOLS_BIN)/.grpcurl-* && touch $@

$(TOOLS_BIN)/.ghz-$(GHZ_VERSION):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)
	@rm -f $(TOOLS_BIN)/.ghz-* && touch $@

$(TOOLS_BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@rm -f $(TOOLS_BIN)/.protoc-gen-go-v* && touch $@

$(TOOLS_BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@rm -f $(TOOLS_BIN)/.protoc-gen-go-grpc-* && touch $@

$(GRPCURL): $(TOOLS_BIN)/.grpcurl-$(GRPCURL_VERSION)
$(GHZ): $(TOOLS_BIN)/.ghz-$(GHZ_VERSION)
$(PROTOC_GEN_GO): $(TOOLS_BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
$(PROTOC_GEN_GO_GRPC): $(TOOLS_BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)

# npm ci installs exactly package-lock.json (buf arrives as a registry package that ships the
# binary for this platform).
$(NODE_STAMP): package.json package-lock.json client/typescript/package.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

node: $(NODE_STAMP)
