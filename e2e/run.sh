#!/usr/bin/env bash
# Kubento end to end on kind: real images, real pods (`make e2e`).
#
#   1. create a kind cluster (e2e/kind.yaml, pinned node image)
#   2. build the runtime, operator and quickstart images and `kind load` them
#   3. helm install the operator chart; apply examples/quickstart/bentodeployment.yaml
#   4. wait for condition=Ready, port-forward the API, POST a request, check the answer
#      against the model called directly in the same image
#   5. scale the runner to 2 pods and check the answers stay right
#   6. delete the BentoDeployment and check every child is garbage-collected
#
# Needs docker, kubectl and helm (or HELM=/path/to/helm); kind is installed with Go at the
# pinned version when missing. On failure, logs, events and object dumps are collected in
# $KUBENTO_E2E_ARTIFACTS (default .kubento/e2e-artifacts). KUBENTO_E2E_KEEP=1 keeps the cluster.
set -euo pipefail

KIND_VERSION=v0.33.0 # the node image in e2e/kind.yaml is the one built for this release
CLUSTER=${KUBENTO_E2E_CLUSTER:-kubento-e2e}
OPERATOR_NAMESPACE=kubento-system
APP_NAMESPACE=kubento-e2e
RELEASE=kubento
TAG=e2e
RUNTIME_IMAGE=kubento-runtime:$TAG
OPERATOR_IMAGE=kubento-operator:$TAG
APP_IMAGE=kubento-quickstart:$TAG
EXAMPLE=examples/quickstart
LOCAL_PORT=${KUBENTO_E2E_PORT:-18080}
# Two rows of the quickstart's sample input.
REQUEST='[[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]'

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
artifacts=${KUBENTO_E2E_ARTIFACTS:-$repo/.kubento/e2e-artifacts}
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubento"
port_forward_pid=""

log() { printf '\n=== %s\n' "$*" >&2; }
die() {
	printf 'e2e: FAIL: %s\n' "$*" >&2
	exit 1
}

# --- tools ------------------------------------------------------------------------------------

need() { command -v "$1" >/dev/null || die "$1 is required (${2})"; }

find_kind() {
	# `kind version -q` prints the bare version, e.g. 0.33.0
	if command -v kind >/dev/null && [[ "v$(kind version -q 2>/dev/null)" == "$KIND_VERSION" ]]; then
		command -v kind
		return
	fi
	local dir="$cache/kind-$KIND_VERSION"
	if [[ ! -x "$dir/kind" ]]; then
		need go "to install kind $KIND_VERSION, or put kind $KIND_VERSION on PATH"
		echo "e2e: installing kind $KIND_VERSION into $dir" >&2
		GOBIN="$dir" go install "sigs.k8s.io/kind@$KIND_VERSION"
	fi
	echo "$dir/kind"
}

find_helm() {
	if [[ -n "${HELM:-}" ]]; then
		echo "$HELM"
	elif command -v helm >/dev/null; then
		command -v helm
	else
		local built
		built=$(bash tests/cluster/bins.sh --print | sed -n 's/^helm=//p')
		[[ -x "$built" ]] || die "helm is required: put it on PATH, set HELM, or run make cluster-bins"
		echo "$built"
	fi
}

# --- diagnostics and cleanup -------------------------------------------------------------------

collect() {
	log "collecting logs and events into $artifacts"
	mkdir -p "$artifacts"
	kubectl get nodes -o wide >"$artifacts/nodes.txt" 2>&1 || true
	kubectl get all,bentodeployments,hpa,events -A -o wide >"$artifacts/objects.txt" 2>&1 || true
	kubectl get bentodeployments -A -o yaml >"$artifacts/bentodeployments.yaml" 2>&1 || true
	kubectl get events -A --sort-by=.lastTimestamp >"$artifacts/events.txt" 2>&1 || true
	local ns pod
	for ns in "$OPERATOR_NAMESPACE" "$APP_NAMESPACE"; do
		kubectl -n "$ns" describe all,bentodeployments >"$artifacts/describe-$ns.txt" 2>&1 || true
		for pod in $(kubectl -n "$ns" get pods -o name 2>/dev/null); do
			kubectl -n "$ns" logs "$pod" --all-containers --timestamps \
				>"$artifacts/logs-$ns-${pod#pod/}.txt" 2>&1 || true
			kubectl -n "$ns" logs "$pod" --all-containers --timestamps --previous \
				>"$artifacts/logs-$ns-${pod#pod/}-previous.txt" 2>/dev/null || true
		done
	done
	"$helm" status "$RELEASE" -n "$OPERATOR_NAMESPACE" >"$artifacts/helm-status.txt" 2>&1 || true
	"$kind" export logs "$artifacts/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
}

finish() {
	local status=$?
	if [[ -n "$port_forward_pid" ]]; then kill "$port_forward_pid" 2>/dev/null || true; fi
	if ((status != 0)); then collect; fi
	if [[ "${KUBENTO_E2E_KEEP:-0}" == "1" ]]; then
		echo "e2e: keeping kind cluster $CLUSTER (kind delete cluster --name $CLUSTER)" >&2
	else
		"$kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
	fi
	if ((status == 0)); then echo "e2e: PASS" >&2; else echo "e2e: FAIL (artifacts: $artifacts)" >&2; fi
}

# --- helpers -----------------------------------------------------------------------------------

# Poll `$@` until it succeeds or `$1` seconds pass.
eventually() {
	local timeout=$1
	shift
	local deadline=$((SECONDS + timeout))
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 2
	done
}

children() { # every object the operator created for BentoDeployment $1
	kubectl -n "$APP_NAMESPACE" get deployments,services,hpa,pods \
		-l "serving.kubento.io/deployment=$1" -o name
}

no_children() {
	local left
	left=$(children "$1") || return 1
	[[ -z "$left" ]]
}

post() { # POST $REQUEST to API $1 on the forwarded port; print the body
	curl --silent --show-error --fail-with-body --max-time 30 \
		-H 'Content-Type: application/json' -d "$REQUEST" "http://127.0.0.1:$LOCAL_PORT/$1"
}

same_json() { # compare two JSON documents by value
	python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2"
}

api_answers() { post "$1" >/dev/null 2>&1; }

# --- the suite ---------------------------------------------------------------------------------

need docker "to build images"
need kubectl "to drive the cluster"
need curl "to call the API"
need python3 "to compare JSON answers"
kind=$(find_kind)
helm=$(find_helm)
trap finish EXIT
mkdir -p "$artifacts"

log "kind $KIND_VERSION: creating cluster $CLUSTER"
"$kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
"$kind" create cluster --name "$CLUSTER" --config e2e/kind.yaml --wait 180s
kubectl config use-context "kind-$CLUSTER"

log "building images"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
docker build -f Dockerfile.runtime --target runtime --build-arg "REVISION=$revision" \
	-t "$RUNTIME_IMAGE" .
docker build -f Dockerfile.runtime --target operator --build-arg "REVISION=$revision" \
	-t "$OPERATOR_IMAGE" .
docker build --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE" -t "$APP_IMAGE" "$EXAMPLE"
for image in "$OPERATOR_IMAGE" "$APP_IMAGE"; do
	"$kind" load docker-image "$image" --name "$CLUSTER"
done

log "runtime image: non-root, kubento entrypoint"
[[ "$(docker image inspect -f '{{.Config.User}}' "$RUNTIME_IMAGE")" == "10001:10001" ]] ||
	die "$RUNTIME_IMAGE does not run as 10001:10001"
docker run --rm --read-only "$RUNTIME_IMAGE" --help >/dev/null ||
	die "$RUNTIME_IMAGE: 'kubento --help' failed on a read-only root filesystem"

log "helm install the operator (restricted pod security enforced)"
for ns in "$OPERATOR_NAMESPACE" "$APP_NAMESPACE"; do
	kubectl create namespace "$ns"
	kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted
done
"$helm" install "$RELEASE" charts/kubento-operator --namespace "$OPERATOR_NAMESPACE" \
	--set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="$TAG" \
	--set image.pullPolicy=Never --set log.level=debug \
	--wait --timeout 5m

log "apply $EXAMPLE/bentodeployment.yaml with the image built here"
name=$(kubectl create --dry-run=client -f "$EXAMPLE/bentodeployment.yaml" -o jsonpath='{.metadata.name}')
runner=$(kubectl create --dry-run=client -f "$EXAMPLE/bentodeployment.yaml" \
	-o jsonpath='{.spec.runners[0].name}')
[[ -n "$name" && -n "$runner" ]] || die "$EXAMPLE/bentodeployment.yaml needs metadata.name and one runner"
kubectl patch --local --type=merge -o yaml -f "$EXAMPLE/bentodeployment.yaml" \
	-p "{\"spec\": {\"image\": \"$APP_IMAGE\", \"imagePullPolicy\": \"Never\"}}" |
	kubectl -n "$APP_NAMESPACE" apply -f -

log "waiting for bentodeployment/$name to be Ready"
kubectl -n "$APP_NAMESPACE" wait "bentodeployment/$name" --for=condition=Ready --timeout=5m
kubectl -n "$APP_NAMESPACE" get bentodeployment "$name"

log "POST /classify through a port-forward"
api_service=$(kubectl -n "$APP_NAMESPACE" get services -o name \
	-l "serving.kubento.io/deployment=$name,serving.kubento.io/component=api")
[[ -n "$api_service" ]] || die "no API Service labelled serving.kubento.io/deployment=$name"
kubectl -n "$APP_NAMESPACE" port-forward "$api_service" "$LOCAL_PORT:http" >"$artifacts/port-forward.log" 2>&1 &
port_forward_pid=$!
eventually 60 api_answers classify || die "the API did not answer through $api_service"
answer=$(post classify)
expected=$(docker run --rm --entrypoint python "$APP_IMAGE" -c "
import json, numpy as np, service
service.classifier.init_local()
print(json.dumps(service.classifier.predict.run(np.array($REQUEST, dtype=np.float32)).tolist()))")
echo "answer: $answer  expected: $expected" >&2
same_json "$answer" "$expected" || die "POST /classify answered $answer, the model gives $expected"

log "scale runner $runner to 2 pods"
runner_deployment=$(kubectl -n "$APP_NAMESPACE" get deployments -o name \
	-l "serving.kubento.io/deployment=$name,serving.kubento.io/component=runner")
[[ $(wc -w <<<"$runner_deployment") == 1 ]] || die "expected one runner Deployment, got: $runner_deployment"
kubectl -n "$APP_NAMESPACE" patch bentodeployment "$name" --type=json \
	-p '[{"op": "add", "path": "/spec/runners/0/autoscaling", "value": {"minReplicas": 2, "maxReplicas": 3}}]'
kubectl -n "$APP_NAMESPACE" wait "$runner_deployment" --for=jsonpath='{.status.readyReplicas}'=2 --timeout=5m
kubectl -n "$APP_NAMESPACE" wait "bentodeployment/$name" --for=condition=Ready --timeout=5m
for _ in 1 2 3 4 5 6; do
	answer=$(post classify)
	same_json "$answer" "$expected" || die "after scaling, POST /classify answered $answer, not $expected"
done

log "delete bentodeployment/$name: every child must be garbage-collected"
kill "$port_forward_pid" 2>/dev/null || true
port_forward_pid=""
kubectl -n "$APP_NAMESPACE" delete bentodeployment "$name" --wait --timeout=2m
eventually 120 no_children "$name" || die "children left after deletion: $(children "$name" | tr '\n' ' ')"

log "helm uninstall"
"$helm" uninstall "$RELEASE" --namespace "$OPERATOR_NAMESPACE" --wait --timeout 2m
