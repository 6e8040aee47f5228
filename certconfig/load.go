package certconfig

import "errors"

// LoadFile reads the TOML file at path, applies defaults, validates every key, reads
// every certificate, key, passphrase and CA it names, and returns a snapshot. Errors
// name the certificate, the field and the fix.
func LoadFile(path string) (*Snapshot, error) {
	return nil, errors.New("certconfig: not implemented")
}
