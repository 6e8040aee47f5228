package proxy

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEListsEveryCode keeps the error table of README.md in step with the
// codes the proxy sends: every code and its exact message must be documented.
func TestREADMEListsEveryCode(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	for code, info := range codes {
		if !strings.Contains(doc, "`"+code+"`") {
			t.Errorf("README.md does not list the code %s", code)
		}
		if code != CodeRequestCanceled && !strings.Contains(doc, info.message) {
			t.Errorf("README.md does not give the message of %s: %q", code, info.message)
		}
	}
}
