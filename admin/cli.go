package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit statuses of RunCLI.
const (
	exitOK    = 0
	exitError = 1 // the call failed or the server refused it
	exitUsage = 2 // wrong command line
)

// Environment variables that give the defaults of -admin and -token-file.
const (
	EnvAdminURL  = "MTLSPROXY_ADMIN"
	EnvTokenFile = "MTLSPROXY_TOKEN_FILE"
)

const cliUsage = `usage: mtlsproxy certs [flags] COMMAND [ARGS]

Manages client certificates through the admin API of a running mtlsproxy.

Commands:
  list                              certificates, dangling routes, last reload
  show NAME                         one certificate in detail
  add NAME -cert FILE -key FILE [-passphrase-file FILE] [-ca FILE]
      [-server-name NAME] [-server-ca FILE] [-insecure] [-disabled]
  replace NAME -cert FILE -key FILE [-passphrase-file FILE | -no-passphrase]
      [-ca FILE | -no-ca]
                                    new key material; routes keep working
  enable NAME | disable NAME        present the certificate again, or stop
  delete NAME                       remove a certificate added through the API

Flags (before or after the command):
  -admin URL         admin API address (default $MTLSPROXY_ADMIN or
                     http://127.0.0.1:9901)
  -token-file FILE   file holding the bearer token (default $MTLSPROXY_TOKEN_FILE)
  -json              print the API's JSON instead of text

Exit status: 0 done, 1 the call failed or was refused, 2 wrong command line.
`

// cliCommon holds the flags every command accepts.
type cliCommon struct {
	admin     string
	tokenFile string
	json      bool
}

// register declares the common flags in fs with their current values as defaults,
// so that values given before the command survive a second registration.
func (c *cliCommon) register(fs *flag.FlagSet) {
	fs.StringVar(&c.admin, "admin", c.admin, "admin API `URL`")
	fs.StringVar(&c.tokenFile, "token-file", c.tokenFile, "bearer token `file`")
	fs.BoolVar(&c.json, "json", c.json, "print JSON")
}

// material holds the flags of add and replace.
type material struct {
	cert, key, passFile, ca string
	serverName, serverCA    string
	insecure, disabled      bool
	noPassphrase, noCA      bool // replace: clear the stored passphrase or chain
}

// cliCommand is one subcommand: its flags and what it does once parsed.
type cliCommand struct {
	usage string
	flags func(fs *flag.FlagSet, m *material)
	run   func(ctx context.Context, cl *Client, name string, m *material) (*cliResult, error)
}

var cliCommands = map[string]cliCommand{
	"list": {usage: "list", run: runList},
	"show": {usage: "show NAME", run: runShow},
	"add":  {usage: "add NAME -cert FILE -key FILE ...", flags: addFlags, run: runAdd},
	"replace": {usage: "replace NAME -cert FILE -key FILE", flags: replaceFlags,
		run: runReplace},
	"enable":  {usage: "enable NAME", run: runEnable},
	"disable": {usage: "disable NAME", run: runDisable},
	"delete":  {usage: "delete NAME", run: runDelete},
}

// RunCLI runs "mtlsproxy certs" with args (the words after "certs") and returns the
// exit status: 0 on success, 1 when the call fails or the server refuses it (the
// server's code and message are printed), 2 for a wrong command line.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	common := &cliCommon{admin: os.Getenv(EnvAdminURL), tokenFile: os.Getenv(EnvTokenFile)}
	if common.admin == "" {
		common.admin = DefaultAdminURL
	}
	top := newFlagSet("certs", stderr)
	common.register(top)
	if code, done := parseCLI(top, args, stdout); done {
		return code
	}
	if top.NArg() == 0 {
		fmt.Fprint(stderr, "mtlsproxy certs: a command is required\n\n"+cliUsage)
		return exitUsage
	}
	return runCommand(ctx, common, top.Args(), stdout, stderr)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), cliUsage) }
	return fs
}

// parseCLI parses the flags before the command. -h prints the usage to stdout.
func parseCLI(fs *flag.FlagSet, args []string, stdout io.Writer) (int, bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, true
	case err != nil:
		return exitUsage, true
	}
	if fs.NArg() > 0 && fs.Arg(0) == "help" {
		fmt.Fprint(stdout, cliUsage)
		return exitOK, true
	}
	return exitOK, false
}

func runCommand(ctx context.Context, common *cliCommon, args []string,
	stdout, stderr io.Writer) int {
	name, rest := args[0], args[1:]
	cmd, ok := cliCommands[name]
	if !ok {
		fmt.Fprintf(stderr, "mtlsproxy certs: unknown command %q\n\n%s", name, cliUsage)
		return exitUsage
	}
	fs := newFlagSet("certs "+name, stderr)
	common.register(fs)
	m := &material{}
	if cmd.flags != nil {
		cmd.flags(fs, m)
	}
	pos, err := parseInterleaved(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	} else if err != nil {
		return exitUsage
	}
	if msg := checkArgs(name, pos, m); msg != "" {
		fmt.Fprintf(stderr, "mtlsproxy certs %s: %s\nusage: mtlsproxy certs %s\n",
			name, msg, cmd.usage)
		return exitUsage
	}
	return execute(ctx, common, cmd, pos, m, stdout, stderr)
}

// parseInterleaved parses flags wherever they stand among the positional arguments,
// so that "add acme -cert a.pem" works; everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if consumed := len(args) - len(left); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, left...), nil
		}
		if len(left) == 0 {
			return pos, nil
		}
		pos, args = append(pos, left[0]), left[1:]
	}
}

func checkArgs(cmd string, pos []string, m *material) string {
	want := 1
	if cmd == "list" {
		want = 0
	}
	switch {
	case len(pos) < want:
		return "the certificate NAME is missing"
	case len(pos) > want:
		return fmt.Sprintf("unexpected argument %q", pos[want])
	case (cmd == "add" || cmd == "replace") && (m.cert == "" || m.key == ""):
		return "-cert and -key are required"
	}
	return ""
}

func execute(ctx context.Context, common *cliCommon, cmd cliCommand, pos []string,
	m *material, stdout, stderr io.Writer) int {
	cl, err := newCLIClient(common)
	if err != nil {
		fmt.Fprintf(stderr, "mtlsproxy certs: %v\n", err)
		return exitError
	}
	var name string
	if len(pos) > 0 {
		name = pos[0]
	}
	out, err := cmd.run(ctx, cl, name, m)
	if err != nil {
		fmt.Fprintf(stderr, "mtlsproxy certs: %v\n", err)
		return exitError
	}
	if err := printResult(stdout, common.json, out); err != nil {
		fmt.Fprintf(stderr, "mtlsproxy certs: %v\n", err)
		return exitError
	}
	return exitOK
}

func newCLIClient(common *cliCommon) (*Client, error) {
	cl := &Client{BaseURL: common.admin}
	if common.tokenFile == "" {
		return cl, nil
	}
	tok, err := ReadTokenFile(common.tokenFile)
	if err != nil {
		return nil, err
	}
	cl.Token = tok
	return cl, nil
}

func addFlags(fs *flag.FlagSet, m *material) {
	materialFlags(fs, m)
	fs.StringVar(&m.serverName, "server-name", "", "server `name` (SNI) to send and verify")
	fs.StringVar(&m.serverCA, "server-ca", "", "PEM `file` of CAs to verify the upstream")
	fs.BoolVar(&m.insecure, "insecure", false, "do not verify the upstream (development only)")
	fs.BoolVar(&m.disabled, "disabled", false, "add the certificate disabled")
}

func replaceFlags(fs *flag.FlagSet, m *material) {
	materialFlags(fs, m)
	fs.BoolVar(&m.noPassphrase, "no-passphrase", false,
		"clear the stored passphrase (the new key is not encrypted)")
	fs.BoolVar(&m.noCA, "no-ca", false, "clear the stored chain")
}

func materialFlags(fs *flag.FlagSet, m *material) {
	fs.StringVar(&m.cert, "cert", "", "PEM `file` of the client certificate (and chain)")
	fs.StringVar(&m.key, "key", "", "PEM `file` of the private key")
	fs.StringVar(&m.passFile, "passphrase-file", "", "`file` holding the key's passphrase")
	fs.StringVar(&m.ca, "ca", "", "PEM `file` of CA certificates to present after the leaf")
}
