package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/modelrouter/modelrouter/client/go/internal/liverouter"
)

// The example runs as documented (docs/go.md quotes it) against a live router, and prints
// what each of its four steps did.
func TestExampleAgentRuns(t *testing.T) {
	router, err := liverouter.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer router.Stop()
	var out bytes.Buffer
	if err := run(&out, router.Target, 40); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"answering: ", "stopped after ", "InvalidArgument ", "max_output_tokens: ",
		"0 ROLE_SYSTEM You are terse.", "1 ROLE_USER Remember the number 7.", "4 ROLE_ASSISTANT ",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("output lacks %q:\n%s", want, text)
		}
	}
}
