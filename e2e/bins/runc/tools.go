//go:build tools

// Package tools pins the runc commands that e2e/node-image.sh builds.
package tools

import (
	_ "github.com/opencontainers/runc"
)
