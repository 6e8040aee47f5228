package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3". When it is
// empty the module version and VCS revision recorded by the Go toolchain are used.
var version string

// versionFlags declares "version", which takes no flag or argument.
func versionFlags(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: mtlsproxy version\n\nPrints the version and exits.\n")
	}
	return fs
}

// runVersion implements "mtlsproxy version".
func runVersion(args []string, stdout, stderr io.Writer) int {
	if code, done := parseFlags(versionFlags(stderr), args); done {
		return code
	}
	fmt.Fprintln(stdout, versionString())
	return exitOK
}

// versionString is the one line printed by "mtlsproxy version".
func versionString() string {
	return "mtlsproxy " + resolveVersion() + " " + runtime.Version()
}

// resolveVersion returns the linker-set version, else what the build info knows.
func resolveVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return fromBuildInfo(info)
}

// fromBuildInfo prefers a tagged module version; a development build shows the VCS
// revision instead, marked when the work tree had changes.
func fromBuildInfo(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "devel-" + rev + dirty
}
