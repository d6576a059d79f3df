// Package integration holds end-to-end tests that wire dgramlab's packages
// together: in-memory LANs, TUN/TAP devices, captures and the CLI.
package integration

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dgramlab/dgramlab"

// TestPackageBoundaries fails when a package imports what DESIGN.md's
// dependency direction forbids: dgram and wire only the standard library;
// stack, tun and capture none of each other (they meet at gVisor's
// stack.LinkEndpoint and share package wire's definitions) and not dgram.
// Only cmd/ and integration/ wire packages together. Test files are not
// counted. The DNS and QUIC libraries the integration tests run over
// dgramlab stay test-only: no package, commands included, may depend on
// them.
func TestPackageBoundaries(t *testing.T) {
	testOnly := []string{"github.com/miekg/dns", "github.com/quic-go/quic-go"}
	t.Run("test-only", func(t *testing.T) {
		for _, d := range listDeps(t, module+"/...") {
			for _, p := range testOnly {
				if d.ImportPath == p || strings.HasPrefix(d.ImportPath, p+"/") {
					t.Errorf("a non-test package depends on %s, which only tests may use", d.ImportPath)
				}
			}
		}
	})
	rules := []struct {
		pkg       string
		stdOnly   bool
		forbidden []string
	}{
		{pkg: "dgram", stdOnly: true},
		{pkg: "wire", stdOnly: true},
		{pkg: "stack", forbidden: []string{"dgram", "capture", "tun", "github.com/gopacket", "github.com/songgao"}},
		{pkg: "capture", forbidden: []string{"dgram", "stack", "tun", "github.com/songgao"}},
		{pkg: "tun", forbidden: []string{"dgram", "capture", "github.com/gopacket"}},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			deps := listDeps(t, module+"/"+r.pkg+"/...")
			for _, d := range deps {
				if d.Standard || strings.HasPrefix(d.ImportPath, module+"/"+r.pkg) {
					continue
				}
				if r.stdOnly {
					t.Errorf("%s depends on %s: it may import only the standard library", r.pkg, d.ImportPath)
					continue
				}
				for _, f := range r.forbidden {
					p := f
					if !strings.Contains(f, ".") {
						p = module + "/" + f
					}
					if d.ImportPath == p || strings.HasPrefix(d.ImportPath, p+"/") {
						t.Errorf("%s depends on %s, which its boundary forbids", r.pkg, d.ImportPath)
					}
				}
			}
		})
	}
}

type goPackage struct {
	ImportPath string
	Standard   bool
}

// listDeps returns every package pattern's packages import, transitively
// (go list -deps), excluding test files.
func listDeps(t *testing.T, pattern string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard", pattern)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Skipf("go list cannot run here: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(out)
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, stderr.String())
	}
	return pkgs
}
