//go:build tools

// Package tools pins the NetworkPolicy agent that e2e/node-image.sh puts in the locally built
// kind node image (kube-network-policies, the agent kindnetd embeds in the official image).
package tools

import (
	_ "sigs.k8s.io/kube-network-policies/cmd"
)
