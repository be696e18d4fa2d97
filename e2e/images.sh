#!/usr/bin/env bash
# `make images`: the runtime, operator and example images, built with docker from this checkout.
#
#   bash e2e/images.sh [TAG]      # kubento-runtime:TAG, kubento-operator:TAG, kubento-<example>:TAG
#
# The Python base is the public python image when it can be pulled. Where no registry is
# reachable it is made here: `debootstrap --variant=minbase bookworm` with Debian's Python 3.11,
# imported into docker, and cached as kubento-python:<stamp> (its root filesystem also under
# ~/.cache/kubento/python-base/ so a wiped docker store is refilled in seconds).
# pip runs in a build stage FROM a copy of the base that trusts this machine's CA bundle
# (some networks pass PyPI through a TLS proxy); the final images never copy that stage.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
tag=${1:-dev}
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubento"
public_python=python:3.11-slim-bookworm # the default PYTHON_IMAGE of Dockerfile.runtime
debian_suite=bookworm
debian_mirror=${KUBENTO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
python_packages=python3,python3-venv,python-is-python3
host_ca=/etc/ssl/certs/ca-certificates.crt
export DOCKER_BUILDKIT=0 # the legacy builder: no buildx needed

log() { printf 'images: %s\n' "$*" >&2; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

debootstrap_python() { # print the name of a Debian Python base made with debootstrap
	local stamp image rootfs
	stamp=$({ echo "$debian_suite $python_packages"; sed -n '/^debootstrap_python()/,/^}/p' "${BASH_SOURCE[0]}"; } |
		sha256sum | cut -c1-12)
	image=kubento-python:$debian_suite-$stamp
	have_image "$image" && echo "$image" && return
	rootfs="$cache/python-base/$debian_suite-$stamp.tar"
	if [[ ! -f "$rootfs" ]]; then
		command -v debootstrap >/dev/null || {
			log "installing debootstrap"
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
		}
		local dir
		dir=$(mktemp -d)
		log "debootstrap $debian_suite with $python_packages into $dir (about a minute)"
		debootstrap --variant=minbase --include="$python_packages" "$debian_suite" "$dir" "$debian_mirror" \
			>"$dir.log" 2>&1 || {
			tail -n 20 "$dir.log" >&2
			exit 1
		}
		rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
		mkdir -p "$(dirname "$rootfs")"
		tar -C "$dir" --numeric-owner -cf "$rootfs.tmp" .
		mv "$rootfs.tmp" "$rootfs"
		rm -rf "$dir" "$dir.log"
	fi
	docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$rootfs" "$image" >/dev/null
	echo "$image"
}

python_image() {
	if have_image "$public_python" || timeout 120 docker pull "$public_python" >/dev/null 2>&1; then
		echo "$public_python"
	else
		log "$public_python cannot be pulled: using a Debian $debian_suite base made with debootstrap"
		debootstrap_python
	fi
}

build_image() { # the base plus this machine's CA bundle for pip: used by the build stages only
	local base=$1 image
	[[ -f "$host_ca" ]] || {
		echo "$base"
		return
	}
	image="kubento-python-build:$(cat <(docker image inspect -f '{{.Id}}' "$base") "$host_ca" | sha256sum | cut -c1-12)"
	if ! have_image "$image"; then
		local ctx
		ctx=$(mktemp -d)
		cp "$host_ca" "$ctx/ca-certificates.crt"
		printf 'FROM %s\nCOPY ca-certificates.crt /usr/local/share/kubento-build/ca-certificates.crt\nENV PIP_CERT=/usr/local/share/kubento-build/ca-certificates.crt\n' \
			"$base" >"$ctx/Dockerfile"
		docker build -q -t "$image" "$ctx" >/dev/null
		rm -rf "$ctx"
	fi
	echo "$image"
}

python=$(python_image)
builder=$(build_image "$python")
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
log "Python base $python (build stages: $builder)"
for target in runtime operator; do
	log "kubento-$target:$tag"
	docker build -q -f Dockerfile.runtime --target "$target" \
		--build-arg "PYTHON_IMAGE=$python" --build-arg "BUILD_IMAGE=$builder" \
		--build-arg "REVISION=$revision" -t "kubento-$target:$tag" . >/dev/null
done
# The examples the e2e deploys (the model examples need a trained model archive to build).
for example in ${E2E_EXAMPLES:-quickstart composition}; do
	log "kubento-$example:$tag"
	docker build -q --build-arg "RUNTIME_IMAGE=kubento-runtime:$tag" -t "kubento-$example:$tag" "examples/$example" >/dev/null
done
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^kubento-[a-z-]+:$tag " >&2
