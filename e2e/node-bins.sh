#!/usr/bin/env bash
# The binaries of a locally built kind node image, built with Go from the wrapper modules in
# e2e/bins/* (their go.mod/go.sum pin every version) into a cache directory keyed on them.
#
#   bash e2e/node-bins.sh DIR     # build what DIR lacks; DIR/<name> afterwards
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$1
mods="$here/bins"
go_bin=$(command -v go || echo /usr/local/go/bin/go)
jobs=${KUBENTO_BUILD_JOBS:-2}
mkdir -p "$out"

pinned() { # pinned MODULE_DIR GO_MODULE -> the version the wrapper requires
	awk -v m="$2" '$1 == "require" && $2 == m { print $3 } $1 == m && NF == 2 { print $2 }' \
		"$mods/$1/go.mod" | head -n1
}

go_build() { # go_build MODULE_DIR CGO TAGS LDFLAGS OUTPUT PACKAGE...
	local module=$1 cgo=$2 tags=$3 ldflags=$4 output=$5
	shift 5
	echo "node-bins: building $module ($*)" >&2
	local start=$SECONDS
	(
		cd "$mods/$module"
		GOTOOLCHAIN=local CGO_ENABLED=$cgo GOFLAGS="-trimpath -mod=readonly" \
			nice -n 10 "$go_bin" build -p "$jobs" -tags "$tags" -ldflags "-s -w $ldflags" -o "$output" "$@"
	)
	echo "node-bins: built $module in $((SECONDS - start))s" >&2
}

build() { # build MODULE_DIR CGO TAGS LDFLAGS PACKAGE...: each PACKAGE's binary, named after it
	local missing=0 pkg
	for pkg in "${@:5}"; do [[ -x "$out/$(basename "$pkg")" ]] || missing=1; done
	((missing)) || return 0
	go_build "$1" "$2" "$3" "$4" "$out/" "${@:5}"
}

kube=$(pinned kubernetes k8s.io/kubernetes)
minor=${kube#v1.}
minor=${minor%%.*}
kube_ldflags=""
for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+="-X $v.gitVersion=$kube -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitCommit=0000000000000000000000000000000000000000 "
	kube_ldflags+="-X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z "
done
k=k8s.io/kubernetes/cmd
build kubernetes 0 "" "$kube_ldflags" $k/kubeadm $k/kubelet $k/kubectl $k/kube-proxy \
	$k/kube-apiserver $k/kube-controller-manager $k/kube-scheduler

containerd=$(pinned containerd github.com/containerd/containerd/v2)
c=github.com/containerd/containerd/v2
build containerd 1 "no_aufs no_btrfs no_devmapper no_zfs" \
	"-X $c/version.Version=$containerd -X $c/version.Package=github.com/containerd/containerd/v2" \
	$c/cmd/containerd $c/cmd/containerd-shim-runc-v2 $c/cmd/ctr

runc=$(pinned runc github.com/opencontainers/runc)
build runc 1 seccomp "-X main.version=${runc#v}" github.com/opencontainers/runc

crictl=$(pinned cri-tools sigs.k8s.io/cri-tools)
build cri-tools 0 "" "-X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl" sigs.k8s.io/cri-tools/cmd/crictl

p=github.com/containernetworking/plugins/plugins
build cni 0 "" "" $p/ipam/host-local $p/main/loopback $p/main/ptp $p/meta/portmap

# CoreDNS with the plugins a kind cluster uses (bins/coredns/main.go), not all of them.
build coredns 0 "" "" kubento.dev/e2e-bins/coredns

# The NetworkPolicy agent (e2e/network-policies.yaml), as upstream builds it; its main package
# is .../cmd, so the binary is named here.
[[ -x "$out/kube-network-policies" ]] ||
	go_build kube-network-policies 0 "" "" "$out/kube-network-policies" sigs.k8s.io/kube-network-policies/cmd

if [[ ! -x "$out/pause" ]]; then # kubeadm's sandbox image: pause.c from the Kubernetes module
	src=$(cd "$mods/kubernetes" && GOFLAGS=-mod=readonly "$go_bin" list -m -f '{{.Dir}}' k8s.io/kubernetes)
	[[ -d "$src" ]] || (cd "$mods/kubernetes" && "$go_bin" mod download k8s.io/kubernetes)
	src=$(cd "$mods/kubernetes" && GOFLAGS=-mod=readonly "$go_bin" list -m -f '{{.Dir}}' k8s.io/kubernetes)
	gcc -Os -static -DVERSION=v3.10-kubento -o "$out/pause" "$src/build/pause/linux/pause.c"
	strip "$out/pause"
fi
echo "node-bins: all in $out" >&2
