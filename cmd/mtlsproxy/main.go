// Command mtlsproxy is a forward proxy that turns plain HTTP requests from local
// clients into mutual-TLS requests upstream, presenting the client certificate that
// the request's header or a configured route selects.
//
// This package only wires the other packages together: it reads the command line,
// loads the configuration, sets up logging, handles signals and decides the exit
// status. Everything else lives in certconfig, proxy and admin.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtlsproxy/mtlsproxy/admin"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // bad configuration, listener failure, forced stop
	exitUsage = 2 // wrong command line
)

// run dispatches to a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(rest, stderr)
	case "check":
		return runCheck(rest, stdout, stderr)
	case "certs":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return admin.RunCLI(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		return runHelp(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "mtlsproxy: unknown command %q\n\n%s", cmd, usageText)
		return exitUsage
	}
}

// runHelp prints the general usage, or the flags of one subcommand.
func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	switch args[0] {
	case "serve":
		fs, _ := serveFlags(stdout)
		fs.Usage()
	case "check":
		fs, _ := checkFlags(stdout)
		fs.Usage()
	case "certs":
		// Help asked for is output, like the help of the other commands.
		return admin.RunCLI(context.Background(), []string{"-h"}, stdout, stdout)
	case "version":
		versionFlags(stdout).Usage()
	default:
		fmt.Fprintf(stderr, "mtlsproxy: no help for %q\n\n%s", args[0], usageText)
		return exitUsage
	}
	return exitOK
}

const usageText = `mtlsproxy: a forward proxy that adds client certificates (mutual TLS).

Programs send plain HTTP through it (HTTP_PROXY or curl -x). For each request it
picks a client certificate, from the X-Mtls-Client-Cert request header or from the
first matching [[route]] of the configuration, opens a TLS connection to the
destination presenting that certificate, and relays the exchange. Failed
handshakes come back as 502 with an X-Mtls-Proxy-Error code that says what to fix.

Usage:
  mtlsproxy serve -config FILE [-listen ADDR]
        Run the proxy. Changed files are reloaded on their own and SIGHUP
        forces a reload (a broken file is reported and the running one kept);
        SIGTERM or SIGINT drain in-flight requests for [proxy] shutdown_grace
        and stop; a second signal stops at once.
  mtlsproxy check -config FILE
        Load the configuration as serve would, with every file it names and the
        admin API's state, check the admin settings, print one line per
        certificate (name, enabled, source, subject, not-after, warnings), and
        exit 1 with the reason if anything is wrong. Nothing is written.
  mtlsproxy certs list|show|add|replace|enable|disable|delete [flags] [NAME]
        Manage certificates through the admin API of a running proxy
        (-admin URL, -token-file FILE; "mtlsproxy help certs" lists the rest).
  mtlsproxy version
        Print the version.
  mtlsproxy help [COMMAND]
        Print this text, or the flags of one command.

Example:
  $ mtlsproxy check -config /etc/mtlsproxy/config.toml
  $ mtlsproxy serve -config /etc/mtlsproxy/config.toml &
  $ export HTTP_PROXY=http://127.0.0.1:3128 http_proxy=http://127.0.0.1:3128
  $ curl -H 'X-Mtls-Client-Cert: acme' http://hooks.acme.example/notify
        (curl reads the lowercase http_proxy; "curl -x URL" works too.)
        The request leaves as HTTPS to hooks.acme.example:443 with certificate
        "acme"; the header itself is not forwarded. Send http:// URLs: an
        https:// URL makes curl open a CONNECT tunnel, which cannot carry a
        client certificate.

See config.example.toml for every configuration key.
`
