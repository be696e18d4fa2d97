#!/usr/bin/env bash
# A kind node image built on this machine, for where kindest/node cannot be pulled.
#
#   bash e2e/node-image.sh KIND     # prints the image name; builds it once (cached)
#
# What kind's own images/base/Dockerfile does, without a registry or buildx:
#   - the base: `debootstrap --variant=minbase bookworm` with kind's package list (less the
#     network-storage and rootless ones), kind's files from its module, containerd, runc,
#     crictl and the standard CNI plugins built with Go (e2e/node-bins.sh), and a CNI config
#     for one node (ptp + host-local + portmap): kindnetd's source cannot be fetched here;
#   - the Kubernetes "release tarball" kind's `build node-image --type file` reads: kubeadm,
#     kubelet, kubectl and image archives of the control plane, kube-proxy, etcd, CoreDNS and
#     pause, each image FROM scratch (kube-proxy FROM the base, for iptables). kind pulls every
#     preloaded image it does not find by the first name in each archive's `repositories`
#     file, so kube-proxy.tar carries the extra images and lists their names first, plus the
#     names of images this image deliberately leaves out (kindnetd, local-path storage, and
#     etcd's default tag: kubeadm is told the tag of the etcd built here, see e2e/run.sh);
#   - for NetworkPolicy, which that CNI does not enforce, the image of kube-network-policies
#     (the agent kindnetd embeds) FROM the base, for its iptables and nft, preloaded too; the
#     node image's label kubento.network-policies names it, and e2e/run.sh deploys it
#     (e2e/network-policies.yaml);
#   - no default StorageClass: the suite uses no volumes.
# Everything is keyed on the pinned versions: a second run prints the cached image at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
kind=$1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubento"
suite=bookworm
mirror=${KUBENTO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps
export DOCKER_BUILDKIT=0

log() { printf 'node-image: %s\n' "$*" >&2; }

kind_version=v$("$kind" version -q)
kind_src="$(go env GOMODCACHE)/sigs.k8s.io/kind@$kind_version"
[[ -d "$kind_src" ]] || (cd /tmp && go mod download "sigs.k8s.io/kind@$kind_version")
kube=$(awk '$1 == "k8s.io/kubernetes" || ($1 == "require" && $2 == "k8s.io/kubernetes") { print $NF; exit }' \
	"$here/bins/kubernetes/go.mod")
etcd_bin=$(bash "$repo/tests/cluster/bins.sh" | sed -n 's/^etcd=//p')
etcd_version=$("$etcd_bin" --version | awk '/etcd Version/ { print $3 }')
stamp=$(cat "$here"/bins/*/go.mod "$here"/bins/*/go.sum "$here"/bins/*/*.go "$here/node-bins.sh" "${BASH_SOURCE[0]}" \
	<(echo "$kind_version $etcd_version $packages") | sha256sum | cut -c1-12)
image="kubento/kind-node:$kube-$stamp"
if docker image inspect "$image" >/dev/null 2>&1; then
	echo "$image"
	exit 0
fi
start=$SECONDS
work="$cache/kind-node-$stamp"
bins="$cache/kind-node-bins-$(cat "$here"/bins/*/go.mod "$here"/bins/*/go.sum "$here"/bins/*/*.go "$here/node-bins.sh" | sha256sum | cut -c1-12)"
mkdir -p "$work"

for tool in gcc jq; do
	command -v "$tool" >/dev/null || missing_tools=1
done
if [[ -n "${missing_tools:-}" || ! -e /usr/include/seccomp.h ]] || ! command -v debootstrap >/dev/null; then
	log "installing build tools from Debian (gcc, libseccomp-dev, debootstrap, jq)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev libseccomp-dev debootstrap jq >/dev/null
fi
bash "$here/node-bins.sh" "$bins"

# --- the base image ------------------------------------------------------------------------
base="kubento/kind-base:$( (echo "$kind_version $packages $bins" && sed -n '/^# --- the base image/,/^# --- the Kubernetes/p' "${BASH_SOURCE[0]}") |
	sha256sum | cut -c1-12)"
if ! docker image inspect "$base" >/dev/null 2>&1; then
	rootfs="$work/rootfs"
	rm -rf "$rootfs"
	log "debootstrap $suite for the node base (a minute or two)"
	debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
		tail -n 20 "$work/debootstrap.log" >&2
		exit 1
	}
	files="$kind_src/images/base/files"
	install -m 0755 "$files"/usr/local/bin/* "$rootfs/usr/local/bin/"
	mkdir -p "$rootfs/kind/bin" "$rootfs/etc/containerd" "$rootfs/etc/systemd/system/kubelet.service.d" \
		"$rootfs/etc/kubernetes/manifests" "$rootfs/opt/cni/bin" "$rootfs/etc/cni/net.d" "$rootfs/kind/manifests"
	install -m 0644 "$files"/kind/README.txt "$rootfs/kind/"
	install -m 0755 "$files"/kind/bin/* "$rootfs/kind/bin/"
	install -m 0644 "$files"/etc/crictl.yaml "$rootfs/etc/"
	install -m 0644 "$files"/etc/containerd/* "$rootfs/etc/containerd/"
	install -m 0644 "$files"/etc/default/* "$rootfs/etc/default/"
	install -m 0644 "$files"/etc/sysctl.d/* "$rootfs/etc/sysctl.d/"
	install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$rootfs/etc/systemd/system/"
	install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$rootfs/etc/systemd/system/kubelet.service.d/"
	rm -f "$rootfs/etc/systemd/system/containerd-fuse-overlayfs.service"
	# kind's base Dockerfile: no boot-time services a container does not want.
	find "$rootfs/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
	rm -f "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/* \
		"$rootfs"/lib/systemd/system/local-fs.target.wants/* "$rootfs"/lib/systemd/system/sockets.target.wants/*udev* \
		"$rootfs"/lib/systemd/system/sockets.target.wants/*initctl* "$rootfs"/lib/systemd/system/basic.target.wants/*
	echo "ReadKMsg=no" >>"$rootfs/etc/systemd/journald.conf"
	ln -sf /lib/systemd/systemd "$rootfs/sbin/init"
	chroot "$rootfs" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
	chroot "$rootfs" systemctl mask systemd-binfmt.service >/dev/null 2>&1
	install -m 0755 "$bins"/containerd "$bins"/containerd-shim-runc-v2 "$bins"/ctr "$bins"/crictl "$rootfs/usr/local/bin/"
	install -m 0755 "$bins"/runc "$rootfs/usr/local/sbin/runc"
	install -m 0755 "$bins"/host-local "$bins"/loopback "$bins"/ptp "$bins"/portmap "$rootfs/opt/cni/bin/"
	"$bins/ctr" oci spec |
		jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
		jq 'del(.process.rlimits)' >"$rootfs/etc/containerd/cri-base.json"
	# One node, so pods need no overlay: a veth per pod, host-local addresses from kind's pod subnet.
	cat >"$rootfs/etc/cni/net.d/10-kubento-ptp.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "kubento-ptp", "plugins": [
  {"type": "ptp", "ipMasq": true, "mtu": 1460,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	log "importing the node base"
	tar -C "$rootfs" --numeric-owner -c . | docker import - "$base-rootfs" >/dev/null
	rm -rf "$rootfs"
	printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' \
		"$base-rootfs" | docker build -q -t "$base" - >/dev/null
fi

# --- the Kubernetes tarball ----------------------------------------------------------------
k8s="$work/kubernetes"
rm -rf "$k8s" && mkdir -p "$k8s/server/bin"
echo "$kube" >"$k8s/version"
cp "$bins"/kubeadm "$bins"/kubelet "$bins"/kubectl "$k8s/server/bin/"
scratch_image() { # scratch_image NAME BINARY [ENTRYPOINT]: the binary at /usr/local/bin on scratch
	local ctx
	ctx=$(mktemp -d)
	cp "$2" "$ctx/"
	{
		echo "FROM scratch"
		echo "COPY $(basename "$2") /usr/local/bin/"
		echo "ENV PATH=/usr/local/bin"
		[[ -z "${3:-}" ]] || echo "ENTRYPOINT [\"/usr/local/bin/$(basename "$2")\"]"
	} >"$ctx/Dockerfile"
	docker build -q -t "$1" "$ctx" >/dev/null
	rm -rf "$ctx"
}
for name in kube-apiserver kube-controller-manager kube-scheduler; do
	scratch_image "registry.k8s.io/$name-amd64:$kube" "$bins/$name"
	docker save "registry.k8s.io/$name-amd64:$kube" >"$k8s/server/bin/$name.tar"
done
etcd_image="registry.k8s.io/etcd:${etcd_version}-0"
scratch_image "$etcd_image" "$etcd_bin"
scratch_image registry.k8s.io/coredns/coredns:v1.12.0 "$bins/coredns" entrypoint
scratch_image registry.k8s.io/pause:3.10 "$bins/pause" entrypoint
printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\n' "$base" >"$bins/Dockerfile.kube-proxy"
docker build -q -f "$bins/Dockerfile.kube-proxy" -t "registry.k8s.io/kube-proxy-amd64:$kube" "$bins" >/dev/null
agent="kubento/kube-network-policies:$(awk '$1 == "require" && $2 == "sigs.k8s.io/kube-network-policies" { print $3 }' \
	"$here/bins/kube-network-policies/go.mod")"
ctx=$(mktemp -d)
cp "$bins/kube-network-policies" "$ctx/"
printf 'FROM %s\nCOPY kube-network-policies /usr/local/bin/\nSTOPSIGNAL SIGTERM\nENTRYPOINT ["/usr/local/bin/kube-network-policies"]\n' \
	"$base" >"$ctx/Dockerfile"
docker build -q -t "$agent" "$ctx" >/dev/null
rm -rf "$ctx"
extra=("registry.k8s.io/kube-proxy-amd64:$kube" "$etcd_image" registry.k8s.io/coredns/coredns:v1.12.0 registry.k8s.io/pause:3.10 "$agent")
mapfile -t left_out < <(
	"$bins/kubeadm" config images list --kubernetes-version "$kube" 2>/dev/null | grep /etcd:
	grep -ho 'docker.io/kindest/[a-z-]*:[a-z0-9-]*' "$kind_src"/pkg/build/nodeimage/const_*.go | sort -u
)
archive="$work/proxy-and-extras"
rm -rf "$archive" && mkdir -p "$archive"
docker save "${extra[@]}" | tar -C "$archive" -x
python3 - "$archive/repositories" "${extra[@]}" "${left_out[@]}" <<'PY'
import json, sys
repositories = {}
for name in sys.argv[2:]:
    repo, tag = name.rsplit(":", 1)
    repositories.setdefault(repo, {})[tag] = "kubento"
json.dump(repositories, open(sys.argv[1], "w"))
PY
(
	cd "$archive"
	entries=(repositories)
	for entry in *; do [[ "$entry" == repositories ]] || entries+=("$entry"); done
	tar -cf "$k8s/server/bin/kube-proxy.tar" "${entries[@]}"
)
rm -rf "$archive"
tar -C "$work" -czf "$work/kubernetes-server-linux-amd64.tar.gz" kubernetes
rm -rf "$k8s"

log "kind build node-image $image (kind pulls the base image a few times first, harmlessly)"
"$kind" build node-image --type file "$work/kubernetes-server-linux-amd64.tar.gz" \
	--base-image "$base" --image "$image-kind" >&2
printf 'FROM %s\nRUN printf "%s\\n" "# The locally built node image has no default StorageClass (e2e/node-image.sh)." "apiVersion: v1" "kind: ConfigMap" "metadata: {name: kubento-no-default-storage, namespace: kube-system}" >/kind/manifests/default-storage.yaml\nLABEL kubento.network-policies=%s\n' \
	"$image-kind" '%s' "$agent" | docker build -q -t "$image" - >/dev/null
docker rmi "$image-kind" >/dev/null
rm -f "$work/kubernetes-server-linux-amd64.tar.gz"
log "built $image in $((SECONDS - start))s"
echo "$image"
