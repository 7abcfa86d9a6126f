// Package liverouter starts a real `modelrouter serve` (with its built-in provider
// emulator) for tests, through the repository's Python helper
// `python -m modelrouter_testsupport.live_router`, and scripts the emulator over its admin
// API.
package liverouter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// Router is a running router.
type Router struct {
	Target      string
	EmulatorURL string
	cmd         *exec.Cmd
	stdin       io.WriteCloser
	dir         string
}

// repoRoot is the repository's root, found from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// Start starts the router and returns once it is healthy. MODELROUTER_PYTHON overrides
// the interpreter (default: the repository's .venv).
func Start() (*Router, error) {
	root := repoRoot()
	python := os.Getenv("MODELROUTER_PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	dir, err := os.MkdirTemp("", "mrclient-go-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(python, "-m", "modelrouter_testsupport.live_router", dir)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s (run `make install` first): %w", python, err)
	}
	r := &Router{cmd: cmd, stdin: stdin, dir: dir}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("the router helper exited before it was ready: %w", err)
	}
	var ready struct {
		Target      string `json:"target"`
		EmulatorURL string `json:"emulator_url"`
	}
	if err := json.Unmarshal(line, &ready); err != nil {
		r.Stop()
		return nil, fmt.Errorf("unexpected line from the router helper %q: %w", line, err)
	}
	r.Target, r.EmulatorURL = ready.Target, ready.EmulatorURL
	return r, nil
}

// Stop closes the helper's stdin (it then stops the router) and waits for it.
func (r *Router) Stop() {
	_ = r.stdin.Close()
	_ = r.cmd.Wait()
	_ = os.RemoveAll(r.dir)
}

// Emulator calls the emulator's admin API: POST with body, GET when body is nil; the JSON
// answer is decoded into out unless out is nil.
func (r *Router) Emulator(path string, body, out any) error {
	method, reader := http.MethodGet, io.Reader(nil)
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		method, reader = http.MethodPost, bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, r.EmulatorURL+"/_emulator/"+path, reader)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("emulator %s: %s: %s", path, resp.Status, data)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// WaitForDisconnects polls the emulator's record until it holds n client disconnects or
// ctx ends.
func (r *Router) WaitForDisconnects(ctx context.Context, n int) ([]map[string]any, error) {
	for {
		var records []map[string]any
		if err := r.Emulator("disconnects", nil, &records); err != nil {
			return nil, err
		}
		if len(records) >= n {
			return records, nil
		}
		select {
		case <-ctx.Done():
			return records, fmt.Errorf("the emulator saw %d disconnect(s), want %d: %w", len(records), n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
