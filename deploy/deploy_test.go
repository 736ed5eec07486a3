// Package deploy tests the Helm chart (deploy/helm/weir), the plain manifests rendered from it
// (deploy/kubernetes/weir.yaml) and their agreement with Weir itself: every rendered object decodes
// strictly into its k8s.io/api type, every flag passed to Weir exists, ports and probes match the
// flags, and the generated hashrings file parses with Weir's own parser and names exactly the
// ingester pods (membership.mode=file), or every pod joins the memberlist cluster through the
// ingester headless Service on the gossip port (membership.mode=memberlist).
//
// The tests need bin/helm (make deploy-check installs it); without it they skip, except under
// CI=true, where they fail.
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/internal/testutil"
)

const (
	chartDir    = "helm/weir"
	releaseName = "weir"
	namespace   = "weir"
	// plainManifests is `make deploy-render`'s output: the chart's default install.
	plainManifests = "kubernetes/weir.yaml"
)

// helm returns the pinned Helm binary ($WEIR_HELM, else bin/helm), skipping loudly (failing under
// CI=true) when it is missing.
func helm(t *testing.T) string {
	t.Helper()
	return testutil.RequireTool(t, "WEIR_HELM", "bin/helm", "make deploy-check")
}

// render runs helm template on the chart with extra arguments (values files, --set).
func render(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", releaseName, chartDir, "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template %v: %w: %s", args, err, stderr.String())
	}
	return out, nil
}

// valuesFiles are the chart's CI values files, each rendered and checked.
func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("want several values files in %s/ci, got %v", chartDir, files)
	}
	return files
}

// objects is one rendering, decoded strictly.
type objects struct {
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment // Weir's (the routers)
	thanos       []*appsv1.Deployment // Thanos Query, Store and Compactor (thanos.*; thanos_test.go)
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	netpols      []*networkingv1.NetworkPolicy
	monitors     []*serviceMonitor
	rules        []*prometheusRule
	certificates []*certificate
}

// prometheusRule is monitoring.coreos.com/v1 PrometheusRule as the chart renders it, decoded strictly
// as serviceMonitor is; its groups are those of a Prometheus rules file.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ruleFile `json:"spec"`
}

// ruleFile is a Prometheus rules file, with the fields Weir's rules use.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Record      string            `json:"record,omitempty"`
			Alert       string            `json:"alert,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// certificate is the part of cert-manager.io/v1 Certificate the chart uses, decoded strictly as
// serviceMonitor is.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName  string `json:"secretName"`
		Duration    string `json:"duration"`
		RenewBefore string `json:"renewBefore"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		Usages    []string `json:"usages"`
		DNSNames  []string `json:"dnsNames"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the chart uses (the
// Prometheus Operator's Go types are not a dependency); decoding is strict against it, so a field
// the chart adds without adding it here fails the test.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// splitDocs splits a multi-document YAML stream on "---" lines, dropping empty documents.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(stripComments(cur.Bytes()))) > 0 {
			docs = append(docs, slices.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " ") == "---" {
			flush()
			continue
		}
		cur.Write(sc.Bytes())
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for line := range strings.SplitSeq(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// decode decodes every document strictly (unknown or duplicate fields fail) into its k8s.io/api type.
func decode(t *testing.T, data []byte) *objects {
	t.Helper()
	objs := &objects{}
	for i, doc := range splitDocs(data) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "apps/v1/StatefulSet":
			o := &appsv1.StatefulSet{}
			objs.statefulSets, obj = append(objs.statefulSets, o), o
		case "apps/v1/Deployment":
			o := &appsv1.Deployment{}
			objs.deployments, obj = append(objs.deployments, o), o
		case "v1/Service":
			o := &corev1.Service{}
			objs.services, obj = append(objs.services, o), o
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			objs.configMaps, obj = append(objs.configMaps, o), o
		case "policy/v1/PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			objs.pdbs, obj = append(objs.pdbs, o), o
		case "autoscaling/v2/HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			objs.hpas, obj = append(objs.hpas, o), o
		case "networking.k8s.io/v1/NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			objs.netpols, obj = append(objs.netpols, o), o
		case "monitoring.coreos.com/v1/ServiceMonitor":
			o := &serviceMonitor{}
			objs.monitors, obj = append(objs.monitors, o), o
		case "monitoring.coreos.com/v1/PrometheusRule":
			o := &prometheusRule{}
			objs.rules, obj = append(objs.rules, o), o
		case "cert-manager.io/v1/Certificate":
			o := &certificate{}
			objs.certificates, obj = append(objs.certificates, o), o
		default:
			t.Fatalf("document %d: unexpected object %s %s", i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("document %d (%s): strict decode: %v\n%s", i, tm.Kind, err, doc)
		}
		if meta := obj.(metav1.Object); meta.GetNamespace() != namespace {
			t.Errorf("%s %s: namespace %q, want %q", tm.Kind, meta.GetName(), meta.GetNamespace(), namespace)
		}
	}
	// Thanos' Deployments are checked apart from Weir's (thanos_test.go).
	weir := objs.deployments[:0]
	for _, d := range objs.deployments {
		if d.Labels["app.kubernetes.io/name"] == "thanos" {
			objs.thanos = append(objs.thanos, d)
		} else {
			weir = append(weir, d)
		}
	}
	objs.deployments = weir
	return objs
}

// chartValues are the values the checks need: the chart's defaults overlaid with a values file.
type chartValues struct {
	Membership struct {
		Mode            string `json:"mode"`
		DeadTimeout     string `json:"deadTimeout"`
		SecretKeySecret struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"secretKeySecret"`
	} `json:"membership"`
	NetworkPolicy struct {
		Enabled bool `json:"enabled"`
	} `json:"networkPolicy"`
	ReplicationFactor int      `json:"replicationFactor"`
	Zones             []string `json:"zones"`
	Ingester          struct {
		Replicas int `json:"replicas"`
	} `json:"ingester"`
	Objstore struct {
		SecretName string `json:"secretName"`
	} `json:"objstore"`
}

func loadValues(t *testing.T, file string) chartValues {
	t.Helper()
	var v chartValues
	for _, f := range []string{filepath.Join(chartDir, "values.yaml"), file} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Unmarshal overlays: fields absent from the file keep the defaults' values.
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return v
}

var (
	weirFlagsOnce []string
	weirFlagRE    = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9.-]*)`)
)

// weirFlags builds Weir and lists the flags `weir receive --help` documents.
func weirFlags(t *testing.T) []string {
	t.Helper()
	if weirFlagsOnce != nil {
		return weirFlagsOnce
	}
	bin := filepath.Join(t.TempDir(), "weir")
	build := exec.Command("go", "build", "-o", bin, "github.com/weir-metrics/weir/cmd/weir")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build weir: %v\n%s", err, out)
	}
	// --help may exit non-zero; only its output matters.
	out, _ := exec.Command(bin, "receive", "--help").CombinedOutput()
	for _, m := range weirFlagRE.FindAllStringSubmatch(string(out), -1) {
		weirFlagsOnce = append(weirFlagsOnce, m[1])
	}
	if len(weirFlagsOnce) < 20 {
		t.Fatalf("weir receive --help listed %d flags:\n%s", len(weirFlagsOnce), out)
	}
	return weirFlagsOnce
}

// flagValues maps each --flag=value argument to its values (repeatable flags keep every value).
func flagValues(t *testing.T, what string, args []string) map[string][]string {
	t.Helper()
	if len(args) == 0 || args[0] != "receive" {
		t.Fatalf("%s: args must start with the receive command, got %q", what, args)
	}
	m := map[string][]string{}
	for _, a := range args[1:] {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("%s: argument %q is not --flag=value", what, a)
			continue
		}
		m[name] = append(m[name], value)
	}
	return m
}

func one(t *testing.T, what string, flags map[string][]string, name string) string {
	t.Helper()
	v := flags[name]
	if len(v) != 1 {
		t.Fatalf("%s: want --%s exactly once, got %q", what, name, v)
	}
	return v[0]
}

func port(t *testing.T, what, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("%s: address %q has no port", what, addr)
	}
	return int32(p)
}

// checkPod checks what routers and ingesters share: flags exist, ports and probes match the flags,
// the security context, and membership: the hashrings file mounted from the ConfigMap (file; the
// ConfigMap is returned), or the memberlist flags, gossip ports and key (memberlist; nil returned).
func checkPod(t *testing.T, what string, spec *corev1.PodSpec, cms []*corev1.ConfigMap, known []string, v chartValues) (map[string][]string, *corev1.ConfigMap) {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", what, len(spec.Containers))
	}
	c := spec.Containers[0]
	flags := flagValues(t, what, c.Args)
	for name := range flags {
		if !slices.Contains(known, name) {
			t.Errorf("%s: --%s is not a flag of weir receive", what, name)
		}
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for flag, name := range map[string]string{"http-address": "http", "grpc-address": "grpc", "remote-write.address": "remote-write"} {
		if got, want := ports[name], port(t, what, one(t, what, flags, flag)); got != want {
			t.Errorf("%s: container port %q is %d, --%s listens on %d", what, name, got, flag, want)
		}
	}
	for probe, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		want := map[string]string{"readiness": "/-/ready", "liveness": "/-/healthy"}[probe]
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", what, probe)
			continue
		}
		if p.HTTPGet.Path != want || ports[p.HTTPGet.Port.String()] != port(t, what, one(t, what, flags, "http-address")) {
			t.Errorf("%s: %s probe %s on port %s, want %s on the --http-address port", what, probe, p.HTTPGet.Path, p.HTTPGet.Port.String(), want)
		}
	}

	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65534 {
		t.Errorf("%s: pod must run as non-root uid 65534: %+v", what, psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem must be read-only: %+v", what, sc)
	}

	if v.Membership.Mode == "memberlist" {
		checkMemberlistPod(t, what, spec, flags, v)
		return flags, nil
	}
	if m := flags["ring.membership"]; len(m) > 0 && m[0] != "file" {
		t.Errorf("%s: membership.mode=file but --ring.membership=%s", what, m[0])
	}

	// The hashrings file: a key of a ConfigMap mounted as a directory (no subPath, so updates reach
	// the pod and Weir reloads them).
	file := one(t, what, flags, "receive.hashrings-file")
	var cm *corev1.ConfigMap
	for _, m := range c.VolumeMounts {
		if m.MountPath != filepath.Dir(file) {
			continue
		}
		if m.SubPath != "" {
			t.Errorf("%s: hashrings mount uses subPath; ConfigMap updates would not reach the pod", what)
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				for _, x := range cms {
					if x.Name == v.ConfigMap.Name {
						cm = x
					}
				}
			}
		}
	}
	if cm == nil {
		t.Fatalf("%s: --receive.hashrings-file=%s is not in a mounted ConfigMap of the chart", what, file)
	}
	if _, ok := cm.Data[filepath.Base(file)]; !ok {
		t.Fatalf("%s: ConfigMap %s has no key %s", what, cm.Name, filepath.Base(file))
	}
	return flags, cm
}

// gossipPort is the port memberlist binds and advertises (TCP and UDP).
const gossipPort = 7946

// checkMemberlistPod checks a pod of a memberlist rendering: no hashrings file, the memberlist
// flags, POD_NAME and POD_IP from the downward API, gossip container ports (TCP and UDP) matching
// --memberlist.bind-address, and the gossip key mounted from its Secret when set.
func checkMemberlistPod(t *testing.T, what string, spec *corev1.PodSpec, flags map[string][]string, v chartValues) {
	t.Helper()
	c := spec.Containers[0]
	if f, ok := flags["receive.hashrings-file"]; ok {
		t.Errorf("%s: memberlist mode but --receive.hashrings-file=%q (Weir refuses mixing them)", what, f)
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "hashrings" {
			t.Errorf("%s: memberlist mode mounts the hashrings volume", what)
		}
	}
	if got := one(t, what, flags, "ring.membership"); got != "memberlist" {
		t.Errorf("%s: --ring.membership=%s, want memberlist", what, got)
	}
	want := map[string]string{
		"memberlist.node-name":         "$(POD_NAME)",
		"memberlist.bind-address":      fmt.Sprintf("0.0.0.0:%d", gossipPort),
		"memberlist.advertise-address": fmt.Sprintf("$(POD_IP):%d", gossipPort),
		"memberlist.dead-timeout":      v.Membership.DeadTimeout,
	}
	for name, w := range want {
		if got := one(t, what, flags, name); got != w {
			t.Errorf("%s: --%s=%s, want %s", what, name, got, w)
		}
	}
	if _, err := time.ParseDuration(one(t, what, flags, "memberlist.dead-timeout")); err != nil {
		t.Errorf("%s: --memberlist.dead-timeout: %v", what, err)
	}
	// The join address is checked against the headless Service in checkRendering; here its port.
	if p := port(t, what, one(t, what, flags, "memberlist.join")); p != gossipPort {
		t.Errorf("%s: --memberlist.join port %d, want %d", what, p, gossipPort)
	}
	for name, path := range map[string]string{"POD_NAME": "metadata.name", "POD_IP": "status.podIP"} {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == path
		}) {
			t.Errorf("%s: %s must come from the downward API (%s): %+v", what, name, path, c.Env)
		}
	}
	bind := port(t, what, one(t, what, flags, "memberlist.bind-address"))
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == bind && p.Protocol == proto }) {
			t.Errorf("%s: no %s container port %d for memberlist gossip: %+v", what, proto, bind, c.Ports)
		}
	}

	// The gossip key: a key of a Secret mounted as a directory, or no key at all.
	keyFile := flags["memberlist.secret-key-file"]
	if v.Membership.SecretKeySecret.Name == "" {
		if len(keyFile) != 0 {
			t.Errorf("%s: no membership.secretKeySecret but --memberlist.secret-key-file=%q", what, keyFile)
		}
		return
	}
	file := one(t, what, flags, "memberlist.secret-key-file")
	if filepath.Base(file) != v.Membership.SecretKeySecret.Key {
		t.Errorf("%s: --memberlist.secret-key-file=%s, want the Secret key %s", what, file, v.Membership.SecretKeySecret.Key)
	}
	var secret string
	for _, m := range c.VolumeMounts {
		if m.MountPath != filepath.Dir(file) {
			continue
		}
		for _, vol := range spec.Volumes {
			if vol.Name == m.Name && vol.Secret != nil {
				secret = vol.Secret.SecretName
			}
		}
	}
	if secret != v.Membership.SecretKeySecret.Name {
		t.Errorf("%s: --memberlist.secret-key-file=%s is in Secret %q, want %q", what, file, secret, v.Membership.SecretKeySecret.Name)
	}
}

// checkGossipService checks that the join address is the headless Service of the ingesters and
// that it exposes the gossip port (TCP and UDP) and publishes not-ready pods.
func checkGossipService(t *testing.T, what string, flags map[string][]string, svcs []*corev1.Service, headless string) {
	t.Helper()
	join := one(t, what, flags, "memberlist.join")
	if want := fmt.Sprintf("%s.%s.svc.cluster.local:%d", headless, namespace, gossipPort); join != want {
		t.Errorf("%s: --memberlist.join=%s, want the ingester headless Service %s", what, join, want)
	}
	for _, s := range svcs {
		if s.Name != headless {
			continue
		}
		if !s.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: publishNotReadyAddresses must be true for gossip", s.Name)
		}
		for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool {
				return p.Port == gossipPort && p.Protocol == proto && p.TargetPort.IntValue() == 0 && p.TargetPort.String() != ""
			}) {
				t.Errorf("Service %s: no named %s port %d for gossip: %+v", s.Name, proto, gossipPort, s.Spec.Ports)
			}
		}
		return
	}
	t.Errorf("%s: --memberlist.join names Service %s, which the chart does not render", what, headless)
}

func checkRendering(t *testing.T, objs *objects, v chartValues) {
	known := weirFlags(t)

	sets := max(1, len(v.Zones))
	if len(objs.statefulSets) != sets {
		t.Fatalf("want %d ingester StatefulSets, got %d", sets, len(objs.statefulSets))
	}
	if len(objs.deployments) != 1 {
		t.Fatalf("want one router Deployment, got %d", len(objs.deployments))
	}

	memberlist := v.Membership.Mode == "memberlist"
	var wantEndpoints, zonesSeen []string
	var cm *corev1.ConfigMap
	for _, sts := range objs.statefulSets {
		what := "StatefulSet " + sts.Name
		if sts.Spec.Replicas == nil || int(*sts.Spec.Replicas) != v.Ingester.Replicas {
			t.Errorf("%s: replicas %v, want %d", what, sts.Spec.Replicas, v.Ingester.Replicas)
		}
		if len(sts.Spec.VolumeClaimTemplates) != 1 {
			t.Errorf("%s: want one volumeClaimTemplate", what)
		}
		pod := &sts.Spec.Template.Spec
		flags, m := checkPod(t, what, pod, objs.configMaps, known, v)
		cm = m
		if memberlist {
			checkGossipService(t, what, flags, objs.services, sts.Spec.ServiceName)
			// Zones: the zone of the StatefulSet (its zone label) is the member's zone in the ring.
			var zone string
			for _, l := range flags["label"] {
				if z, ok := strings.CutPrefix(l, "zone="); ok {
					zone = strings.Trim(z, `"`)
				}
			}
			if got := flags["memberlist.zone"]; len(v.Zones) == 0 && len(got) != 0 || len(v.Zones) > 0 && (len(got) != 1 || got[0] != zone || !slices.Contains(v.Zones, zone)) {
				t.Errorf("%s: --memberlist.zone=%q, want the StatefulSet's zone %q (zones %q)", what, got, zone, v.Zones)
			}
			zonesSeen = append(zonesSeen, zone)
		}

		if got := one(t, what, flags, "receive.replication-factor"); got != strconv.Itoa(v.ReplicationFactor) {
			t.Errorf("%s: --receive.replication-factor=%s, want %d", what, got, v.ReplicationFactor)
		}
		if !slices.Contains(flags["label"], `replica="$(POD_NAME)"`) {
			t.Errorf("%s: no --label=replica=\"$(POD_NAME)\" in %q", what, flags["label"])
		}
		env := pod.Containers[0].Env
		if !slices.ContainsFunc(env, func(e corev1.EnvVar) bool {
			return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}) {
			t.Errorf("%s: POD_NAME must come from the downward API (metadata.name): %+v", what, env)
		}
		if (v.Objstore.SecretName != "") != (len(flags["objstore.config-file"]) == 1) {
			t.Errorf("%s: objstore Secret %q but --objstore.config-file %q", what, v.Objstore.SecretName, flags["objstore.config-file"])
		}

		// The pod's endpoint in the ring: <pod>.<headless service>.<namespace>.svc.cluster.local:<grpc port>.
		grpcPort := port(t, what, one(t, what, flags, "grpc-address"))
		domain := fmt.Sprintf("%s.%s.svc.cluster.local:%d", sts.Spec.ServiceName, namespace, grpcPort)
		if got, want := one(t, what, flags, "receive.local-endpoint"), "$(POD_NAME)."+domain; got != want {
			t.Errorf("%s: --receive.local-endpoint=%s, want %s", what, got, want)
		}
		for i := range v.Ingester.Replicas {
			wantEndpoints = append(wantEndpoints, fmt.Sprintf("%s-%d.%s", sts.Name, i, domain))
		}
		checkHeadless(t, what, objs.services, sts)

		// Long enough to finish writes, then flush and ship the heads.
		grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		var need time.Duration
		for _, f := range []string{"shutdown.timeout", "shipper.shutdown-timeout"} {
			d, err := time.ParseDuration(one(t, what, flags, f))
			if err != nil {
				t.Fatalf("%s: --%s: %v", what, f, err)
			}
			need += d
		}
		if grace <= need {
			t.Errorf("%s: terminationGracePeriodSeconds %v does not cover --shutdown.timeout + --shipper.shutdown-timeout = %v", what, grace, need)
		}
		if len(pod.TopologySpreadConstraints) == 0 {
			t.Errorf("%s: no topology spread constraints", what)
		}
	}

	// Routers: the same ring, no local endpoint (they store nothing).
	dep := objs.deployments[0]
	rflags, rcm := checkPod(t, "Deployment "+dep.Name, &dep.Spec.Template.Spec, objs.configMaps, known, v)
	if _, ok := rflags["receive.local-endpoint"]; ok {
		t.Errorf("router %s must not have --receive.local-endpoint", dep.Name)
	}
	if got := one(t, "router", rflags, "receive.replication-factor"); got != strconv.Itoa(v.ReplicationFactor) {
		t.Errorf("router: --receive.replication-factor=%s, want %d", got, v.ReplicationFactor)
	}
	checkServicesAndPolicies(t, objs, v, dep)
	if memberlist {
		// Routers join through the same headless Service and announce no zone (they own no series).
		checkGossipService(t, "router", rflags, objs.services, objs.statefulSets[0].Spec.ServiceName)
		if z, ok := rflags["memberlist.zone"]; ok {
			t.Errorf("router: --memberlist.zone=%q; routers own no series", z)
		}
		if len(v.Zones) > 0 {
			slices.Sort(zonesSeen)
			if want := slices.Sorted(slices.Values(v.Zones)); !slices.Equal(zonesSeen, want) {
				t.Errorf("ingester zones %q, want %q", zonesSeen, want)
			}
		}
		// No hashrings file at all: the ring comes from gossip.
		if len(objs.configMaps) != 0 {
			t.Errorf("memberlist mode renders %d ConfigMaps (want no hashrings ConfigMap)", len(objs.configMaps))
		}
		return
	}
	if rcm != cm {
		t.Errorf("routers read ConfigMap %s, ingesters %s", rcm.Name, cm.Name)
	}

	// The hashrings file parses with Weir's own parser and names exactly the ingester pods.
	var data string
	for _, d := range cm.Data {
		data = d
	}
	rings, err := hashring.ParseConfig([]byte(data), hashring.Options{ReplicationFactor: v.ReplicationFactor})
	if err != nil {
		t.Fatalf("hashrings ConfigMap %s: %v\n%s", cm.Name, err, data)
	}
	if len(rings) != 1 {
		t.Fatalf("want one hashring, got %d", len(rings))
	}
	var got []string
	for _, e := range rings[0].Endpoints {
		got = append(got, e.Address)
	}
	if want := v.Ingester.Replicas * sets; len(got) != want {
		t.Errorf("hashring lists %d endpoints, want %d (ingester.replicas × zones)", len(got), want)
	}
	if !slices.Equal(got, wantEndpoints) {
		t.Errorf("hashring endpoints\n%q\nwant the ingester pods\n%q", got, wantEndpoints)
	}

}

// checkServicesAndPolicies checks the router Service, PodDisruptionBudgets, HPA and NetworkPolicy.
func checkServicesAndPolicies(t *testing.T, objs *objects, v chartValues, dep *appsv1.Deployment) {
	t.Helper()
	// Router Service exposes remote write, and its selector picks the router pods.
	var routerSvc bool
	for _, s := range objs.services {
		if selects(s.Spec.Selector, dep.Spec.Template.Labels) {
			for _, p := range s.Spec.Ports {
				routerSvc = routerSvc || p.Name == "remote-write" && p.TargetPort.String() == "remote-write"
			}
		}
	}
	if !routerSvc {
		t.Errorf("no Service exposes the routers' remote-write port")
	}

	// PodDisruptionBudgets: at most one ingester down; routers covered too.
	var ingPDB, routerPDB bool
	for _, p := range objs.pdbs {
		sel := p.Spec.Selector.MatchLabels
		if selects(sel, objs.statefulSets[0].Spec.Template.Labels) {
			ingPDB = p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.IntValue() == 1
		}
		if selects(sel, dep.Spec.Template.Labels) {
			routerPDB = true
		}
	}
	if !ingPDB || !routerPDB {
		t.Errorf("PodDisruptionBudgets: ingesters (maxUnavailable 1) %v, routers %v", ingPDB, routerPDB)
	}
	for _, h := range objs.hpas {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != dep.Name {
			t.Errorf("HPA %s scales %s %s, want the router Deployment", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if dep.Spec.Replicas != nil {
			t.Errorf("router Deployment sets replicas while the HPA %s owns them", h.Name)
		}
	}

	// NetworkPolicy: gRPC (and gossip, TCP and UDP, with memberlist) only between Weir pods.
	for _, np := range objs.netpols {
		want := []int32{10901}
		if v.Membership.Mode == "memberlist" {
			want = append(want, gossipPort)
		}
		for _, p := range want {
			for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
				if p != gossipPort && proto == corev1.ProtocolUDP {
					continue
				}
				if !slices.ContainsFunc(np.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool {
					return slices.ContainsFunc(r.Ports, func(np networkingv1.NetworkPolicyPort) bool {
						return np.Port != nil && np.Port.IntValue() == int(p) && np.Protocol != nil && *np.Protocol == proto
					}) && slices.ContainsFunc(r.From, func(f networkingv1.NetworkPolicyPeer) bool {
						return f.PodSelector != nil && selects(f.PodSelector.MatchLabels, dep.Spec.Template.Labels) && selects(f.PodSelector.MatchLabels, objs.statefulSets[0].Spec.Template.Labels)
					})
				}) {
					t.Errorf("NetworkPolicy %s: no rule allowing %s port %d from Weir's pods", np.Name, proto, p)
				}
			}
		}
	}
	if v.NetworkPolicy.Enabled != (len(objs.netpols) == 1) {
		t.Errorf("networkPolicy.enabled=%v but %d NetworkPolicies", v.NetworkPolicy.Enabled, len(objs.netpols))
	}
}

// checkHeadless checks that the StatefulSet's governing Service is headless and selects its pods.
func checkHeadless(t *testing.T, what string, svcs []*corev1.Service, sts *appsv1.StatefulSet) {
	t.Helper()
	for _, s := range svcs {
		if s.Name != sts.Spec.ServiceName {
			continue
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("%s: Service %s must be headless", what, s.Name)
		}
		if !selects(s.Spec.Selector, sts.Spec.Template.Labels) {
			t.Errorf("%s: Service %s does not select the ingester pods", what, s.Name)
		}
		return
	}
	t.Errorf("%s: no Service %s (serviceName)", what, sts.Spec.ServiceName)
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestChartRendersValidObjects(t *testing.T) {
	for _, file := range valuesFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := render(t, "-f", file)
			if err != nil {
				t.Fatal(err)
			}
			checkRendering(t, decode(t, out), loadValues(t, file))
		})
	}
}

func TestChartOptionalObjects(t *testing.T) {
	def, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, def)
	if len(objs.monitors)+len(objs.rules)+len(objs.netpols)+len(objs.hpas) != 0 {
		t.Errorf("defaults render optional objects: %d ServiceMonitors, %d PrometheusRules, %d NetworkPolicies, %d HPAs",
			len(objs.monitors), len(objs.rules), len(objs.netpols), len(objs.hpas))
	}
	full, err := render(t, "-f", filepath.Join(chartDir, "ci", "full-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs = decode(t, full)
	if len(objs.monitors) != 1 || len(objs.rules) != 1 || len(objs.netpols) != 1 || len(objs.hpas) != 1 {
		t.Errorf("full-values.yaml: want one each of ServiceMonitor, PrometheusRule, NetworkPolicy, HPA, got %d, %d, %d, %d",
			len(objs.monitors), len(objs.rules), len(objs.netpols), len(objs.hpas))
	}
	// The PrometheusRule holds the rules file promtool tests (deploy/rules), group by group.
	src, err := os.ReadFile(filepath.Join("rules", "weir.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if copied, err := os.ReadFile(filepath.Join(chartDir, "rules", "weir.rules.yml")); err != nil || !bytes.Equal(copied, src) {
		t.Errorf("%s/rules/weir.rules.yml differs from rules/weir.rules.yml (copy it): %v", chartDir, err)
	}
	var want ruleFile
	if err := yaml.UnmarshalStrict(src, &want); err != nil {
		t.Fatal(err)
	}
	for _, r := range objs.rules {
		if !reflect.DeepEqual(r.Spec, want) {
			t.Errorf("PrometheusRule %s: its groups are not those of rules/weir.rules.yml", r.Name)
		}
		if r.Labels["release"] != "prometheus" {
			t.Errorf("PrometheusRule %s: labels %v, want release=prometheus from the values", r.Name, r.Labels)
		}
	}
	for _, m := range objs.monitors {
		for _, e := range m.Spec.Endpoints {
			if e.Port != "http" || e.Path != "/metrics" {
				t.Errorf("ServiceMonitor scrapes port %q path %q, want http /metrics", e.Port, e.Path)
			}
		}
	}
}

func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"membership.mode=gossip"}, "membership.mode"},
		{[]string{"thanos.compactor.enabled=true", "objstore.secretName="}, "objstore.secretName"},
		{[]string{"membership.mode=memberlist", "membership.deadTimeout="}, "deadTimeout"},
		{[]string{"replicationFactor=3", "ingester.replicas=2"}, "needs at least"},
		{[]string{"replicationFactor=3", "zones={a,b}"}, "zones"},
		{[]string{"hashringAlgorithm=random"}, "hashringAlgorithm"},
		{[]string{"security.remoteWrite.tenantCertificateField=organization"}, "tenantCertificateField"},
		{[]string{"security.remoteWrite.clientCA=true"}, "clientCA needs"},
		{[]string{"security.certManager.enabled=true"}, "certManager"},
	} {
		var args []string
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		_, err := render(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %v: got error %v, want one mentioning %q", tc.set, err, tc.want)
		}
	}
}

// TestChartSecurity: secure-values.yaml mounts every Secret it names, as whole volumes (Kubernetes
// updates those, never subPath mounts, and Weir reloads what changes), points the flags at files in
// them, and renders one cert-manager Certificate per TLS Secret.
func TestChartSecurity(t *testing.T) {
	out, err := render(t, "-f", filepath.Join(chartDir, "ci", "secure-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, out)
	var secrets []string
	for _, c := range objs.certificates {
		secrets = append(secrets, c.Spec.SecretName)
	}
	slices.Sort(secrets)
	if want := []string{"weir-grpc-tls", "weir-remote-write-tls"}; !slices.Equal(secrets, want) {
		t.Errorf("Certificates write %v, want %v", secrets, want)
	}
	var specs []*corev1.PodSpec
	for _, d := range objs.deployments {
		specs = append(specs, &d.Spec.Template.Spec)
	}
	for _, s := range objs.statefulSets {
		specs = append(specs, &s.Spec.Template.Spec)
	}
	for _, spec := range specs {
		c := spec.Containers[0]
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" {
				t.Errorf("volume %s mounted with subPath: never updated by Kubernetes", m.Name)
			}
			mounts[m.Name] = m.MountPath
		}
		volumes := map[string]string{}
		for _, v := range spec.Volumes {
			if v.Secret != nil {
				volumes[v.Name] = v.Secret.SecretName
			}
		}
		flags := flagValues(t, "secure pod", c.Args)
		for flag, volume := range map[string]string{
			"remote-write.server-tls-cert": "remote-write-tls", "remote-write.server-tls-client-ca": "remote-write-tls",
			"receive.credentials-file": "credentials", "grpc-server-tls-cert": "grpc-tls", "grpc-server-tls-client-ca": "grpc-tls",
			"remote-write.client-tls-cert": "grpc-tls", "http.config": "web-config",
		} {
			file := one(t, "secure pod", flags, flag)
			if volumes[volume] == "" || !strings.HasPrefix(file, mounts[volume]+"/") {
				t.Errorf("--%s=%s is not in Secret volume %s (mounted at %q, Secret %q)", flag, file, volume, mounts[volume], volumes[volume])
			}
		}
		if got := one(t, "secure pod", flags, "receive.tenant-certificate-field"); got != "organization" {
			t.Errorf("--receive.tenant-certificate-field=%s", got)
		}
		if c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("readiness probe scheme %q with security.http.tls", c.ReadinessProbe.HTTPGet.Scheme)
		}
	}
}

// TestChartMemberlistDefaults renders memberlist mode with otherwise default values (no zones, no
// gossip key) and checks it like the CI values files.
func TestChartMemberlistDefaults(t *testing.T) {
	out, err := render(t, "--set", "membership.mode=memberlist")
	if err != nil {
		t.Fatal(err)
	}
	v := loadValues(t, "")
	v.Membership.Mode = "memberlist"
	checkRendering(t, decode(t, out), v)
}

func TestPlainManifestsAreTheChartsRendering(t *testing.T) {
	fresh, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(plainManifests)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatalf("%s differs from a fresh `helm template %s %s --namespace %s`; run `make deploy-render`", plainManifests, releaseName, "deploy/"+chartDir, namespace)
	}
	checkRendering(t, decode(t, committed), loadValues(t, ""))
}

// TestChartTakesOverThanosNames: with the names of a Thanos Receive StatefulSet (kube-thanos' and
// Bitnami's layouts), the ingesters' StatefulSet, its claim and its headless Service keep them, so
// the pods mount the PersistentVolumeClaims Thanos Receive left, and the hashring endpoints are the
// pods' names under that Service.
func TestChartTakesOverThanosNames(t *testing.T) {
	for _, tc := range []struct{ file, sts, svc string }{
		{"from-kube-thanos-values.yaml", "thanos-receive-default", "thanos-receive-default"},
		{"from-bitnami-values.yaml", "thanos-receive", "thanos-receive-headless"},
	} {
		out, err := render(t, "-f", filepath.Join(chartDir, "ci", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		objs := decode(t, out)
		if len(objs.statefulSets) != 1 {
			t.Fatalf("%s: %d StatefulSets", tc.file, len(objs.statefulSets))
		}
		sts := objs.statefulSets[0]
		if sts.Name != tc.sts || sts.Spec.ServiceName != tc.svc {
			t.Errorf("%s: StatefulSet %q with service %q, want %q and %q", tc.file, sts.Name, sts.Spec.ServiceName, tc.sts, tc.svc)
		}
		if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" {
			t.Errorf("%s: claim templates %v, want one named data (PVC data-%s-<i>)", tc.file, sts.Spec.VolumeClaimTemplates, tc.sts)
		}
		found := false
		for _, s := range objs.services {
			found = found || s.Name == tc.svc && s.Spec.ClusterIP == corev1.ClusterIPNone
		}
		if !found {
			t.Errorf("%s: no headless Service %s", tc.file, tc.svc)
		}
		endpoint := fmt.Sprintf("%s-0.%s.%s.svc.cluster.local:10901", tc.sts, tc.svc, namespace)
		found = false
		for _, cm := range objs.configMaps {
			for _, data := range cm.Data {
				found = found || strings.Contains(data, endpoint)
			}
		}
		if !found {
			t.Errorf("%s: no hashrings ConfigMap naming %s", tc.file, endpoint)
		}
	}
	if _, err := render(t, "--set", "ingester.statefulSetName=x", "--set", "zones={a,b,c}", "--set", "replicationFactor=3"); err == nil || !strings.Contains(err.Error(), "statefulSetName") {
		t.Errorf("statefulSetName with zones: got %v, want a refusal naming it", err)
	}
}
