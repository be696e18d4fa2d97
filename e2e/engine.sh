#!/usr/bin/env bash
# Make sure a docker engine answers. When none does: install Debian's docker.io if dockerd is
# missing (needs root and apt), then start dockerd in the background with overlay2. Where the
# host's capability bounding set lacks CAP_SYS_RESOURCE (some VMs), `--privileged` containers
# (kind nodes) fail in runc, so dockerd's default runtime becomes engine/runc-drop-sys-resource,
# which removes that one capability and calls runc. Elsewhere (GitHub runners) nothing changes.
#
#   bash e2e/engine.sh      # idempotent; logs in ~/.cache/kubento/engine/dockerd.log
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kubento/engine"

die() {
	printf 'engine: %s\n' "$*" >&2
	exit 1
}

answers() { docker info >/dev/null 2>&1; }

lacks_sys_resource() { # bit 24 of the bounding set is CAP_SYS_RESOURCE
	local bounding
	bounding=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
	(((0x$bounding >> 24 & 1) == 0))
}

if command -v docker >/dev/null && answers; then exit 0; fi
[[ $(id -u) == 0 ]] || die "no docker engine answers, and starting one needs root (or start docker yourself)"

if ! command -v dockerd >/dev/null; then
	echo "engine: installing Debian's docker.io" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

mkdir -p "$dir"
config="$dir/daemon.json"
if lacks_sys_resource; then
	echo "engine: this host's capability bounding set lacks CAP_SYS_RESOURCE: runc runs through $(basename "$here")/engine/runc-drop-sys-resource" >&2
	install -m 0755 "$here/engine/runc-drop-sys-resource" "$dir/runc-drop-sys-resource"
	cat >"$config" <<JSON
{"storage-driver": "overlay2",
 "runtimes": {"runc-drop-sys-resource": {"path": "$dir/runc-drop-sys-resource"}},
 "default-runtime": "runc-drop-sys-resource"}
JSON
else
	echo '{"storage-driver": "overlay2"}' >"$config"
fi

echo "engine: starting dockerd (log: $dir/dockerd.log)" >&2
setsid nohup dockerd --config-file "$config" >"$dir/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 60); do
	if answers; then
		docker version --format 'engine: docker {{.Server.Version}} ready' >&2
		exit 0
	fi
	sleep 1
done
tail -n 30 "$dir/dockerd.log" >&2
die "dockerd did not answer within 60 s"
