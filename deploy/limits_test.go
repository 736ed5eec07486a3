package deploy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/weir-metrics/weir/limits"
)

// TestChartTenantLimits: with tenantLimits.config set, the limits ConfigMap holds a file Weir's own
// parser takes, every router and ingester reads it from a mount of that ConfigMap, and routers share
// the rate by their replica count.
func TestChartTenantLimits(t *testing.T) {
	out, err := render(t, "-f", filepath.Join(chartDir, "ci", "limits-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, out)
	var cm *corev1.ConfigMap
	for _, c := range objs.configMaps {
		if strings.HasSuffix(c.Name, "-limits") {
			cm = c
		}
	}
	if cm == nil {
		t.Fatal("no limits ConfigMap rendered")
	}
	snap, err := limits.Parse([]byte(cm.Data["limits.yaml"]))
	if err != nil {
		t.Fatalf("the rendered limits file does not parse: %v\n%s", err, cm.Data["limits.yaml"])
	}
	if got := snap.For("team-a"); got.HeadSeries != 1000000 || len(got.Relabel) != 1 || got.IngestionRate != 100000 {
		t.Errorf("team-a's limits: %+v", got)
	}

	check := func(what string, spec *corev1.PodSpec) map[string][]string {
		flags := flagValues(t, what, spec.Containers[0].Args)
		file := one(t, what, flags, "receive.limits-config-file")
		var mounted bool
		for _, m := range spec.Containers[0].VolumeMounts {
			if filepath.Join(m.MountPath, "limits.yaml") != file {
				continue
			}
			i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
			mounted = i >= 0 && spec.Volumes[i].ConfigMap != nil && spec.Volumes[i].ConfigMap.Name == cm.Name
		}
		if !mounted {
			t.Errorf("%s: --receive.limits-config-file=%s is not a mount of ConfigMap %s", what, file, cm.Name)
		}
		return flags
	}
	for _, sts := range objs.statefulSets {
		check("StatefulSet "+sts.Name, &sts.Spec.Template.Spec)
	}
	for _, dep := range objs.deployments {
		flags := check("Deployment "+dep.Name, &dep.Spec.Template.Spec)
		if got := one(t, dep.Name, flags, "receive.limits.routers"); got != "3" {
			t.Errorf("Deployment %s: --receive.limits.routers=%s, want the router replicas (3)", dep.Name, got)
		}
	}
	if len(objs.statefulSets) == 0 || len(objs.deployments) == 0 {
		t.Fatalf("want ingesters and routers, got %d StatefulSets and %d Deployments", len(objs.statefulSets), len(objs.deployments))
	}
}
