package source

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/modeltel/modeltel/examples/modeltop/internal/fixture"
	"github.com/modeltel/modeltel/inference"
	"github.com/modeltel/modeltel/training"
)

// sdkFamilies gathers what the SDK's inference and training metrics export
// after one good request, one failed request and one step.
func sdkFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	im := inference.NewMetrics()
	tm := training.NewMetrics(training.WithRun("r"), training.WithRank(0), training.WithFLOPs(1e9, 1e15))
	reg.MustRegister(im, tm)
	ctx := context.Background()
	_, rec := im.Start(ctx, inference.Request{Model: "m", Operation: "chat"})
	rec.InputTokens(3)
	rec.OutputTokens(1)
	time.Sleep(time.Millisecond)
	rec.OutputTokens(2)
	rec.End(nil)
	_, bad := im.Start(ctx, inference.Request{Model: "m", Operation: "chat"})
	bad.End(errors.New("boom"))
	_, open := im.Start(ctx, inference.Request{Model: "m", Operation: "chat"})
	defer open.End(nil)
	step := tm.StartStep()
	step.End(training.StepResult{Loss: 2, Tokens: 100})
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func labelNames(f *dto.MetricFamily) []string {
	seen := map[string]bool{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			seen[l.GetName()] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TestNamesAreTheSDKs checks that the names and labels modeltop reads are
// the ones the SDK exports, so that a rename there fails here.
func TestNamesAreTheSDKs(t *testing.T) {
	fams := sdkFamilies(t)
	want := map[string][]string{
		mDuration: {lErrorType, "gen_ai_operation_name", lModel},
		mTTFT:     {"gen_ai_operation_name", lModel},
		mTPOT:     {"gen_ai_operation_name", lModel},
		mTokens:   {"gen_ai_operation_name", lModel, lTokenType},
		mActive:   {"gen_ai_operation_name", lModel},
		mStepDur:  {"rank", "run"},
		mTrTokens: {"rank", "run"},
	}
	for _, n := range runGauges {
		want[n] = []string{"rank", "run"}
	}
	for name, labels := range want {
		f, ok := fams[name]
		if !ok {
			t.Errorf("the SDK exports no %s", name)
			continue
		}
		if got := labelNames(f); !slices.Equal(got, labels) {
			t.Errorf("%s labels = %v, want %v", name, got, labels)
		}
	}
	if f := fams[mTokens]; f != nil {
		var types []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == lTokenType {
					types = append(types, l.GetValue())
				}
			}
		}
		slices.Sort(types)
		if !slices.Equal(types, []string{"input", "output"}) {
			t.Errorf("%s %s values = %v", mTokens, lTokenType, types)
		}
	}
}

// TestFixtureLooksLikeTheSDK checks that every gen_ai_, inference_ and
// training_ family of the fixture has the SDK's type and labels.
func TestFixtureLooksLikeTheSDK(t *testing.T) {
	sdk := sdkFamilies(t)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fix, err := p.TextToMetricFamilies(strings.NewReader(fixture.Node(1, time.Now())))
	if err != nil {
		t.Fatalf("the fixture does not parse: %v", err)
	}
	for name, f := range fix {
		if !strings.HasPrefix(name, "gen_ai_") && !strings.HasPrefix(name, "inference_") && !strings.HasPrefix(name, "training_") {
			continue
		}
		s, ok := sdk[name]
		if !ok {
			t.Errorf("fixture family %s: the SDK has none", name)
			continue
		}
		if f.GetType() != s.GetType() {
			t.Errorf("%s: fixture type %v, SDK %v", name, f.GetType(), s.GetType())
		}
		got, want := labelNames(f), labelNames(s)
		if !slices.Equal(got, want) {
			t.Errorf("%s: fixture labels %v, SDK %v", name, got, want)
		}
	}
}
