package kubernetes_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/yaml"

	"github.com/modeltel/modeltel/deploy/kubernetes/internal/genrules"
	"github.com/modeltel/modeltel/deploy/kubernetes/internal/strict"
)

// manifests are the files a user applies.
var manifests = []string{"gpu-exporter.yaml", "inference-server.yaml", "prometheusrule.yaml"}

// repoRoot is the SDK's repository root, seen from this module.
const repoRoot = "../.."

// kinds are the only kinds the manifests may hold, each with the upstream Go
// type it must decode into and whether it lives in a namespace.
var kinds = map[schema.GroupVersionKind]struct {
	new        func() metav1.Object
	namespaced bool
}{
	corev1.SchemeGroupVersion.WithKind("Namespace"):            {func() metav1.Object { return &corev1.Namespace{} }, false},
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"):       {func() metav1.Object { return &corev1.ServiceAccount{} }, true},
	corev1.SchemeGroupVersion.WithKind("Service"):              {func() metav1.Object { return &corev1.Service{} }, true},
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"):            {func() metav1.Object { return &appsv1.DaemonSet{} }, true},
	appsv1.SchemeGroupVersion.WithKind("Deployment"):           {func() metav1.Object { return &appsv1.Deployment{} }, true},
	monitoringv1.SchemeGroupVersion.WithKind("PodMonitor"):     {func() metav1.Object { return &monitoringv1.PodMonitor{} }, true},
	monitoringv1.SchemeGroupVersion.WithKind("ServiceMonitor"): {func() metav1.Object { return &monitoringv1.ServiceMonitor{} }, true},
	monitoringv1.SchemeGroupVersion.WithKind("PrometheusRule"): {func() metav1.Object { return &monitoringv1.PrometheusRule{} }, true},
}

// object is one decoded document of a manifest.
type object struct {
	file string
	gvk  schema.GroupVersionKind
	obj  metav1.Object
}

func (o object) String() string {
	return fmt.Sprintf("%s: %s %s/%s", o.file, o.gvk.Kind, o.obj.GetNamespace(), o.obj.GetName())
}

// decode strictly decodes one document into the upstream type of its kind:
// an unknown apiVersion/kind, an unknown or mis-cased field, a duplicate key,
// a value of the wrong type, a missing name or a missing (or superfluous)
// namespace is an error.
func decode(doc []byte) (schema.GroupVersionKind, metav1.Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return schema.GroupVersionKind{}, nil, err
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	k, ok := kinds[gvk]
	if !ok {
		return gvk, nil, fmt.Errorf("unknown kind %q of apiVersion %q", tm.Kind, tm.APIVersion)
	}
	obj := k.new()
	if err := strict.Unmarshal(doc, obj); err != nil {
		return gvk, nil, err
	}
	switch {
	case obj.GetName() == "":
		return gvk, nil, fmt.Errorf("%s without metadata.name", gvk.Kind)
	case k.namespaced && obj.GetNamespace() == "":
		// Without it kubectl puts the object in the context's namespace, away from its peers.
		return gvk, nil, fmt.Errorf("%s %s without metadata.namespace", gvk.Kind, obj.GetName())
	case !k.namespaced && obj.GetNamespace() != "":
		return gvk, nil, fmt.Errorf("%s %s is cluster-scoped but has namespace %q", gvk.Kind, obj.GetName(), obj.GetNamespace())
	}
	return gvk, obj, nil
}

// loadFile decodes every document of one manifest.
func loadFile(t *testing.T, file string) []object {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := strict.Documents(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no documents", file)
	}
	var out []object
	for i, doc := range docs {
		gvk, obj, err := decode(doc)
		if err != nil {
			t.Fatalf("%s document %d: %v", file, i+1, err)
		}
		out = append(out, object{file: file, gvk: gvk, obj: obj})
	}
	return out
}

// loadAll decodes every manifest.
func loadAll(t *testing.T) []object {
	t.Helper()
	var out []object
	for _, f := range manifests {
		out = append(out, loadFile(t, f)...)
	}
	return out
}

// all returns the objects of type T, in file order.
func all[T metav1.Object](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestEveryManifestChecked keeps the list above complete: `kubectl apply -f
// deploy/kubernetes/` applies every YAML file of the directory.
func TestEveryManifestChecked(t *testing.T) {
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	want := slices.Sorted(slices.Values(manifests))
	if !slices.Equal(files, want) {
		t.Fatalf("manifests in the directory: %q; the tests check %q", files, want)
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	seen := map[string]string{}
	for _, file := range manifests {
		t.Run(file, func(t *testing.T) {
			for _, o := range loadFile(t, file) {
				key := o.gvk.Kind + " " + o.obj.GetNamespace() + "/" + o.obj.GetName()
				if prev, ok := seen[key]; ok {
					t.Errorf("%s is in both %s and %s", key, prev, file)
				}
				seen[key] = file
			}
		})
	}
}

func TestStrictDecodeRejects(t *testing.T) {
	data, err := os.ReadFile("gpu-exporter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := strict.Documents(data)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]byte{}
	for _, d := range docs {
		gvk, _, err := decode(d)
		if err != nil {
			t.Fatal(err)
		}
		byKind[gvk.Kind] = d
	}
	tests := []struct {
		name, kind, old, new, wantErr string
	}{
		{"typo'd field", "DaemonSet", "runtimeClassName: nvidia", "runtimeClass: nvidia", `unknown field "spec.template.spec.runtimeClass"`},
		{"field in the wrong case", "DaemonSet", "hostPID: true", "hostPid: true", `unknown field "spec.template.spec.hostPid"`},
		{"misplaced field", "DaemonSet", "      hostPID: true", "      hostPID: true\n      readOnlyRootFilesystem: true", `unknown field "spec.template.spec.readOnlyRootFilesystem"`},
		{"wrong type", "DaemonSet", "hostPID: true", `hostPID: "yes"`, "cannot unmarshal"},
		{"duplicate key", "DaemonSet", "runtimeClassName: nvidia", "runtimeClassName: nvidia\n      runtimeClassName: runc", "already set"},
		{"typo'd PodMonitor field", "PodMonitor", "podMetricsEndpoints:", "podMetricEndpoints:", `unknown field "spec.podMetricEndpoints"`},
		{"typo'd relabelling field", "PodMonitor", "targetLabel: node", "target_label: node", `unknown field "spec.podMetricsEndpoints[0].relabelings[0].target_label"`},
		{"unknown kind", "DaemonSet", "kind: DaemonSet", "kind: DeamonSet", "unknown kind"},
		{"unknown apiVersion", "DaemonSet", "apiVersion: apps/v1", "apiVersion: apps/v1beta2", "unknown kind"},
		{"no namespace", "ServiceAccount", "  namespace: monitoring\n", "", "without metadata.namespace"},
		{"namespace on a cluster-scoped kind", "Namespace", "  name: monitoring", "  name: monitoring\n  namespace: default", "cluster-scoped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := byKind[tt.kind]
			if !bytes.Contains(doc, []byte(tt.old)) {
				t.Fatalf("the %s document has no %q to change", tt.kind, tt.old)
			}
			bad := bytes.Replace(doc, []byte(tt.old), []byte(tt.new), 1)
			_, _, err := decode(bad)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("decode of the changed %s: %v, want an error with %q", tt.kind, err, tt.wantErr)
			}
		})
	}
}

// workload is a DaemonSet or Deployment, reduced to what the checks need.
type workload struct {
	kind, namespace, name string
	selector              *metav1.LabelSelector
	template              corev1.PodTemplateSpec
}

func workloads(objs []object) []workload {
	var out []workload
	for _, d := range all[*appsv1.DaemonSet](objs) {
		out = append(out, workload{"DaemonSet", d.Namespace, d.Name, d.Spec.Selector, d.Spec.Template})
	}
	for _, d := range all[*appsv1.Deployment](objs) {
		out = append(out, workload{"Deployment", d.Namespace, d.Name, d.Spec.Selector, d.Spec.Template})
	}
	return out
}

func containerPort(c corev1.Container, name string) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// listenPort returns the port of a container's --listen=host:port argument.
func listenPort(c corev1.Container, flag string) (host string, port int, err error) {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			h, p, err := net.SplitHostPort(v)
			if err != nil {
				return "", 0, err
			}
			n, err := strconv.Atoi(p)
			return h, n, err
		}
	}
	return "", 0, fmt.Errorf("no %s= argument in %q", flag, c.Args)
}

// TestWorkloads checks what every workload must have: a selector that selects
// its own pods, a namespace the manifests create, a service account they
// create, images, resources and probes on ports the container has.
func TestWorkloads(t *testing.T) {
	objs := loadAll(t)
	namespaces := map[string]bool{}
	for _, n := range all[*corev1.Namespace](objs) {
		namespaces[n.Name] = true
	}
	accounts := map[string]bool{}
	for _, a := range all[*corev1.ServiceAccount](objs) {
		accounts[a.Namespace+"/"+a.Name] = true
	}
	for _, o := range objs {
		if !namespaces[o.obj.GetNamespace()] && o.obj.GetNamespace() != "" {
			t.Errorf("%s: namespace %q is not created by the manifests", o, o.obj.GetNamespace())
		}
	}
	ws := workloads(objs)
	if len(ws) != 2 {
		t.Fatalf("%d workloads, want the GPU exporter's DaemonSet and the inference server's Deployment", len(ws))
	}
	for _, w := range ws {
		t.Run(w.kind+"/"+w.name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(w.selector)
			if err != nil || sel.Empty() {
				t.Fatalf("selector %v: %v (empty: it must select)", w.selector, err)
			}
			if !sel.Matches(labels.Set(w.template.Labels)) {
				t.Errorf("selector %s does not match the pod template's labels %v", sel, w.template.Labels)
			}
			spec := w.template.Spec
			if !accounts[w.namespace+"/"+spec.ServiceAccountName] {
				t.Errorf("serviceAccountName %q is not a ServiceAccount of namespace %s in the manifests", spec.ServiceAccountName, w.namespace)
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			// The committed files name the README's placeholder (tag REPLACE-ME); yours, a tag of your build.
			if name, tag, ok := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":"); !ok || name == "" || tag == "" || tag == "latest" {
				t.Errorf("image %q: want a name and an explicit tag other than latest", c.Image)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okReq := c.Resources.Requests[r]
				lim, okLim := c.Resources.Limits[r]
				if !okReq || !okLim || req.Cmp(lim) > 0 {
					t.Errorf("%s: request %v limit %v, want both with request <= limit", r, req.String(), lim.String())
				}
			}
			for what, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s: want an httpGet probe", what)
					continue
				}
				if _, ok := containerPort(c, p.HTTPGet.Port.StrVal); !ok {
					t.Errorf("%s: port %q is not a named port of the container", what, p.HTTPGet.Port.String())
				}
			}
			sc, psc := c.SecurityContext, spec.SecurityContext
			switch {
			case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Error("want readOnlyRootFilesystem: true")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Error("want allowPrivilegeEscalation: false")
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Error("want capabilities: {drop: [ALL]} and none added")
			case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
				t.Error("want the pod to run as a non-root user id")
			}
		})
	}
}

// nodeMatches is the scheduler's test of required node affinity, for the
// operators the manifests use.
func nodeMatches(t *testing.T, a *corev1.Affinity, node map[string]string) bool {
	t.Helper()
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	ops := map[corev1.NodeSelectorOperator]selection.Operator{
		corev1.NodeSelectorOpIn: selection.In, corev1.NodeSelectorOpNotIn: selection.NotIn,
		corev1.NodeSelectorOpExists: selection.Exists, corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		sel := labels.NewSelector()
		for _, e := range term.MatchExpressions {
			op, ok := ops[e.Operator]
			if !ok {
				t.Fatalf("node selector operator %s: not handled by this test", e.Operator)
			}
			r, err := labels.NewRequirement(e.Key, op, e.Values)
			if err != nil {
				t.Fatal(err)
			}
			sel = sel.Add(*r)
		}
		if len(term.MatchFields) > 0 {
			t.Fatal("matchFields: not handled by this test")
		}
		if sel.Matches(labels.Set(node)) {
			return true // terms are ORed
		}
	}
	return false
}

func TestGPUExporterDaemonSet(t *testing.T) {
	objs := loadFile(t, "gpu-exporter.yaml")
	dss := all[*appsv1.DaemonSet](objs)
	pms := all[*monitoringv1.PodMonitor](objs)
	if len(dss) != 1 || len(pms) != 1 {
		t.Fatalf("%d DaemonSets and %d PodMonitors, want one of each", len(dss), len(pms))
	}
	ds, pm := dss[0], pms[0]
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	tests := []struct {
		name  string
		check func() error
	}{
		{"hostPID, for process names", func() error {
			if !spec.HostPID {
				return fmt.Errorf("hostPID is false")
			}
			if !slices.Contains(c.Args, "--process-metrics") {
				return fmt.Errorf("hostPID without --process-metrics: the node's processes are shown for nothing")
			}
			return nil
		}},
		{"NVIDIA runtime class", func() error {
			if spec.RuntimeClassName == nil || *spec.RuntimeClassName != "nvidia" {
				return fmt.Errorf("runtimeClassName %v, want nvidia", spec.RuntimeClassName)
			}
			return nil
		}},
		{"affinity to GPU nodes only", func() error {
			if !nodeMatches(t, spec.Affinity, map[string]string{"nvidia.com/gpu.present": "true", "kubernetes.io/os": "linux"}) {
				return fmt.Errorf("does not schedule on a node labelled nvidia.com/gpu.present=true")
			}
			if nodeMatches(t, spec.Affinity, map[string]string{"kubernetes.io/os": "linux"}) {
				return fmt.Errorf("schedules on a node without nvidia.com/gpu.present=true")
			}
			return nil
		}},
		{"tolerates the GPU taint", func() error {
			taint := &corev1.Taint{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}
			for _, tol := range spec.Tolerations {
				if tol.ToleratesTaint(logr.Discard(), taint, false) {
					return nil
				}
			}
			return fmt.Errorf("no toleration of %v", taint)
		}},
		{"NODE_NAME from spec.nodeName, passed as --hostname", func() error {
			e, ok := env(c, "NODE_NAME")
			if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
				return fmt.Errorf("NODE_NAME is %+v, want valueFrom.fieldRef.fieldPath spec.nodeName", e)
			}
			if !slices.Contains(c.Args, "--hostname=$(NODE_NAME)") {
				return fmt.Errorf("args %q lack --hostname=$(NODE_NAME)", c.Args)
			}
			return nil
		}},
		{"all GPUs visible, none requested", func() error {
			if e, ok := env(c, "NVIDIA_VISIBLE_DEVICES"); !ok || e.Value != "all" {
				return fmt.Errorf("NVIDIA_VISIBLE_DEVICES is %+v, want all", e)
			}
			for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				if _, ok := rl["nvidia.com/gpu"]; ok {
					return fmt.Errorf("asks for nvidia.com/gpu: it would take a GPU from the workloads")
				}
			}
			return nil
		}},
		{"listens on the metrics port of every interface", func() error {
			host, port, err := listenPort(c, "--listen")
			if err != nil {
				return err
			}
			p, ok := containerPort(c, "metrics")
			if !ok || int(p.ContainerPort) != port || port != 9400 || host != "0.0.0.0" {
				return fmt.Errorf("--listen %s:%d, port metrics %+v: want 0.0.0.0:9400 and containerPort 9400", host, port, p)
			}
			return nil
		}},
		{"PodMonitor scrapes the container's port", func() error {
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				if ep.Port == nil {
					return fmt.Errorf("endpoint without a port name")
				}
				if _, ok := containerPort(c, *ep.Port); !ok {
					return fmt.Errorf("PodMonitor port %q is not a container port", *ep.Port)
				}
			}
			return nil
		}},
		{"probes: /metrics, never /healthz", func() error {
			if p := c.ReadinessProbe.HTTPGet.Path; p != "/metrics" {
				return fmt.Errorf("readiness probe path %s, want /metrics", p)
			}
			// /healthz is 503 on a lost GPU: a liveness probe on it restarts the exporter in a loop.
			if p := c.LivenessProbe.HTTPGet.Path; p == "/healthz" || p != "/metrics" {
				return fmt.Errorf("liveness probe path %s, want /metrics", p)
			}
			return nil
		}},
		{"probe timeout outlasts --scrape-timeout", func() error {
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "--scrape-timeout="); ok {
					d, err := parseSeconds(v)
					if err != nil {
						return err
					}
					for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
						if float64(p.TimeoutSeconds) <= d {
							return fmt.Errorf("probe timeout %ds <= --scrape-timeout %s", p.TimeoutSeconds, v)
						}
					}
					return nil
				}
			}
			return fmt.Errorf("no --scrape-timeout")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// parseSeconds parses the "5s" form of a flag.
func parseSeconds(s string) (float64, error) {
	v, ok := strings.CutSuffix(s, "s")
	if !ok {
		return 0, fmt.Errorf("%q: want a number of seconds like 5s", s)
	}
	return strconv.ParseFloat(v, 64)
}

func TestInferenceServerDeployment(t *testing.T) {
	objs := loadFile(t, "inference-server.yaml")
	deps := all[*appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deps))
	}
	c := deps[0].Spec.Template.Spec.Containers[0]
	if _, port, err := listenPort(c, "--listen"); err != nil {
		t.Error(err)
	} else if p, ok := containerPort(c, "http"); !ok || int(p.ContainerPort) != port {
		t.Errorf("--listen port %d, container port http %+v: want the same", port, p)
	}
	for name, want := range map[string]string{
		"OTEL_SERVICE_NAME":           "inference-server",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring.svc.cluster.local:4317",
	} {
		if e, ok := env(c, name); !ok || e.Value != want {
			t.Errorf("%s = %+v, want %q", name, e, want)
		}
	}
	// $(VAR) expands only variables defined earlier in the list.
	defined := map[string]bool{}
	for _, e := range c.Env {
		for _, m := range regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`).FindAllStringSubmatch(e.Value, -1) {
			if !defined[m[1]] {
				t.Errorf("%s refers to $(%s), not defined before it", e.Name, m[1])
			}
		}
		defined[e.Name] = true
	}
	if p := c.ReadinessProbe.HTTPGet.Path; p != "/readyz" {
		t.Errorf("readiness probe %s, want /readyz (503 while loading and draining)", p)
	}
}

// relabelsNode reports whether relabelling configs copy the pod's node name
// into the label `node`.
func relabelsNode(rcs []monitoringv1.RelabelConfig) bool {
	for _, rc := range rcs {
		if slices.Equal(rc.SourceLabels, []monitoringv1.LabelName{"__meta_kubernetes_pod_node_name"}) &&
			rc.TargetLabel == "node" && (rc.Action == "" || strings.EqualFold(rc.Action, "replace")) &&
			(rc.Regex == "" || rc.Regex == "(.*)") && (rc.Replacement == nil || *rc.Replacement == "$1") {
			return true
		}
	}
	return false
}

// inNamespaces reports whether a monitor in namespace own with selector ns
// watches namespace target.
func inNamespaces(own string, ns monitoringv1.NamespaceSelector, target string) bool {
	if ns.Any {
		return true
	}
	if len(ns.MatchNames) == 0 {
		return target == own
	}
	return slices.Contains(ns.MatchNames, target)
}

// TestMonitorsSelectWorkloads checks that every PodMonitor and ServiceMonitor
// selects pods of the manifests, on a port they have, with the job name the
// alert rules expect and the `node` label the fleet's rules and Alertmanager
// key on.
func TestMonitorsSelectWorkloads(t *testing.T) {
	objs := loadAll(t)
	ws := workloads(objs)
	services := all[*corev1.Service](objs)
	// The jobs the rules name: up{job="gpu-exporter"} in gpu.yml, up{job="inference-server"} in serving.yml.
	wantJob := map[string]string{"PodMonitor/gpu-exporter": "gpu-exporter", "ServiceMonitor/inference-server": "inference-server"}
	for _, src := range []struct{ file, job string }{{"gpu.yml", "gpu-exporter"}, {"serving.yml", "inference-server"}} {
		data, err := os.ReadFile(filepath.Join(repoRoot, "examples", "stack", "rules", src.file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`job="`+src.job+`"`)) {
			t.Errorf("%s no longer names job=%q: update this test and the monitors' jobLabel", src.file, src.job)
		}
	}
	release := ""
	for _, r := range all[*monitoringv1.PrometheusRule](objs) {
		release = r.Labels["release"]
	}

	for _, pm := range all[*monitoringv1.PodMonitor](objs) {
		t.Run("PodMonitor/"+pm.Name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Fatalf("selector %v: %v (an empty one scrapes every pod)", pm.Spec.Selector, err)
			}
			var matched []workload
			for _, w := range ws {
				if inNamespaces(pm.Namespace, pm.Spec.NamespaceSelector, w.namespace) && sel.Matches(labels.Set(w.template.Labels)) {
					matched = append(matched, w)
				}
			}
			if len(matched) != 1 {
				t.Fatalf("selects %d workloads, want 1", len(matched))
			}
			w := matched[0]
			if job := w.template.Labels[pm.Spec.JobLabel]; pm.Spec.JobLabel == "" || job != wantJob["PodMonitor/"+pm.Name] {
				t.Errorf("jobLabel %q gives job %q, want %q", pm.Spec.JobLabel, job, wantJob["PodMonitor/"+pm.Name])
			}
			if len(pm.Spec.PodMetricsEndpoints) == 0 {
				t.Fatal("no podMetricsEndpoints")
			}
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				if ep.Port == nil {
					t.Fatal("endpoint without a port name")
				}
				if _, ok := containerPort(w.template.Spec.Containers[0], *ep.Port); !ok {
					t.Errorf("port %q is not a container port of %s/%s", *ep.Port, w.kind, w.name)
				}
				if ep.Path != "/metrics" {
					t.Errorf("path %q, want /metrics", ep.Path)
				}
				if !relabelsNode(ep.RelabelConfigs) {
					t.Error("no relabelling of __meta_kubernetes_pod_node_name to node")
				}
			}
			if pm.Labels["release"] != release || release == "" {
				t.Errorf("label release=%q, want the PrometheusRules' %q", pm.Labels["release"], release)
			}
		})
	}

	for _, sm := range all[*monitoringv1.ServiceMonitor](objs) {
		t.Run("ServiceMonitor/"+sm.Name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Fatalf("selector %v: %v (an empty one scrapes every service)", sm.Spec.Selector, err)
			}
			var matched []*corev1.Service
			for _, s := range services {
				if inNamespaces(sm.Namespace, sm.Spec.NamespaceSelector, s.Namespace) && sel.Matches(labels.Set(s.Labels)) {
					matched = append(matched, s)
				}
			}
			if len(matched) != 1 {
				t.Fatalf("selects %d services, want 1", len(matched))
			}
			svc := matched[0]
			if job := svc.Labels[sm.Spec.JobLabel]; sm.Spec.JobLabel == "" || job != wantJob["ServiceMonitor/"+sm.Name] {
				t.Errorf("jobLabel %q gives job %q, want %q", sm.Spec.JobLabel, job, wantJob["ServiceMonitor/"+sm.Name])
			}
			var backends []workload
			for _, w := range ws {
				if w.namespace == svc.Namespace && len(svc.Spec.Selector) > 0 &&
					labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
					backends = append(backends, w)
				}
			}
			if len(backends) != 1 {
				t.Fatalf("service %s selects %d workloads, want 1", svc.Name, len(backends))
			}
			c := backends[0].template.Spec.Containers[0]
			if len(sm.Spec.Endpoints) == 0 {
				t.Fatal("no endpoints")
			}
			for _, ep := range sm.Spec.Endpoints {
				var sp *corev1.ServicePort
				for i := range svc.Spec.Ports {
					if svc.Spec.Ports[i].Name == ep.Port {
						sp = &svc.Spec.Ports[i]
					}
				}
				if sp == nil {
					t.Fatalf("port %q is not a port of service %s", ep.Port, svc.Name)
				}
				if _, ok := containerPort(c, sp.TargetPort.StrVal); !ok {
					t.Errorf("service port %s targets %q, not a named container port", sp.Name, sp.TargetPort.String())
				}
				if ep.Path != "/metrics" {
					t.Errorf("path %q, want /metrics", ep.Path)
				}
				if !relabelsNode(ep.RelabelConfigs) {
					t.Error("no relabelling of __meta_kubernetes_pod_node_name to node")
				}
			}
			if sm.Labels["release"] != release || release == "" {
				t.Errorf("label release=%q, want the PrometheusRules' %q", sm.Labels["release"], release)
			}
		})
	}
}

// sourceRules reads a rule file the way Prometheus does, without the
// generator: group name to the rules' names and expressions, in order.
func sourceRules(t *testing.T, path string) (groups []string, rules map[string][][2]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert  string `json:"alert"`
				Record string `json:"record"`
				Expr   string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rules = map[string][][2]string{}
	for _, g := range f.Groups {
		groups = append(groups, g.Name)
		for _, r := range g.Rules {
			rules[g.Name] = append(rules[g.Name], [2]string{r.Alert + r.Record, r.Expr})
		}
	}
	return groups, rules
}

func TestPrometheusRuleMatchesSources(t *testing.T) {
	prs := all[*monitoringv1.PrometheusRule](loadFile(t, "prometheusrule.yaml"))
	sources, err := genrules.FindSources(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != len(sources) {
		t.Fatalf("%d PrometheusRules for %d rule files %q", len(prs), len(sources), sources)
	}
	total := 0
	for i, src := range sources {
		pr := prs[i]
		t.Run(src, func(t *testing.T) {
			if got := pr.Annotations[genrules.SourceAnnotation]; got != src {
				t.Errorf("PrometheusRule %s comes from %q, want %q", pr.Name, got, src)
			}
			if pr.Labels["release"] == "" {
				t.Error("no release label: kube-prometheus-stack's default ruleSelector would not load it")
			}
			groups, rules := sourceRules(t, filepath.Join(repoRoot, filepath.FromSlash(src)))
			var gotGroups []string
			for _, g := range pr.Spec.Groups {
				gotGroups = append(gotGroups, g.Name)
				var got [][2]string
				for _, r := range g.Rules {
					got = append(got, [2]string{r.Alert + r.Record, r.Expr.StrVal})
				}
				want := rules[g.Name]
				if len(got) != len(want) {
					t.Errorf("group %s: %d rules, want %d", g.Name, len(got), len(want))
				}
				for j := range min(len(got), len(want)) {
					if got[j] != want[j] {
						t.Errorf("group %s rule %d: %q, want %q", g.Name, j, got[j], want[j])
					}
				}
				total += len(got)
			}
			if !slices.Equal(gotGroups, groups) {
				t.Errorf("groups %q, want %q", gotGroups, groups)
			}
		})
	}
	if total == 0 {
		t.Error("no rules at all")
	}
}

func TestPrometheusRuleUpToDate(t *testing.T) {
	cfg, err := genrules.DefaultConfig(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	want, err := genrules.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Fatalf("prometheusrule.yaml is not what the rule files make now: run `go generate ./...` in deploy/kubernetes.\nline %d: %q\nwant:    %q", i+1, gl, wl)
		}
	}
}
