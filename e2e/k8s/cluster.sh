#!/usr/bin/env bash
# cluster.sh up|down|check: a single-node Kubernetes cluster made of host processes, for `make e2e-k8s`.
#
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables mode) and
#   CoreDNS (cluster DNS for cluster.local only) run as processes of this machine; a containerd of its own
#   (own socket, root and state directories, never Docker's) runs the pods through runc; pods sit on a CNI
#   bridge (weirk8s0, 10.234.0.0/24; Services 10.233.0.0/16: ranges Docker does not use). Persistent
#   volumes are hostPath PVs created ahead under $WEIR_K8S_DIR/pv and bound statically through the
#   StorageClass weir-local (no provisioner). Images: a FROM-scratch pause image built here and Weir's own
#   image, both imported from Docker into the cluster's containerd (no registry is reachable).
#
# `down` stops everything `up` started and removes what it left: pods' mounts, the bridge, the iptables
# rules and chains of kube-proxy, kubelet and CNI; then compares iptables, mounts and links with the
# snapshot taken before `up` and fails when anything is left behind.
#
# Environment: WEIR_K8S_DIR (default /tmp/weir-k8s; short, for unix socket paths), WEIR_K8S_BIN (the
# binaries of build.sh), WEIR_K8S_IMAGES (Docker images to import, default weir:dev), WEIR_K8S_PVS
# (number of hostPath PVs, default 6).
set -euo pipefail

W=${WEIR_K8S_DIR:-/tmp/weir-k8s}
KBIN=${WEIR_K8S_BIN:?WEIR_K8S_BIN: the directory of the Kubernetes binaries (e2e/k8s/build.sh prints it)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES=${WEIR_K8S_IMAGES:-weir:dev}
PVS=${WEIR_K8S_PVS:-6}
BRIDGE=weirk8s0
POD_CIDR=10.234.0.0/24
CLUSTER_CIDR=10.234.0.0/16
SERVICE_CIDR=10.233.0.0/16
SERVICE_API_IP=10.233.0.1
ETCD_PORT=23790
API_PORT=6443
PAUSE_IMAGE=weir.local/pause:1
SOCK=$W/containerd.sock
SYSCTLS="vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops net/bridge/bridge-nf-call-iptables net/ipv4/ip_forward"

log() { printf '[k8s %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

node_ip() { ip -4 route get 192.0.2.255 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1; }
node_name() { hostname | tr '[:upper:]' '[:lower:]'; }

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
	local what=$1 timeout=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "$what: not within ${timeout}s (logs in $W/log)"
		sleep 0.5
	done
}

# start NAME COMMAND...: run a component in the background, its pid in $W/pids/NAME, log in $W/log/NAME.log.
start() {
	local name=$1
	shift
	setsid "$@" >"$W/log/$name.log" 2>&1 </dev/null &
	echo $! >"$W/pids/$name"
}

kubectl() { "$KBIN/kubectl" --kubeconfig "$W/admin.kubeconfig" "$@"; }

# snapshot FILE: what `down` must leave as it was (iptables of both families without counters, mounts,
# links, network namespaces).
snapshot() {
	{
		echo "## iptables"
		for t in filter nat mangle raw; do iptables-save -t "$t" 2>/dev/null | grep -v '^[#:]' | sed 's/\[[0-9]*:[0-9]*\]//' || true; done
		echo "## ip6tables"
		for t in filter nat mangle raw; do ip6tables-save -t "$t" 2>/dev/null | grep -v '^[#:]' | sed 's/\[[0-9]*:[0-9]*\]//' || true; done
		echo "## iptables chains"
		for t in filter nat mangle raw; do iptables-save -t "$t" 2>/dev/null | grep '^:' | cut -d' ' -f1 || true; done
		echo "## nft tables"
		nft list tables 2>/dev/null || true
		echo "## mounts"
		awk '{print $5}' /proc/self/mountinfo | sort
		echo "## links"
		ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
		echo "## netns"
		ls /var/run/netns 2>/dev/null || true
		echo "## cgroups"
		ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null || true
		echo "## sysctls"
		for s in $SYSCTLS; do [[ -f /proc/sys/$s ]] && echo "$s $(cat "/proc/sys/$s")"; done
		echo "## log dirs"
		ls -d /var/log/pods /var/log/containers 2>/dev/null || true
	}
}

certs() {
	local ip=$1 p=$W/pki
	mkdir -p "$p"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=weir-k8s-ca" \
		-keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
	issue() { # name subject extfile
		openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
		openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 2 \
			-extfile "$3" -out "$p/$1.crt" 2>/dev/null
	}
	cat >"$p/server.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$ip,IP:$SERVICE_API_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
	cat >"$p/client.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
	issue apiserver "/CN=kube-apiserver" "$p/server.ext"
	# One cluster-admin identity (group system:masters) for every component and the tests: this cluster
	# proves the chart, not the control plane's RBAC.
	issue admin "/O=system:masters/CN=weir-k8s-admin" "$p/client.ext"
	openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
	openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
	cat >"$W/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: weir-k8s
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$p/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$p/admin.crt", client-key: "$p/admin.key"}
contexts:
- name: weir-k8s
  context: {cluster: weir-k8s, user: admin}
current-context: weir-k8s
EOF
}

containerd_config() {
	local snapshotter=$1
	cat >"$W/containerd.toml" <<EOF
version = 2
root = "$W/containerd/root"
state = "$W/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # Pods' network namespaces under our state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE here (a Firecracker VM's sandbox; Docker's daemon lacks it too): an
  # oom_score_adj below containerd's own (the sandbox's -998) fails in runc. Clamp it instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
EOF
}

cni_config() {
	mkdir -p "$W/cni/net.d" "$W/cni/ipam"
	cat >"$W/cni/net.d/10-weir-k8s.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "weir-k8s",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$W/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "firewall", "backend": "iptables"},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

kubelet_config() {
	local ip=$1
	cat >"$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this machine: kubelet >= 1.35 refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$W/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDomain: cluster.local
clusterDNS: [$ip]
resolvConf: "$W/resolv.conf"
failSwapOn: false
podLogsDir: "$W/pod-logs"
# ConfigMap volumes are refreshed at this period (default 1m).
syncFrequency: 10s
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 30
EOF
	echo "nameserver $ip" >"$W/resolv.conf"
}

kube_proxy_config() {
	cat >"$W/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$W/admin.kubeconfig"}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $(node_name)
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine's sysctls alone (conntrack table size, route_localnet).
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
}

import_image() { # docker image
	docker save "$1" | "/usr/bin/ctr" -a "$SOCK" -n k8s.io images import --snapshotter "$SNAPSHOTTER" - >&2
}

pause_image() {
	local d=$W/build/pause
	mkdir -p "$d"
	(cd "$HERE/pause" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$d/pause" .)
	printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$d/Dockerfile"
	docker build -q -t "$PAUSE_IMAGE" "$d" >/dev/null
	import_image "$PAUSE_IMAGE"
}

storage() {
	local ip=$1
	mkdir -p "$W/pv"
	{
		cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: weir-local, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
		for i in $(seq 0 $((PVS - 1))); do
			mkdir -p "$W/pv/pv-$i"
			# The ingesters run as 65534 (the chart's podSecurityContext); hostPath volumes get no fsGroup.
			chown 65534:65534 "$W/pv/pv-$i"
			cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: weir-pv-$i, labels: {weir-k8s/pv: "$i"}}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: weir-local
  hostPath: {path: "$W/pv/pv-$i", type: Directory}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: ["$(node_name)"]}
EOF
		done
	} >"$W/storage.yaml"
	kubectl apply -f "$W/storage.yaml" >&2
}

up() {
	[[ $EUID -eq 0 ]] || die "run as root (kubelet, containerd, CNI and iptables need it)"
	[[ ! -e $W ]] || die "$W exists: a cluster is up or was not torn down (run: $0 down)"
	local ip
	ip=$(node_ip)
	[[ -n $ip ]] || die "no IPv4 address of this node"
	for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns; do
		[[ -x $KBIN/$b ]] || die "$KBIN/$b missing (run e2e/k8s/build.sh)"
	done
	for b in /usr/bin/containerd /usr/bin/ctr /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/firewall /usr/lib/cni/portmap /usr/lib/cni/loopback; do
		[[ -x $b ]] || die "$b missing (apt-get install containerd containernetworking-plugins)"
	done
	mkdir -p "$W"/{log,pids,build}
	snapshot >"$W/before.snapshot"
	# The sysctls this run changes (the kubelet sets the first four), restored by `down`.
	local s
	for s in $SYSCTLS; do
		[[ -f /proc/sys/$s ]] && echo "$s $(cat "/proc/sys/$s")"
	done >"$W/before.sysctl"
	for d in /var/log/pods /var/log/containers; do [[ -e $d ]] && echo "$d"; done >"$W/before.logdirs"
	T0=$SECONDS
	log "node $(node_name) $ip; work dir $W"

	modprobe br_netfilter 2>/dev/null || true
	echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
	echo 1 >/proc/sys/net/ipv4/ip_forward

	certs "$ip"
	cni_config
	kubelet_config "$ip"
	kube_proxy_config

	# containerd: overlayfs where the kernel and the directory allow it, native (copies) otherwise.
	SNAPSHOTTER=${WEIR_K8S_SNAPSHOTTER:-}
	if [[ -z $SNAPSHOTTER ]]; then
		mkdir -p "$W/ovl"/{l,u,w,m}
		if mount -t overlay overlay -o "lowerdir=$W/ovl/l,upperdir=$W/ovl/u,workdir=$W/ovl/w" "$W/ovl/m" 2>/dev/null; then
			umount "$W/ovl/m"
			SNAPSHOTTER=overlayfs
		else
			SNAPSHOTTER=native
		fi
		rm -rf "$W/ovl"
	fi
	echo "$SNAPSHOTTER" >"$W/snapshotter"
	containerd_config "$SNAPSHOTTER"
	log "containerd (snapshotter $SNAPSHOTTER)"
	start containerd /usr/bin/containerd --config "$W/containerd.toml"
	wait_for "containerd" 30 /usr/bin/ctr -a "$SOCK" version

	log "etcd"
	start etcd "$KBIN/etcd" --name weir-k8s --data-dir "$W/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
		--initial-cluster "weir-k8s=http://127.0.0.1:$((ETCD_PORT + 10))" \
		--unsafe-no-fsync
	wait_for "etcd health" 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

	log "kube-apiserver"
	start kube-apiserver "$KBIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$ip" \
		--tls-cert-file "$W/pki/apiserver.crt" --tls-private-key-file "$W/pki/apiserver.key" \
		--client-ca-file "$W/pki/ca.crt" \
		--kubelet-client-certificate "$W/pki/admin.crt" --kubelet-client-key "$W/pki/admin.key" \
		--service-account-key-file "$W/pki/sa.pub" --service-account-signing-key-file "$W/pki/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC --allow-privileged=true \
		--profiling=false
	wait_for "kube-apiserver /readyz" 120 kubectl get --raw /readyz

	log "kube-controller-manager, kube-scheduler"
	start kube-controller-manager "$KBIN/kube-controller-manager" --kubeconfig "$W/admin.kubeconfig" \
		--authentication-kubeconfig "$W/admin.kubeconfig" --authorization-kubeconfig "$W/admin.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --cluster-name weir-k8s \
		--service-account-private-key-file "$W/pki/sa.key" --root-ca-file "$W/pki/ca.crt" \
		--service-cluster-ip-range "$SERVICE_CIDR" --use-service-account-credentials=false \
		--profiling=false
	start kube-scheduler "$KBIN/kube-scheduler" --kubeconfig "$W/admin.kubeconfig" \
		--authentication-kubeconfig "$W/admin.kubeconfig" --authorization-kubeconfig "$W/admin.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false

	log "images: pause, $IMAGES"
	pause_image
	for img in $IMAGES; do import_image "$img"; done

	log "kubelet"
	start kubelet "$KBIN/kubelet" --config "$W/kubelet.yaml" --kubeconfig "$W/admin.kubeconfig" \
		--root-dir "$W/kubelet" --cert-dir "$W/kubelet/pki" --hostname-override "$(node_name)" \
		--node-ip "$ip"
	wait_for "node $(node_name) Ready" 120 bash -c "'$KBIN/kubectl' --kubeconfig '$W/admin.kubeconfig' get node '$(node_name)' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"

	log "kube-proxy"
	start kube-proxy "$KBIN/kube-proxy" --config "$W/kube-proxy.yaml"
	wait_for "kube-proxy healthz" 60 curl -sf http://127.0.0.1:10256/healthz

	log "CoreDNS on $ip:53 (cluster.local only)"
	cat >"$W/Corefile" <<EOF
.:53 {
    bind $ip
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $W/admin.kubeconfig weir-k8s
        pods insecure
        ttl 5
    }
}
EOF
	start coredns "$KBIN/coredns" -conf "$W/Corefile"
	wait_for "CoreDNS ready" 60 curl -sf http://127.0.0.1:18181/ready

	storage "$ip"
	wait_for "service account default/default" 60 kubectl -n default get serviceaccount default
	log "cluster up in $((SECONDS - T0)) s; KUBECONFIG=$W/admin.kubeconfig"
	echo "$((SECONDS - T0))" >"$W/up.seconds"
}

# stop NAME [TIMEOUT]: SIGTERM the component, SIGKILL it after TIMEOUT s.
stop() {
	local name=$1 timeout=${2:-20} pid
	[[ -f $W/pids/$name ]] || return 0
	pid=$(cat "$W/pids/$name")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + timeout))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$W/pids/$name"
}

# ours PATTERN: pids of processes whose command line names our work directory (shims, runc, pods' own
# processes are found through containerd instead).
ours() {
	local p cmd
	for p in /proc/[0-9]*; do
		[[ ${p#/proc/} == "$$" || ${p#/proc/} == "$BASHPID" ]] && continue
		cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		[[ $cmd == *"$1"* ]] && echo "${p#/proc/}"
	done
	return 0
}

# ipt_clean CMD: remove the rules that jump to KUBE-*/CNI-* chains from the built-in chains, then flush
# and delete those chains, in every table.
ipt_clean() {
	local cmd=$1 t rule chain
	for t in filter nat mangle raw; do
		"$cmd-save" -t "$t" >/dev/null 2>&1 || continue
		while read -r rule; do
			# eval: the rule's quoted comments must stay one word each.
			eval "$cmd -t $t ${rule/-A/-D}" 2>/dev/null || true
		done < <("$cmd-save" -t "$t" 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING|DOCKER-USER) .*-j (KUBE-|CNI-)')
		for chain in $("$cmd-save" -t "$t" 2>/dev/null | sed -n 's/^:\(\(KUBE\|CNI\)-[^ ]*\) .*/\1/p'); do
			"$cmd" -t "$t" -F "$chain" 2>/dev/null || true
		done
		for chain in $("$cmd-save" -t "$t" 2>/dev/null | sed -n 's/^:\(\(KUBE\|CNI\)-[^ ]*\) .*/\1/p'); do
			"$cmd" -t "$t" -X "$chain" 2>/dev/null || true
		done
	done
}

down() {
	[[ -d $W ]] || {
		log "$W: nothing to tear down"
		return 0
	}
	local t0=$SECONDS
	log "tearing down $W"
	if [[ -f $W/pids/kube-apiserver ]] && kubectl get --raw /readyz >/dev/null 2>&1; then
		# Pods first, so that the kubelet tears their sandboxes, volumes and networks down itself.
		kubectl delete namespace --ignore-not-found --wait=false weir >/dev/null 2>&1 || true
		kubectl delete pods --all-namespaces --all --grace-period=30 --wait=false >/dev/null 2>&1 || true
		local deadline=$((SECONDS + 120))
		while ((SECONDS < deadline)) && [[ -n $(kubectl get pods -A -o name 2>/dev/null) ]]; do sleep 1; done
	fi
	stop kube-proxy
	[[ -x $KBIN/kube-proxy ]] && "$KBIN/kube-proxy" --cleanup >"$W/log/kube-proxy-cleanup.log" 2>&1 || true
	stop coredns
	stop kubelet 30
	# Whatever the kubelet left running: kill and delete every task and container of our containerd.
	if [[ -S $SOCK ]]; then
		local c
		for c in $(/usr/bin/ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			/usr/bin/ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
		done
		for c in $(/usr/bin/ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			/usr/bin/ctr -a "$SOCK" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
		done
		for c in $(/usr/bin/ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
			/usr/bin/ctr -a "$SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
		done
	fi
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
	stop containerd
	# containerd shims outlive containerd; ours name our socket on their command line.
	local pid
	for pid in $(ours "$SOCK"); do kill -KILL "$pid" 2>/dev/null || true; done

	# Network: CNI's and kube-proxy's iptables rules, the bridge, network namespaces the CNI made.
	ipt_clean iptables
	ipt_clean ip6tables
	# iptables-nft leaves the tables it created for the rules above (empty now): drop those that were
	# not there before and hold no rule.
	local fam name
	while read -r _ fam name; do
		grep -qxF "table $fam $name" "$W/before.snapshot" && continue
		nft list table "$fam" "$name" 2>/dev/null | grep -qvE '^[[:space:]]*(table|chain|type|policy|\}|$)' && continue
		nft delete table "$fam" "$name" 2>/dev/null || true
	done < <(nft list tables 2>/dev/null)
	ip link del "$BRIDGE" 2>/dev/null || true
	local ns
	for ns in $(ls /var/run/netns 2>/dev/null); do
		[[ $ns == cni-* ]] || continue
		grep -qxF "$ns" "$W/before.snapshot" && continue
		ip netns delete "$ns" 2>/dev/null || true
	done
	# Mounts under the work directory (kubelet volumes, its own rshared bind mount, containerd rootfs
	# and shm), deepest first.
	local m
	for m in $(awk '{print $5}' /proc/self/mountinfo | grep -F "$W" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	local name value
	if [[ -f $W/before.sysctl ]]; then
		while read -r name value; do echo "$value" >"/proc/sys/$name" 2>/dev/null || true; done <"$W/before.sysctl"
	fi
	# The kubelet's cgroups (cgroupfs driver: kubepods under each controller), deepest first.
	local cg
	for cg in /sys/fs/cgroup/*/kubepods; do
		[[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	# Log directories the kubelet created (pods' logs themselves are under the work directory), and its
	# links to our pods' logs that container garbage collection had not removed yet.
	local d f
	for f in /var/log/containers/*.log; do
		[[ -L $f && $(readlink "$f") == "$W/"* ]] && rm -f "$f"
	done
	for d in /var/log/containers /var/log/pods; do
		[[ -d $d ]] && ! grep -qxF "$d" "$W/before.logdirs" 2>/dev/null && rmdir "$d" 2>/dev/null || true
	done

	# Left behind? Compare with the snapshot taken before `up`.
	local left=0
	if [[ -n $(ours "$W") ]]; then
		log "processes left: $(ours "$W" | tr '\n' ' ')"
		left=1
	fi
	if [[ -f $W/before.snapshot ]]; then
		snapshot >"$W/after.snapshot"
		if ! diff -u "$W/before.snapshot" "$W/after.snapshot" >"$W/leftover.diff"; then
			log "left behind (- before, + after):"
			cat "$W/leftover.diff" >&2
			left=1
		fi
	fi
	if ((left)); then
		log "teardown incomplete; $W kept for inspection"
		return 1
	fi
	if [[ -n ${WEIR_K8S_KEEP_LOGS:-} ]]; then
		mkdir -p "$WEIR_K8S_KEEP_LOGS" && cp -r "$W/log" "$WEIR_K8S_KEEP_LOGS/" || true
	fi
	rm -rf "$W"
	log "torn down in $((SECONDS - t0)) s: no process, mount, link, netns or iptables rule left"
}

case ${1:-} in
up) up ;;
down) down ;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac
