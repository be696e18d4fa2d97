#!/usr/bin/env bash
# Provide the local control-plane binaries: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok, kwokctl and helm.
#
#   bash tests/cluster/bins.sh          build what is missing, then print where each binary is
#   bash tests/cluster/bins.sh --print  only print name=path lines (no build; paths may not exist)
#
# etcd and kube-apiserver come from $KUBEBUILDER_ASSETS when it holds them (the envtest
# convention); everything else is built with the Go toolchain from the wrapper modules in
# tests/cluster/bins/*, whose go.mod/go.sum pin the versions. Builds are cached under
# ${XDG_CACHE_HOME:-~/.cache}/kubento/<versions>/bin, so a second run is instant.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mods="$here/bins"

pinned() { # pinned MODULE_DIR GO_MODULE -> the version that wrapper's go.mod requires
	awk -v m="$2" '$1 == "require" && $2 == m { print $3 } $1 == m && NF == 2 { print $2 }' \
		"$mods/$1/go.mod" | head -n1
}
kube_version=$(pinned kubernetes k8s.io/kubernetes)
etcd_version=$(pinned etcd go.etcd.io/etcd/server/v3)
kwok_version=$(pinned kwok sigs.k8s.io/kwok)
helm_version=$(pinned helm helm.sh/helm/v3)
cache="${KUBENTO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubento}"
bin="$cache/cluster-k8s-$kube_version-etcd-$etcd_version-kwok-$kwok_version-helm-$helm_version/bin"

# name -> wrapper module that builds it
declare -A module_of=(
	[etcd]=etcd [kube-apiserver]=kubernetes [kube-controller-manager]=kubernetes
	[kube-scheduler]=kubernetes [kwok]=kwok [kwokctl]=kwok [helm]=helm
)
names=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl helm)

path_of() { # where binary $1 is taken from
	case "$1" in
	etcd | kube-apiserver)
		if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$1" ]]; then
			echo "$KUBEBUILDER_ASSETS/$1"
			return
		fi
		;;
	esac
	echo "$bin/$1"
}

print_paths() {
	for name in "${names[@]}"; do echo "$name=$(path_of "$name")"; done
}

if [[ "${1:-}" == "--print" ]]; then
	print_paths
	exit 0
fi

go_bin=$(command -v go || true)
[[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go

stamp_of() { # content that must match for a module's cached build to be reused
	cat "$mods/$1/go.mod" "$mods/$1/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
}

ldflags_of() {
	local kube_minor=${kube_version#v1.}
	kube_minor=${kube_minor%%.*}
	case "$1" in
	kubernetes)
		local v
		for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s ' \
				"$v" "$kube_version" "$v" "$v" "$kube_minor"
			printf -- '-X %s.gitTreeState=clean ' "$v"
		done
		;;
	kwok) printf -- '-X sigs.k8s.io/kwok/pkg/consts.Version=%s -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=%s' \
		"$kwok_version" "$kube_version" ;;
	helm) printf -- '-X helm.sh/helm/v3/internal/version.version=%s -X helm.sh/helm/v3/internal/version.gitTreeState=clean' \
		"$helm_version" ;;
	esac
}

build_module() { # build_module MODULE NAME... : build the named commands of one wrapper module
	local module=$1
	shift
	local pkgs=() name
	for name in "$@"; do
		case "$name" in
		etcd) pkgs+=(go.etcd.io/etcd/server/v3) ;;
		kube-*) pkgs+=("k8s.io/kubernetes/cmd/$name") ;;
		kwok | kwokctl) pkgs+=("sigs.k8s.io/kwok/cmd/$name") ;;
		helm) pkgs+=(helm.sh/helm/v3/cmd/helm) ;;
		esac
	done
	if [[ -z "$go_bin" ]]; then
		echo "bins.sh: cannot build $* — no Go toolchain found (install Go 1.24+, or set" >&2
		echo "KUBEBUILDER_ASSETS to a directory holding etcd and kube-apiserver)." >&2
		exit 1
	fi
	echo "bins.sh: building $* ($module wrapper module) with $("$go_bin" version | cut -d' ' -f3) ..." >&2
	local start=$SECONDS tmp
	tmp=$(mktemp -d "$bin/.build.XXXXXX")
	(
		cd "$mods/$module"
		GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly" \
			"$go_bin" build -p "${KUBENTO_BUILD_JOBS:-2}" \
			-ldflags "-s -w $(ldflags_of "$module")" -o "$tmp/" "${pkgs[@]}"
	)
	# etcd's main package is the server module itself, so go names its binary "server".
	if [[ -f "$tmp/server" ]]; then mv "$tmp/server" "$tmp/etcd"; fi
	for name in "$@"; do mv -f "$tmp/$name" "$bin/$name"; done
	rmdir "$tmp"
	stamp_of "$module" >"$bin/.stamp-$module"
	echo "bins.sh: built $* in $((SECONDS - start))s" >&2
}

mkdir -p "$bin"
for module in etcd kubernetes kwok helm; do
	wanted=()
	for name in "${names[@]}"; do
		[[ "${module_of[$name]}" == "$module" ]] || continue
		target=$(path_of "$name")
		[[ "$target" == "$bin/$name" ]] || continue # provided by KUBEBUILDER_ASSETS
		if [[ ! -x "$target" || "$(cat "$bin/.stamp-$module" 2>/dev/null)" != "$(stamp_of "$module")" ]]; then
			wanted+=("$name")
		fi
	done
	if ((${#wanted[@]})); then build_module "$module" "${wanted[@]}"; fi
done

echo "bins.sh: Kubernetes $kube_version, etcd $etcd_version, kwok $kwok_version, helm $helm_version" >&2
print_paths
