#!/usr/bin/env bash
# Prometheus and prometheus-adapter for the e2e's queue autoscaling step, built here with Go
# into local images (e2e/go-image.sh), as metrics-server is.
#
#   bash e2e/prometheus.sh     # prints "PROMETHEUS_IMAGE ADAPTER_IMAGE"; builds each once (cached)
#
# Prometheus's Go module versions v0.3MM.P are its releases 3.MM.P. It is built with only its
# Kubernetes service discovery (remove_all_sd,enable_kubernetes_sd: the others bring in every
# cloud's SDK) and without the web UI's assets (no builtinassets tag: the e2e reads its HTTP
# API only); netgo as its release builds. prometheus-adapter as its Makefile builds it.
# The manifests are e2e/prometheus.yaml and e2e/prometheus-adapter.yaml.
set -euo pipefail

prometheus_version=v0.316.0 # Prometheus 3.16.0; its go.mod needs Go 1.26.7 or later
adapter_version=v0.12.0     # the latest release; the module proxy here lists no version of it

here=$(dirname "${BASH_SOURCE[0]}")
IFS=. read -r _ minor patch <<<"${prometheus_version#v}"
release="3.$((minor - 300)).$patch"
prometheus=$(bash "$here/go-image.sh" prometheus github.com/prometheus/prometheus "$prometheus_version" \
	github.com/prometheus/prometheus/cmd/prometheus -tags netgo,remove_all_sd,enable_kubernetes_sd \
	-ldflags "-s -w -X github.com/prometheus/common/version.Version=$release")
adapter=$(bash "$here/go-image.sh" prometheus-adapter sigs.k8s.io/prometheus-adapter "$adapter_version" \
	sigs.k8s.io/prometheus-adapter/cmd/adapter -ldflags "-s -w")
echo "$prometheus $adapter"
