#!/usr/bin/env bash
# build.sh: build the Kubernetes and etcd binaries of the e2e-k8s cluster from source (Go module proxy only),
# once per version, into a cache OUTSIDE the clone: ${XDG_CACHE_HOME:-$HOME/.cache}/weir-k8s/<version>/bin.
# A binary already there is kept (like the Makefile's pinned tools in ./bin). Prints the bin directory.
#
# k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging paths; a tools module that replaces
# each of them with its published version (v0.<minor>.<patch>) resolves, and everything builds without cgo.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
GO=${GO:-go}
CACHE=${WEIR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-k8s/$K8S_VERSION}
OUT=$CACHE/bin
mkdir -p "$OUT"

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=()
for b in "${K8S_BINS[@]}"; do
	"$GO" version -m "$OUT/$b" 2>/dev/null | grep -q "k8s.io/kubernetes[[:space:]]*$K8S_VERSION" || missing+=("$b")
done
need_etcd=1
"$GO" version -m "$OUT/etcd" 2>/dev/null | grep -q "go.etcd.io/etcd/server/v3[[:space:]]*$ETCD_VERSION" && need_etcd=0
need_coredns=1
"$GO" version -m "$OUT/coredns" 2>/dev/null | grep -q "github.com/coredns/coredns[[:space:]]*$COREDNS_VERSION" && need_coredns=0
if [[ ${#missing[@]} -eq 0 && $need_etcd -eq 0 && $need_coredns -eq 0 ]]; then
	echo "$OUT"
	exit 0
fi

# The modules ask for a newer Go than some machines have; the proxy serves the toolchain.
export GOTOOLCHAIN=${K8S_GOTOOLCHAIN:-go1.26.10}
export CGO_ENABLED=0
start=$(date +%s)

if [[ ${#missing[@]} -gt 0 ]]; then
	mod=$CACHE/src/k8s
	mkdir -p "$mod"
	(
		cd "$mod"
		minor=${K8S_VERSION#v1.}
		staging_version=v0.$minor
		printf 'module weirk8stools\n\ngo 1.26.0\n\n' >go.mod
		"$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
		modfile=$("$GO" env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
		echo 'replace (' >>go.mod
		sed -n '/^replace (/,/^)/p' "$modfile" | grep '=> ./staging' |
			awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}' >>go.mod
		echo ')' >>go.mod
		pkgs=()
		for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
		"$GO" get "k8s.io/kubernetes@$K8S_VERSION" "${pkgs[@]}" >&2
		ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
		ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
		ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
		ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
		ld+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor%%.*}"
		for b in "${missing[@]}"; do
			echo "building $b $K8S_VERSION into $OUT" >&2
			"$GO" build -trimpath -ldflags "$ld" -o "$OUT/$b.tmp" "k8s.io/kubernetes/cmd/$b" >&2
			mv "$OUT/$b.tmp" "$OUT/$b"
		done
	)
fi

if [[ $need_etcd -eq 1 ]]; then
	mod=$CACHE/src/etcd
	mkdir -p "$mod"
	(
		cd "$mod"
		printf 'module weiretcdtools\n\ngo 1.26.0\n' >go.mod
		"$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
		echo "building etcd $ETCD_VERSION into $OUT" >&2
		"$GO" build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
		mv "$OUT/etcd.tmp" "$OUT/etcd"
	)
fi
if [[ $need_coredns -eq 1 ]]; then
	# CoreDNS with the few plugins the cluster DNS needs (kubernetes answers cluster.local; nothing is
	# forwarded off the machine), in a module of its own: its client-go is not the cluster's.
	mod=$CACHE/src/coredns
	mkdir -p "$mod"
	(
		cd "$mod"
		printf 'module weircorednstools\n\ngo 1.26.0\n' >go.mod
		cat >main.go <<'GO'
// Command coredns is CoreDNS with the plugins of the e2e-k8s cluster DNS only.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The plugin chain's order (a subset of CoreDNS' plugin.cfg, in its order).
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "kubernetes"}
}

func main() { coremain.Run() }
GO
		"$GO" get "github.com/coredns/coredns@$COREDNS_VERSION" >&2
		"$GO" mod tidy >&2
		echo "building coredns $COREDNS_VERSION into $OUT" >&2
		"$GO" build -trimpath -ldflags "-s -w" -o "$OUT/coredns.tmp" . >&2
		mv "$OUT/coredns.tmp" "$OUT/coredns"
	)
fi
echo "built in $(($(date +%s) - start)) s" >&2
echo "$OUT"
