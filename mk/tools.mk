# grpcurl and ghz, built from pinned versions into .tools/bin (git-ignored).
# `make tools` needs Go (>= 1.22) and network access to the Go module proxy, once.
#
# Pinned to the newest versions proxy.golang.org served when this was written. ghz's
# `go list -m -versions` still reports v0.93.0 (its later tags are not in the proxy's
# list), so bump GHZ_VERSION by asking for the version explicitly:
#   go list -m github.com/bojand/ghz@vX.Y.Z

GO            ?= go
TOOLS_BIN     := $(CURDIR)/.tools/bin
GRPCURL_VERSION := v1.9.4
GHZ_VERSION     := v0.121.0
GRPCURL       := $(TOOLS_BIN)/grpcurl
GHZ           := $(TOOLS_BIN)/ghz

.PHONY: tools

tools: $(GRPCURL) $(GHZ)

# The version is part of a stamp file, so changing the pin rebuilds the tool.
$(TOOLS_BIN)/.grpcurl-$(GRPCURL_VERSION):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@rm -f $(TOOLS_BIN)/.grpcurl-* && touch $@

$(TOOLS_BIN)/.ghz-$(GHZ_VERSION):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)
	@rm -f $(TOOLS_BIN)/.ghz-* && touch $@

$(GRPCURL): $(TOOLS_BIN)/.grpcurl-$(GRPCURL_VERSION)
$(GHZ): $(TOOLS_BIN)/.ghz-$(GHZ_VERSION)
