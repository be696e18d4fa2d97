//go:build tools

// Package tools pins the coredns commands that e2e/node-image.sh builds.
package tools

import (
	_ "github.com/coredns/coredns"
)
