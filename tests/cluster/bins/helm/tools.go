//go:build tools

// Package tools pins the Helm command that bins.sh builds.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
