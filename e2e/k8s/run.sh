#!/usr/bin/env bash
# run.sh: what `make e2e-k8s` runs. Builds (once, cached) the Kubernetes binaries, brings the cluster of
# cluster.sh up, runs the Go tests against it (go test -tags e2e -run K8s ./e2e/) and tears the cluster
# down on every exit, failing when the teardown leaves anything behind.
#
# Environment: HELM (required: the pinned helm), WEIR_K8S_RUN (go test -run pattern, default K8s),
# WEIR_K8S_DIR (cluster work directory, default /tmp/weir-k8s).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${HELM:?HELM: the helm binary (make e2e-k8s passes bin/helm)}"
export WEIR_K8S_DIR=${WEIR_K8S_DIR:-/tmp/weir-k8s}

# Fail before a half-hour build when the machine cannot run the cluster.
[[ $EUID -eq 0 ]] || { echo "[e2e-k8s] must run as root (kubelet, containerd, CNI, iptables)" >&2; exit 1; }
for f in /usr/bin/containerd /usr/bin/ctr /usr/bin/runc /usr/lib/cni/bridge /usr/lib/cni/firewall; do
	[[ -x $f ]] || { echo "[e2e-k8s] $f missing: apt-get install -y containerd containernetworking-plugins" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "[e2e-k8s] docker missing (the images are built and exported with it)" >&2; exit 1; }

t0=$SECONDS
WEIR_K8S_BIN=$(bash "$HERE/build.sh")
export WEIR_K8S_BIN
echo "[e2e-k8s] binaries ready in $((SECONDS - t0)) s: $WEIR_K8S_BIN" >&2

down() {
	local code=$?
	bash "$HERE/cluster.sh" down || code=1
	exit "$code"
}
trap down EXIT
trap 'exit 130' INT TERM
bash "$HERE/cluster.sh" up

cd "$ROOT"
WEIR_K8S_KUBECONFIG=$WEIR_K8S_DIR/admin.kubeconfig WEIR_K8S_KUBECTL=$WEIR_K8S_BIN/kubectl \
	WEIR_K8S_PV_DIR=$WEIR_K8S_DIR/pv WEIR_HELM=$HELM WEIR_BINARY=${WEIR_BINARY:-$ROOT/bin/weir} \
	go test -tags e2e -count=1 -v -timeout 60m -run "${WEIR_K8S_RUN:-K8s}" ./e2e/
