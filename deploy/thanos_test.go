package deploy

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weir-metrics/weir/deploy/dashboards"
	"github.com/weir-metrics/weir/internal/testutil"
)

// stackValues turns on the Thanos components and the Grafana dashboard (docs/stack.md on Kubernetes).
var stackValues = filepath.Join(chartDir, "ci", "stack-values.yaml")

// renderStack renders ci/stack-values.yaml and returns the objects and the Thanos Deployments by
// component (query, store, compactor).
func renderStack(t *testing.T) (*objects, map[string]*appsv1.Deployment) {
	t.Helper()
	out, err := render(t, "-f", stackValues)
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, out)
	byComponent := map[string]*appsv1.Deployment{}
	for _, d := range objs.thanos {
		byComponent[d.Labels["app.kubernetes.io/component"]] = d
	}
	if len(byComponent) != 3 || byComponent["query"] == nil || byComponent["store"] == nil || byComponent["compactor"] == nil {
		t.Fatalf("want Thanos query, store and compactor Deployments, got %v", byComponent)
	}
	return objs, byComponent
}

// thanosArgs returns a Thanos container's arguments after its command (query, store, compact), each
// --flag=value split into flag and value (repeatable flags keep every value).
func thanosArgs(t *testing.T, d *appsv1.Deployment) (cmd string, flags map[string][]string) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 {
		t.Fatalf("%s: no arguments", d.Name)
	}
	flags = map[string][]string{}
	for _, a := range c.Args[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[name] = append(flags[name], value)
	}
	return c.Args[0], flags
}

// TestChartThanosStack: Thanos Query finds every ingester through the SRV records of the headless
// Service (_grpc._tcp: a TCP port named grpc that is the ingesters' gRPC port, where Weir serves the
// StoreAPI) and Store through its Service, and removes the replica label the ingesters add; Store and
// the Compactor read the ingesters' bucket; the Compactor is alone (one replica, Recreate) and merges
// replicas; the NetworkPolicy lets Query reach the ingesters. With the defaults, none of it is
// rendered.
func TestChartThanosStack(t *testing.T) {
	objs, th := renderStack(t)
	checkRendering(t, objs, loadValues(t, stackValues)) // Weir itself is unchanged by the Thanos values

	sts := objs.statefulSets[0]
	headless := serviceNamed(t, objs, sts.Spec.ServiceName)
	requireSRVPort(t, headless, sts.Spec.Template.Spec.Containers[0], "grpc", 10901)
	storeSvc := serviceNamed(t, objs, th["store"].Name)
	requireSRVPort(t, storeSvc, th["store"].Spec.Template.Spec.Containers[0], "grpc", 10901)
	if !selects(storeSvc.Spec.Selector, th["store"].Spec.Template.Labels) {
		t.Errorf("Service %s does not select the Store pods", storeSvc.Name)
	}

	_, q := thanosArgs(t, th["query"])
	wantEndpoints := []string{
		"dnssrv+_grpc._tcp." + headless.Name + "." + namespace + ".svc.cluster.local",
		"dnssrv+_grpc._tcp." + storeSvc.Name + "." + namespace + ".svc.cluster.local",
	}
	if !slices.Equal(q["endpoint"], wantEndpoints) {
		t.Errorf("query --endpoint=%q, want %q", q["endpoint"], wantEndpoints)
	}
	ingFlags := flagValues(t, "ingester", sts.Spec.Template.Spec.Containers[0].Args)
	if !slices.Contains(ingFlags["label"], `replica="$(POD_NAME)"`) || !slices.Equal(q["query.replica-label"], []string{"replica"}) {
		t.Errorf("query --query.replica-label=%q, ingesters --label=%q: Query must remove the ingesters' replica label", q["query.replica-label"], ingFlags["label"])
	}

	ingObjstore := one(t, "ingester", ingFlags, "objstore.config-file")
	for _, c := range []string{"store", "compactor"} {
		d := th[c]
		_, f := thanosArgs(t, d)
		file := one(t, c, f, "objstore.config-file")
		if filepath.Base(file) != filepath.Base(ingObjstore) || !mountsSecret(d.Spec.Template.Spec, filepath.Dir(file), "weir-objstore") {
			t.Errorf("%s: --objstore.config-file=%s is not the ingesters' Secret weir-objstore (%s)", c, file, ingObjstore)
		}
	}
	cmd, c := thanosArgs(t, th["compactor"])
	if cmd != "compact" || *th["compactor"].Spec.Replicas != 1 || th["compactor"].Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("compactor: command %q, %d replicas, strategy %s: want compact, one, Recreate", cmd, *th["compactor"].Spec.Replicas, th["compactor"].Spec.Strategy.Type)
	}
	if _, ok := c["wait"]; !ok || !slices.Equal(c["deduplication.replica-label"], []string{"replica"}) {
		t.Errorf("compactor: want --wait and --deduplication.replica-label=replica, got %v", c)
	}

	queryPods := th["query"].Spec.Template.Labels
	np := objs.netpols[0]
	if !slices.ContainsFunc(np.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool {
		return slices.ContainsFunc(r.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntValue() == 10901 }) &&
			slices.ContainsFunc(r.From, func(f networkingv1.NetworkPolicyPeer) bool {
				return f.PodSelector != nil && selects(f.PodSelector.MatchLabels, queryPods)
			})
	}) {
		t.Errorf("NetworkPolicy %s does not let Thanos Query reach the ingesters' gRPC port", np.Name)
	}

	def, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	if objs := decode(t, def); len(objs.thanos) != 0 {
		t.Errorf("defaults render %d Thanos Deployments", len(objs.thanos))
	}
}

// TestChartGrafanaDashboard: with grafanaDashboard.enabled the chart renders a ConfigMap with the
// sidecar's label holding exactly the dashboard deploy/dashboards generates; by default none.
func TestChartGrafanaDashboard(t *testing.T) {
	objs, _ := renderStack(t)
	want, err := dashboards.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var dash *corev1.ConfigMap
	for _, cm := range objs.configMaps {
		if cm.Labels["grafana_dashboard"] == "1" {
			dash = cm
		}
	}
	if dash == nil {
		t.Fatal("no ConfigMap labelled grafana_dashboard: \"1\"")
	}
	if got := dash.Data["weir.json"]; got != strings.TrimSuffix(string(want), "\n") {
		t.Errorf("ConfigMap %s does not hold the generated dashboard (run `make dashboards`)", dash.Name)
	}

	def, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range decode(t, def).configMaps {
		if _, ok := cm.Labels["grafana_dashboard"]; ok {
			t.Errorf("defaults render the dashboard ConfigMap %s", cm.Name)
		}
	}
}

// TestChartThanosFlagsExist: every flag the chart passes to Thanos is one that the pinned Thanos
// (bin/thanos, the image's version) lists in `thanos <command> --help`.
func TestChartThanosFlagsExist(t *testing.T) {
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")
	_, th := renderStack(t)
	flagRE := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9.-]*)`)
	for _, d := range th {
		cmd, flags := thanosArgs(t, d)
		out, _ := exec.Command(thanos, cmd, "--help").CombinedOutput() // --help exits non-zero; only its output matters
		var known []string
		for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
			known = append(known, m[1])
		}
		if len(known) < 10 {
			t.Fatalf("thanos %s --help listed %d flags:\n%s", cmd, len(known), out)
		}
		for f := range flags {
			if !slices.Contains(known, f) {
				t.Errorf("%s: thanos %s has no flag --%s", d.Name, cmd, f)
			}
		}
	}
}

func serviceNamed(t *testing.T, objs *objects, name string) *corev1.Service {
	t.Helper()
	for _, s := range objs.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

// requireSRVPort checks that svc publishes the SRV record _<name>._tcp for the container's port name
// (number want): a TCP Service port named name whose target is that container port.
func requireSRVPort(t *testing.T, svc *corev1.Service, c corev1.Container, name string, want int32) {
	t.Helper()
	for _, p := range svc.Spec.Ports {
		if p.Name != name {
			continue
		}
		if p.Protocol != corev1.ProtocolTCP || p.TargetPort.String() != name {
			t.Errorf("Service %s port %s: protocol %s target %s, want TCP %s", svc.Name, name, p.Protocol, p.TargetPort.String(), name)
		}
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == name && cp.ContainerPort == want }) {
			t.Errorf("Service %s port %s: container %s has no port %s = %d", svc.Name, name, c.Name, name, want)
		}
		return
	}
	t.Errorf("Service %s has no port named %s: no SRV record _%s._tcp", svc.Name, name, name)
}

// mountsSecret reports whether the pod mounts the Secret secret at dir.
func mountsSecret(pod corev1.PodSpec, dir, secret string) bool {
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != secret {
			continue
		}
		for _, m := range pod.Containers[0].VolumeMounts {
			if m.Name == v.Name && m.MountPath == dir {
				return true
			}
		}
	}
	return false
}
