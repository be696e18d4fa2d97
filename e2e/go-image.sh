#!/usr/bin/env bash
# A Go program the e2e runs in its cluster (metrics-server, Prometheus, prometheus-adapter),
# built here from the Go module proxy and made into an image locally: no registry needed, the
# same everywhere, here and on GitHub runners.
#
#   bash e2e/go-image.sh NAME MODULE VERSION PACKAGE [GO BUILD FLAG...]   # prints the image
#
# The build is what `go install PACKAGE@VERSION` does: a throwaway main module that requires
# only MODULE@VERSION, so the build list is the module's own requirements, every go.sum line
# checked against the checksum database; a module with replace or exclude directives is
# refused (they would be ignored). Not `go install` itself: it also reads the module's version
# list for deprecation notices, which the module proxy here refuses for some modules it serves
# (sigs.k8s.io/prometheus-adapter). Static (CGO_ENABLED=0), with trimmed paths.
# The binary is cached under ~/.cache/kubento/NAME-VERSION-<hash of the package and flags>/;
# the image kubento/NAME:VERSION is that binary FROM scratch, user 65534 (as upstream's
# distroless images), rebuilt only when the binary changed.
set -euo pipefail

name=$1 module=$2 version=$3 package=$4
shift 4
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubento"
dir="$cache/$name-$version-$(printf '%s\n' "$package" "$@" | sha256sum | cut -c1-12)"
image="kubento/$name:$version"
go_bin=$(command -v go || echo /usr/local/go/bin/go)
export DOCKER_BUILDKIT=0 GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"

log() { printf '%s: %s\n' "$name" "$*" >&2; }

if [[ ! -x "$dir/$name" ]]; then
	log "building $package@$version with Go (minutes from cold caches)"
	start=$SECONDS
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	mkdir -p "$dir"
	(
		cd "$src"
		"$go_bin" mod init "kubento.local/e2e/$name" 2>/dev/null
		"$go_bin" mod edit -require="$module@$version"
		mod=$("$go_bin" mod download -json "$module@$version" | python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
		if grep -qE '^(replace|exclude)\b' "$mod"; then
			log "$module@$version has replace or exclude directives: it cannot be built as released"
			exit 1
		fi
		nice -n 10 "$go_bin" build -o "$dir/$name.tmp" "$@" "$package"
	)
	mv "$dir/$name.tmp" "$dir/$name"
	log "built in $((SECONDS - start))s"
fi

stamp=$(sha256sum "$dir/$name" | cut -c1-12)
if [[ "$(docker image inspect -f '{{index .Config.Labels "kubento.binary"}}' "$image" 2>/dev/null)" != "$stamp" ]]; then
	ctx=$(mktemp -d)
	cp "$dir/$name" "$ctx/"
	printf 'FROM scratch\nCOPY %s /%s\nLABEL kubento.binary=%s\nUSER 65534\nENTRYPOINT ["/%s"]\n' \
		"$name" "$name" "$stamp" "$name" >"$ctx/Dockerfile"
	docker build -q -t "$image" "$ctx" >/dev/null
	rm -rf "$ctx"
	log "image $image"
fi
echo "$image"
