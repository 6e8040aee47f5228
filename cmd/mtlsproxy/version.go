package main

import (
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3". When it is
// empty the module version and VCS revision recorded by the Go toolchain are used.
var version string

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
