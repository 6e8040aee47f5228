package certconfig

import (
	"fmt"
	"os"
)

// LoadOptions relax checks that the caller makes itself.
type LoadOptions struct {
	// AllowUnknownRouteCertificates lets routes name certificates the file does not
	// define; the admin state may define them.
	AllowUnknownRouteCertificates bool
	// Previous is the snapshot the file gave last time, or nil. A certificate whose
	// settings and files are unchanged since is taken from it instead of being
	// parsed and checked again: a reload after one of 10,000 certificates changed
	// parses one. (The Reloader passes it.)
	Previous *Snapshot
}

// LoadFileWith is LoadFile with options.
func LoadFileWith(path string, o LoadOptions) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the config file: %w", err)
	}
	return load(data, path, o)
}
