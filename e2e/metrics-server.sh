#!/usr/bin/env bash
# metrics-server for the e2e's HPA step, built here with Go and made into an image locally
# (no registry needed), the same everywhere: here and on GitHub runners.
#
#   bash e2e/metrics-server.sh     # prints the image name; builds binary and image once (cached)
#
# The binary comes from the Go module proxy at the pinned version (sigs.k8s.io/metrics-server has
# no replace or exclude directives, so `go install module@version` builds it as released, its
# go.sum checked against the checksum database), with the version ldflags of its Makefile. The
# image is that binary FROM scratch, user 65534, as upstream's distroless image. The manifest
# e2e/metrics-server.yaml is upstream's manifests/base with --kubelet-insecure-tls (kind's
# kubelets serve self-signed certificates).
set -euo pipefail

version=v0.8.0 # v0.9.0 is served by the proxy here but is not an approved release
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubento"
dir="$cache/metrics-server-$version"
image="kubento/metrics-server:$version"
go_bin=$(command -v go || echo /usr/local/go/bin/go)
export DOCKER_BUILDKIT=0

log() { printf 'metrics-server: %s\n' "$*" >&2; }

if [[ ! -x "$dir/metrics-server" ]]; then
	log "building sigs.k8s.io/metrics-server $version with Go (a few minutes from cold caches)"
	start=$SECONDS
	pkg=k8s.io/client-go/pkg/version
	mkdir -p "$dir"
	(
		cd /
		GOBIN="$dir" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath nice -n 10 "$go_bin" install \
			-ldflags "-s -w -X $pkg.gitVersion=$version -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.buildDate=1970-01-01T00:00:00Z" \
			"sigs.k8s.io/metrics-server/cmd/metrics-server@$version"
	)
	log "built in $((SECONDS - start))s"
fi

stamp=$(sha256sum "$dir/metrics-server" | cut -c1-12)
if [[ "$(docker image inspect -f '{{index .Config.Labels "kubento.binary"}}' "$image" 2>/dev/null)" != "$stamp" ]]; then
	ctx=$(mktemp -d)
	cp "$dir/metrics-server" "$ctx/"
	printf 'FROM scratch\nCOPY metrics-server /metrics-server\nLABEL kubento.binary=%s\nUSER 65534\nENTRYPOINT ["/metrics-server"]\n' \
		"$stamp" >"$ctx/Dockerfile"
	docker build -q -t "$image" "$ctx" >/dev/null
	rm -rf "$ctx"
	log "image $image"
fi
echo "$image"
