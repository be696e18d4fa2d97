//go:build tools

// Package tools pins the cri-tools commands that e2e/node-image.sh builds.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
