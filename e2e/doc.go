// Package e2e holds the end-to-end tests: they build the mtlsproxy binary, start
// real nginx and HAProxy servers that demand client certificates on loopback, and
// send requests through the proxy with curl.
//
// Run them with "go test ./e2e/". Outside CI they are skipped when nginx, haproxy
// or curl is missing; with CI=true a missing program fails the run.
package e2e
