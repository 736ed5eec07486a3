//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
	"github.com/weir-metrics/weir/loadgen"
)

// k8sCluster is the single-node Kubernetes cluster of `make e2e-k8s` (e2e/k8s/cluster.sh): real
// kube-apiserver, scheduler, controller manager, kubelet and kube-proxy built from source, containerd and
// a CNI bridge, CoreDNS for cluster.local. The test reaches it with kubectl and helm, pods by their IPs
// (the pod network is routed on this machine) and the router through its Service's cluster IP
// (kube-proxy's rules). The ingesters' volumes are hostPath PVs under pvDir, read here after the
// ingesters stopped.
type k8sCluster struct {
	t          *testing.T
	kubeconfig string
	kubectlBin string
	helmBin    string
	chart      string
	pvDir      string
	ns         string
	release    string
}

// requireK8s returns the cluster that make e2e-k8s brought up (WEIR_K8S_KUBECONFIG and friends). Without
// it the test skips loudly (fails under CI=true): run it with `make e2e-k8s`.
func requireK8s(t *testing.T) *k8sCluster {
	t.Helper()
	requireBinary(t)
	kc := os.Getenv("WEIR_K8S_KUBECONFIG")
	if kc == "" {
		testutil.Unavailable(t, "no Kubernetes cluster (WEIR_K8S_KUBECONFIG is unset): run `make e2e-k8s`")
	}
	k := &k8sCluster{t: t, kubeconfig: kc, kubectlBin: os.Getenv("WEIR_K8S_KUBECTL"), helmBin: os.Getenv("WEIR_HELM"),
		pvDir: os.Getenv("WEIR_K8S_PV_DIR"), ns: "weir", release: "weir"}
	for env, v := range map[string]string{"WEIR_K8S_KUBECTL": k.kubectlBin, "WEIR_HELM": k.helmBin, "WEIR_K8S_PV_DIR": k.pvDir} {
		require.NotEmpty(t, v, "%s must be set with WEIR_K8S_KUBECONFIG (make e2e-k8s sets both)", env)
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	k.chart = filepath.Join(root, "deploy", "helm", "weir")
	_, err = k.kubectl("get", "--raw", "/readyz")
	require.NoError(t, err, "the cluster of WEIR_K8S_KUBECONFIG=%s does not answer", kc)
	return k
}

func (k *k8sCluster) kubectl(args ...string) (string, error) {
	cmd := exec.Command(k.kubectlBin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// must runs kubectl and fails the test on an error.
func (k *k8sCluster) must(args ...string) string {
	k.t.Helper()
	out, err := k.kubectl(args...)
	require.NoError(k.t, err)
	return out
}

func (k *k8sCluster) helm(args ...string) string {
	k.t.Helper()
	cmd := exec.Command(k.helmBin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(k.t, err, "helm %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// k8sPod is what the tests need of a pod.
type k8sPod struct {
	Metadata struct {
		Name              string `json:"name"`
		UID               string `json:"uid"`
		DeletionTimestamp string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Status struct {
		PodIP      string `json:"podIP"`
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			RestartCount int `json:"restartCount"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func (p k8sPod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True" && p.Metadata.DeletionTimestamp == ""
		}
	}
	return false
}

func (p k8sPod) restarts() int {
	n := 0
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// ops is the pod's ops HTTP address (metrics, readiness, ring status), reached on the pod network.
func (p k8sPod) ops() string { return "http://" + p.Status.PodIP + ":10902" }

// pods lists the pods of a component ("ingester" or "router"), sorted by name.
func (k *k8sCluster) pods(component string) ([]k8sPod, error) {
	out, err := k.kubectl("-n", k.ns, "get", "pods", "-o", "json", "-l",
		"app.kubernetes.io/instance="+k.release+",app.kubernetes.io/component="+component)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []k8sPod `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b k8sPod) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return list.Items, nil
}

// waitPodsReady waits until exactly n pods of component exist and all are ready, and returns them.
func (k *k8sCluster) waitPodsReady(component string, n int, timeout time.Duration) []k8sPod {
	k.t.Helper()
	var pods []k8sPod
	waitFor(k.t, timeout, fmt.Sprintf("%d ready %s pods", n, component), func() error {
		var err error
		if pods, err = k.pods(component); err != nil {
			return err
		}
		var notReady []string
		for _, p := range pods {
			if !p.ready() {
				notReady = append(notReady, p.Metadata.Name+" ("+p.Status.Phase+")")
			}
		}
		if len(pods) != n || len(notReady) > 0 {
			return fmt.Errorf("%d pods, not ready: %v", len(pods), notReady)
		}
		return nil
	})
	return pods
}

// ingesterEndpoints are the hashring endpoints of ingesters 0..n-1 as the chart names them.
func (k *k8sCluster) ingesterEndpoints(n int) []string {
	eps := make([]string, n)
	for i := range eps {
		eps[i] = fmt.Sprintf("%s-ingester-%d.%s-ingester-headless.%s.svc.cluster.local:10901", k.release, i, k.release, k.ns)
	}
	slices.Sort(eps)
	return eps
}

// waitRing waits until every pod serves a ring over exactly endpoints with one config hash, and
// returns how long that took.
func (k *k8sCluster) waitRing(endpoints []string, timeout time.Duration) time.Duration {
	k.t.Helper()
	start := time.Now()
	waitFor(k.t, timeout, fmt.Sprintf("every pod to serve the ring %v", endpoints), func() error {
		var all []k8sPod
		for _, c := range []string{"router", "ingester"} {
			pods, err := k.pods(c)
			if err != nil {
				return err
			}
			all = append(all, pods...)
		}
		hash := ""
		for _, p := range all {
			var st ringStatus
			code, body, err := httpGet(http.DefaultClient, p.ops()+"/api/v1/status/ring")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("%s: ring status %d: %s", p.Metadata.Name, code, body)
			}
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				return err
			}
			if got := slices.Sorted(slices.Values(st.endpoints())); !slices.Equal(got, endpoints) {
				return fmt.Errorf("%s serves %v (error %q)", p.Metadata.Name, got, st.Error)
			}
			if hash == "" {
				hash = st.ConfigHash
			} else if st.ConfigHash != hash {
				return fmt.Errorf("%s serves config hash %s, another pod %s", p.Metadata.Name, st.ConfigHash, hash)
			}
		}
		return nil
	})
	return time.Since(start)
}

// routerURL is the remote-write URL of the router Service (its cluster IP, through kube-proxy).
func (k *k8sCluster) routerURL() string {
	k.t.Helper()
	ip := strings.TrimSpace(k.must("-n", k.ns, "get", "service", k.release+"-router", "-o", "jsonpath={.spec.clusterIP}"))
	require.NotEmpty(k.t, ip)
	return "http://" + ip + ":19291/api/v1/receive"
}

// forwardResults sums weir_forward_requests_total over the routers: every result, and the successes.
func (k *k8sCluster) forwardResults() (all, success float64) {
	k.t.Helper()
	routers, err := k.pods("router")
	require.NoError(k.t, err)
	for _, p := range routers {
		a, _, err := scrapeMetric(http.DefaultClient, p.ops()+"/metrics", "weir_forward_requests_total")
		require.NoError(k.t, err)
		s, _, err := scrapeMetric(http.DefaultClient, p.ops()+"/metrics", "weir_forward_requests_total", "result", "success")
		require.NoError(k.t, err)
		all += a
		success += s
	}
	return all, success
}

// install installs the chart (release weir in namespace weir) with the test's values: the default
// values but small resource requests (2 cores), the images imported into the cluster (never pulled),
// the hostPath StorageClass, and a FILESYSTEM bucket on each ingester's volume (shipped blocks are
// then on this machine). It returns how long helm install took to return and the pods to be ready.
func (k *k8sCluster) install(extra ...string) time.Duration {
	k.t.Helper()
	k.must("create", "namespace", k.ns)
	k.must("-n", k.ns, "create", "secret", "generic", "weir-objstore",
		"--from-literal=objstore.yml=type: FILESYSTEM\nconfig:\n  directory: /data/bucket\n")
	values := filepath.Join(k.t.TempDir(), "values.yaml")
	require.NoError(k.t, os.WriteFile(values, []byte(k8sValues), 0o644))
	start := time.Now()
	args := []string{"install", k.release, k.chart, "--namespace", k.ns, "-f", values}
	k.helm(append(args, extra...)...)
	k.waitPodsReady("ingester", 3, 5*time.Minute)
	k.waitPodsReady("router", 2, 5*time.Minute)
	return time.Since(start)
}

// k8sValues are the chart values of these tests (see install).
const k8sValues = `image:
  pullPolicy: Never
ingester:
  replicas: 3
  shipperInterval: 5s
  terminationGracePeriodSeconds: 120
  persistence: {size: 1Gi, storageClassName: weir-local}
  resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 1Gi}}
router:
  replicas: 2
  resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 512Mi}}
`

// pvDirs are the hostPath volumes the ingesters' claims are bound to, by claim name.
func (k *k8sCluster) pvDirs() []storeDir {
	k.t.Helper()
	out := k.must("get", "pv", "-o", `jsonpath={range .items[*]}{.spec.claimRef.namespace}/{.spec.claimRef.name} {.spec.hostPath.path}{"\n"}{end}`)
	var dirs []storeDir
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[0], k.ns+"/") {
			dirs = append(dirs, storeDir{name: strings.TrimPrefix(f[0], k.ns+"/"), dir: f[1]})
		}
	}
	slices.SortFunc(dirs, func(a, b storeDir) int { return strings.Compare(a.name, b.name) })
	return dirs
}

// uninstall removes the release, its claims and PVs' data, so the next test starts afresh.
func (k *k8sCluster) uninstall() {
	k.t.Helper()
	dirs := k.pvDirs()
	_, _ = k.kubectl("-n", k.ns, "delete", "pdb", "--all") // let the drain of a failed test go on
	out, err := exec.Command(k.helmBin, "--kubeconfig", k.kubeconfig, "uninstall", k.release, "--namespace", k.ns, "--wait", "--timeout", "5m").CombinedOutput()
	if err != nil {
		k.t.Logf("helm uninstall: %v: %s", err, out)
	}
	_, _ = k.kubectl("delete", "namespace", k.ns, "--wait=true", "--timeout=5m")
	// The Retain PVs are Released now: empty them and make them Available again.
	for _, d := range dirs {
		entries, _ := os.ReadDir(d.dir)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(d.dir, e.Name()))
		}
	}
	out2, _ := k.kubectl("get", "pv", "-o", "name")
	for line := range strings.Lines(out2) {
		_, _ = k.kubectl("patch", strings.TrimSpace(line), "--type=json", `-p=[{"op":"remove","path":"/spec/claimRef"}]`)
	}
}

// stopIngesters scales the ingesters to 0 and waits until their pods are gone (each flushed its head
// and shipped on SIGTERM), so that their volumes can be read. It returns how long that took.
func (k *k8sCluster) stopIngesters() time.Duration {
	k.t.Helper()
	start := time.Now()
	k.must("-n", k.ns, "scale", "statefulset", k.release+"-ingester", "--replicas=0")
	waitFor(k.t, 5*time.Minute, "the ingester pods to exit", func() error {
		pods, err := k.pods("ingester")
		if err != nil {
			return err
		}
		if len(pods) > 0 {
			return fmt.Errorf("%d ingester pods left", len(pods))
		}
		return nil
	})
	return time.Since(start)
}

// TestK8sInstall installs the chart on a real cluster: the claims bind to volumes, the pods become
// ready, every pod serves the 3-ingester ring from the hashrings ConfigMap, and samples written through
// the router Service are on a write quorum of ingesters' volumes afterwards.
//
//	weir bench ─▶ Service weir-router (cluster IP) ─▶ weir-router ×2 ─gRPC, RF=3─▶ weir-ingester-{0,1,2}
//	                                                                              (hostPath PVs)
func TestK8sInstall(t *testing.T) {
	k := requireK8s(t)
	t.Cleanup(k.uninstall)
	k8sInstallAndWrite(t, k, "file")
}

// TestK8sMemberlistInstall is TestK8sInstall with membership.mode=memberlist: the ring is formed by
// gossip through the ingester headless Service (its DNS name resolved by the cluster DNS, UDP and TCP
// on 7946 between pods) instead of a ConfigMap.
func TestK8sMemberlistInstall(t *testing.T) {
	k := requireK8s(t)
	t.Cleanup(k.uninstall)
	k8sInstallAndWrite(t, k, "memberlist", "--set", "membership.mode=memberlist")
}

func k8sInstallAndWrite(t *testing.T, k *k8sCluster, mode string, extra ...string) {
	ready := k.install(extra...)
	t.Logf("helm install to every pod ready: %s", ready.Round(time.Millisecond))

	claims := k.must("-n", k.ns, "get", "pvc", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}`)
	require.Equal(t, "data-weir-ingester-0=Bound\ndata-weir-ingester-1=Bound\ndata-weir-ingester-2=Bound\n", claims)
	ringAfter := k.waitRing(k.ingesterEndpoints(3), 2*time.Minute)

	b := startBenchWith(t, k.routerURL(), benchOptions{rate: 3000})
	b.waitAcked(t, 50, time.Minute)
	rep := b.stop(t)
	failed, byStatus := non2xx(rep)
	require.Zero(t, failed, "failed writes through the router Service: %s", byStatus)

	stopped := k.stopIngesters()
	res := verifyQuorumDirs(t, k.pvDirs(), quorumRF3, b.ackLog)
	require.Len(t, res.held, 3)
	for i, n := range res.held {
		require.Positive(t, n, "ingester volume %d holds no acknowledged sample", i)
	}
	t.Logf("FIGURES k8s-install (%s): helm install to every pod ready %s, the ring on every pod %s later, %d requests, %d samples acknowledged, 0 failed, replicas found %d, lost %d, scale to 0 (flush and ship) %s",
		mode, ready.Round(time.Millisecond), ringAfter.Round(time.Millisecond), rep.RequestsSent, res.acked, res.replicas, res.lost, stopped.Round(time.Millisecond))
}

// loadedRun is one scenario's load through the router Service and the forwarding counts of the
// routers when it started.
type loadedRun struct {
	bench             *benchRun
	fwdAll0, fwdSucc0 float64
	k                 *k8sCluster
}

// startLoad starts weir bench through the router Service (3000 samples/s) and waits until it is
// acknowledged.
func (k *k8sCluster) startLoad() *loadedRun {
	k.t.Helper()
	l := &loadedRun{k: k}
	l.fwdAll0, l.fwdSucc0 = k.forwardResults()
	l.bench = startBenchWith(k.t, k.routerURL(), benchOptions{rate: 3000})
	l.bench.waitAcked(k.t, 20, time.Minute)
	return l
}

// stop ends the load and returns its report and the routers' failed forwards since it started
// (replica writes the quorum had to cover). The routers must be the same pods as at the start.
func (l *loadedRun) stop() (rep loadgen.Report, failedForwards int) {
	l.k.t.Helper()
	all, succ := l.k.forwardResults()
	rep = l.bench.stop(l.k.t)
	return rep, int((all - l.fwdAll0) - (succ - l.fwdSucc0))
}

// ingesterUIDs maps each ingester pod's name to its UID (a new UID is a new pod).
func (k *k8sCluster) ingesterUIDs() map[string]string {
	k.t.Helper()
	pods, err := k.pods("ingester")
	require.NoError(k.t, err)
	uids := map[string]string{}
	for _, p := range pods {
		uids[p.Metadata.Name] = p.Metadata.UID
	}
	return uids
}

// TestK8sRollingRestart restarts the ingester StatefulSet under load (kubectl rollout restart: one pod
// at a time, highest ordinal first, each SIGTERMed, flushed and replaced by a pod on the same volume).
// With RF=3 one missing replica is covered by the write quorum: no write may fail, and every
// acknowledged sample is on 2 ingesters' volumes afterwards.
func TestK8sRollingRestart(t *testing.T) {
	k := requireK8s(t)
	t.Cleanup(k.uninstall)
	k.install()
	k.waitRing(k.ingesterEndpoints(3), 2*time.Minute)
	before := k.ingesterUIDs()
	l := k.startLoad()

	start := time.Now()
	k.must("-n", k.ns, "rollout", "restart", "statefulset/"+k.release+"-ingester")
	k.must("-n", k.ns, "rollout", "status", "statefulset/"+k.release+"-ingester", "--timeout=10m")
	took := time.Since(start)
	k.waitPodsReady("ingester", 3, 2*time.Minute)
	after := k.ingesterUIDs()
	for name, uid := range before {
		require.NotEqual(t, uid, after[name], "%s was not replaced", name)
	}
	restarted := time.Now().UnixMilli()
	l.bench.waitAcked(t, 50, time.Minute) // every new pod under load for a while

	rep, failedForwards := l.stop()
	failed, byStatus := non2xx(rep)
	require.Zero(t, failed, "writes failed during the rolling restart: %s", byStatus)
	k.stopIngesters()
	res := verifyQuorumDirs(t, k.pvDirs(), quorumRF3, l.bench.ackLog)
	for i, d := range k.pvDirs() {
		require.GreaterOrEqual(t, res.newest[i], restarted, "%s holds no sample acknowledged after the restart", d.name)
	}
	t.Logf("FIGURES k8s-rolling-restart: rollout restart to complete %s, %d requests, 0 failed, failed forwards to ingesters %d (covered by the quorum), %d samples acknowledged, replicas found %d, lost %d",
		took.Round(time.Millisecond), rep.RequestsSent, failedForwards, res.acked, res.replicas, res.lost)
}

// TestK8sScale grows the ring to 4 ingesters and shrinks it back to 3 under load with helm upgrade
// (the chart generates the hashrings ConfigMap from ingester.replicas): every pod follows the ring, the
// new ingester takes series, the removed one flushes its head and ships every block before it exits,
// no write fails, nothing acknowledged is lost.
func TestK8sScale(t *testing.T) {
	k := requireK8s(t)
	t.Cleanup(k.uninstall)
	k.install()
	k.waitRing(k.ingesterEndpoints(3), 2*time.Minute)
	l := k.startLoad()

	up := time.Now()
	k.helm("upgrade", k.release, k.chart, "--namespace", k.ns, "--reuse-values", "--set", "ingester.replicas=4")
	k.waitPodsReady("ingester", 4, 5*time.Minute)
	k.waitRing(k.ingesterEndpoints(4), 3*time.Minute)
	grow := time.Since(up)
	grown := time.Now().UnixMilli()
	l.bench.waitAcked(t, 50, time.Minute)

	down := time.Now()
	k.helm("upgrade", k.release, k.chart, "--namespace", k.ns, "--reuse-values", "--set", "ingester.replicas=3")
	k.waitPodsReady("ingester", 3, 5*time.Minute)
	k.waitRing(k.ingesterEndpoints(3), 3*time.Minute)
	shrink := time.Since(down)
	l.bench.waitAcked(t, 50, time.Minute)

	rep, failedForwards := l.stop()
	failed, byStatus := non2xx(rep)
	require.Zero(t, failed, "writes failed while scaling: %s", byStatus)

	// The removed ingester's volume: its head was flushed to a block and every block shipped.
	dirs := k.pvDirs()
	require.Len(t, dirs, 4)
	removed := dirs[3]
	require.Equal(t, "data-weir-ingester-3", removed.name)
	tenants := tenantDirs(t, removed.dir)
	require.NotEmpty(t, tenants, "the removed ingester stored nothing")
	shipped := shippedBlocks(t, filepath.Join(removed.dir, "bucket"))
	for _, tenant := range tenants {
		local := localBlocks(t, filepath.Join(removed.dir, tenant))
		require.NotEmpty(t, local, "tenant %s: the removed ingester flushed no block on exit", tenant)
		for _, id := range local {
			require.Contains(t, shipped, id, "tenant %s: block %s of the removed ingester not shipped", tenant, id)
		}
		require.Equal(t, local, shipperState(t, filepath.Join(removed.dir, tenant)), "thanos.shipper.json of tenant %s", tenant)
	}

	k.stopIngesters()
	res := verifyQuorumDirs(t, dirs, quorumRF3, l.bench.ackLog)
	require.Positive(t, res.held[3], "the fourth ingester received no series")
	require.GreaterOrEqual(t, res.newest[3], grown, "the fourth ingester holds no sample acknowledged after every pod served the 4-ingester ring")
	t.Logf("FIGURES k8s-scale: 3→4 (helm upgrade to every pod serving the 4-ingester ring) %s, 4→3 (to ingester-3 gone and the 3-ingester ring everywhere) %s, ingester-3 shipped %d blocks, held %d acknowledged samples; %d requests, 0 failed, failed forwards %d (covered by the quorum), %d samples acknowledged, replicas found %d, lost %d",
		grow.Round(time.Millisecond), shrink.Round(time.Millisecond), len(shipped), res.held[3], rep.RequestsSent, failedForwards, res.acked, res.replicas, res.lost)
}

// TestK8sHashringsConfigMapEdit edits the hashrings ConfigMap in place (a ring label added): the kubelet
// updates the mounted file, every pod reloads it — a new config hash — without a restart.
func TestK8sHashringsConfigMapEdit(t *testing.T) {
	k := requireK8s(t)
	t.Cleanup(k.uninstall)
	k.install()
	k.waitRing(k.ingesterEndpoints(3), 2*time.Minute)
	hashes := func() (map[string]string, error) {
		out := map[string]string{}
		for _, c := range []string{"router", "ingester"} {
			pods, err := k.pods(c)
			if err != nil {
				return nil, err
			}
			for _, p := range pods {
				var st ringStatus
				_, body, err := httpGet(http.DefaultClient, p.ops()+"/api/v1/status/ring")
				if err != nil {
					return nil, err
				}
				if err := json.Unmarshal([]byte(body), &st); err != nil {
					return nil, err
				}
				out[p.Metadata.Name+"/"+p.Metadata.UID] = st.ConfigHash
			}
		}
		return out, nil
	}
	old, err := hashes()
	require.NoError(t, err)
	restarts := map[string]int{}
	for _, c := range []string{"router", "ingester"} {
		pods, err := k.pods(c)
		require.NoError(t, err)
		for _, p := range pods {
			restarts[p.Metadata.Name] = p.restarts()
		}
	}

	eps, err := json.Marshal(k.ingesterEndpoints(3))
	require.NoError(t, err)
	ring := fmt.Sprintf(`[{"hashring": "default", "algorithm": "ketama", "endpoints": %s, "external_labels": {"ring": "edited"}}]`, eps)
	patch, err := json.Marshal(map[string]any{"data": map[string]string{"hashrings.json": ring}})
	require.NoError(t, err)
	edited := time.Now()
	k.must("-n", k.ns, "patch", "configmap", k.release+"-hashrings", "--type=merge", "-p", string(patch))
	waitFor(t, 3*time.Minute, "every pod to serve the edited hashrings", func() error {
		now, err := hashes()
		if err != nil {
			return err
		}
		if len(now) != len(old) {
			return fmt.Errorf("pods changed: %v, were %v", now, old)
		}
		for pod, h := range now {
			oldHash, same := old[pod]
			if !same {
				return fmt.Errorf("%s is a new pod", pod)
			}
			if h == oldHash {
				return fmt.Errorf("%s still serves config hash %s", pod, h)
			}
		}
		return nil
	})
	took := time.Since(edited)
	for _, c := range []string{"router", "ingester"} {
		pods, err := k.pods(c)
		require.NoError(t, err)
		for _, p := range pods {
			require.Equal(t, restarts[p.Metadata.Name], p.restarts(), "%s restarted", p.Metadata.Name)
		}
	}
	b := startBenchWith(t, k.routerURL(), benchOptions{rate: 3000})
	b.waitAcked(t, 20, time.Minute)
	rep := b.stop(t)
	failed, byStatus := non2xx(rep)
	require.Zero(t, failed, "writes failed after the edit: %s", byStatus)
	t.Logf("FIGURES k8s-configmap-edit: ConfigMap patch to every pod (%d) serving it %s, no restart", len(old), took.Round(time.Millisecond))
}

// TestK8sPDBBlocksEviction: with one ingester evicted (and not ready again yet) the PodDisruptionBudget
// refuses to evict a second one, which would leave RF=3 without a write quorum; the load through the
// router Service sees no failed write while the budget holds. Once the first ingester is ready the
// second eviction is allowed; the writes of that second phase are counted, not required to succeed: the
// budget counts a pod as healthy when it is Ready, which can be before the routers write to it again
// (one run of four saw 8 requests answered 503 there; senders retry them). Nothing acknowledged may be
// lost in either phase.
func TestK8sPDBBlocksEviction(t *testing.T) {
	k := requireK8s(t)
	t.Cleanup(k.uninstall)
	k.install()
	k.waitRing(k.ingesterEndpoints(3), 2*time.Minute)
	allowed := func(want string) func() error {
		return func() error {
			out, err := k.kubectl("-n", k.ns, "get", "pdb", k.release+"-ingester", "-o", "jsonpath={.status.disruptionsAllowed}")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != want {
				return fmt.Errorf("disruptionsAllowed %q", out)
			}
			return nil
		}
	}
	waitFor(t, time.Minute, "the ingester PDB to allow one disruption", allowed("1"))
	evict := func(pod string) (string, error) {
		body := fmt.Sprintf(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":%q}}`, pod, k.ns)
		f := filepath.Join(t.TempDir(), "eviction.json")
		require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
		return k.kubectl("create", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/eviction", k.ns, pod), "-f", f)
	}

	// Phase 1: ingester-0 evicted, ingester-1's eviction refused, until the budget allows one again.
	l := k.startLoad()
	_, err := evict(k.release + "-ingester-0")
	require.NoError(t, err, "the first eviction")
	out, err := evict(k.release + "-ingester-1")
	require.Error(t, err, "the second eviction was allowed while ingester-0 is down: %s", out)
	require.Contains(t, out, "disruption budget", "the second eviction was refused for another reason")
	start := time.Now()
	waitFor(t, 5*time.Minute, "the budget to allow a disruption again once ingester-0 is back", allowed("1"))
	allowedAfter := time.Since(start)
	rep1, forwards1 := l.stop()
	failed1, byStatus1 := non2xx(rep1)
	require.Zero(t, failed1, "writes failed while the budget held: %s", byStatus1)

	// Phase 2: the second eviction, now allowed.
	l2 := k.startLoad()
	waitFor(t, time.Minute, "the eviction of ingester-1", func() error {
		_, err := evict(k.release + "-ingester-1")
		return err
	})
	k.waitPodsReady("ingester", 3, 5*time.Minute)
	l2.bench.waitAcked(t, 30, time.Minute)
	rep2, forwards2 := l2.stop()
	failed2, byStatus2 := non2xx(rep2)

	k.stopIngesters()
	res := verifyQuorumDirs(t, k.pvDirs(), quorumRF3, l.bench.ackLog, l2.bench.ackLog)
	t.Logf("FIGURES k8s-pdb: second eviction refused (disruption budget) while ingester-0 was down, allowed %s later; while the budget held: %d requests, 0 failed, %d failed forwards (covered by the quorum); second eviction: %d requests, %d failed [%s], %d failed forwards; %d samples acknowledged, lost %d",
		allowedAfter.Round(time.Millisecond), rep1.RequestsSent, forwards1, rep2.RequestsSent, failed2, byStatus2, forwards2, res.acked, res.lost)
}
