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
}

// LoadFileWith is LoadFile with options.
func LoadFileWith(path string, o LoadOptions) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the config file: %w", err)
	}
	return load(data, path, o)
}
