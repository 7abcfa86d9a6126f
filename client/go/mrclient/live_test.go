package mrclient_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/modelrouter/modelrouter/client/go/internal/liverouter"
)

// The tests run against a real `modelrouter serve` with its built-in provider emulator.
var live *liverouter.Router

func TestMain(m *testing.M) {
	router, err := liverouter.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	live = router
	code := m.Run()
	router.Stop()
	os.Exit(code)
}

func emulator(t *testing.T, path string, body, out any) {
	t.Helper()
	if err := live.Emulator(path, body, out); err != nil {
		t.Fatal(err)
	}
}

func waitForDisconnects(t *testing.T, ctx context.Context, n int) []map[string]any {
	t.Helper()
	records, err := live.WaitForDisconnects(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return records
}
