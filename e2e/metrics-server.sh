#!/usr/bin/env bash
# metrics-server for the e2e's HPA step, built here with Go and made into an image locally
# (e2e/go-image.sh), the same everywhere: here and on GitHub runners.
#
#   bash e2e/metrics-server.sh     # prints the image name; builds binary and image once (cached)
#
# With the version ldflags of its Makefile. The manifest e2e/metrics-server.yaml is upstream's
# manifests/base with --kubelet-insecure-tls (kind's kubelets serve self-signed certificates).
set -euo pipefail

version=v0.8.0 # v0.9.0 is served by the proxy here but is not an approved release
pkg=k8s.io/client-go/pkg/version
exec bash "$(dirname "${BASH_SOURCE[0]}")/go-image.sh" metrics-server sigs.k8s.io/metrics-server "$version" \
	sigs.k8s.io/metrics-server/cmd/metrics-server \
	-ldflags "-s -w -X $pkg.gitVersion=$version -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.buildDate=1970-01-01T00:00:00Z"
