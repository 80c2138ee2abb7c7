package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// Prometheus reads a Prometheus-compatible HTTP API (Prometheus, Thanos,
// VictoriaMetrics, Mimir...): every instance it scrapes, so a fleet. Models
// are summed over instances, GPUs keyed by instance and gpu, training runs by
// run, rank and instance. Fetch is not safe for concurrent use.
type Prometheus struct {
	url    string
	api    v1.API
	window string // PromQL range of rate() and friends
	now    func() time.Time
	lastOK time.Time
}

// NewPrometheus returns a source that queries the Prometheus HTTP API at
// address through client, with rates over window.
func NewPrometheus(address string, window time.Duration, client *http.Client) (*Prometheus, error) {
	if !strings.Contains(address, "://") {
		address = "http://" + address
	}
	c, err := api.NewClient(api.Config{Address: address, Client: client})
	if err != nil {
		return nil, fmt.Errorf("source: prometheus %q: %w", address, err)
	}
	if window < time.Second {
		return nil, fmt.Errorf("source: rate window %v: want at least 1s", window)
	}
	return &Prometheus{url: address, api: v1.NewAPI(c), window: model.Duration(window).String(), now: time.Now}, nil
}

// Describe implements Source.
func (p *Prometheus) Describe() string { return "prometheus " + p.url }

// modelQuery is one PromQL query whose result, by model, sets a field.
type modelQuery struct {
	q   string
	set func(*snap.Model, float64)
}

func (p *Prometheus) modelQueries() []modelQuery {
	w := p.window
	by := "sum by (" + lModel + ") "
	quantile := func(q float64, name string) string {
		// Classic buckets, or native histograms where there are no
		// classic ones.
		return fmt.Sprintf("histogram_quantile(%v, sum by (%s, le) (rate(%s_bucket[%s]))) or histogram_quantile(%v, sum by (%s) (rate(%s[%s])))",
			q, lModel, name, w, q, lModel, name, w)
	}
	return []modelQuery{
		{by + "(rate(" + mDuration + "_count[" + w + "]))", func(m *snap.Model, v float64) { m.ReqRate = v }},
		// Every model with traffic gets an error rate, 0 when none failed.
		{by + "(rate(" + mDuration + `_count{error_type!=""}[` + w + "])) or " + by + "(rate(" + mDuration + "_count[" + w + "])) * 0",
			func(m *snap.Model, v float64) { m.ErrRate = v }},
		{quantile(0.5, mTTFT), func(m *snap.Model, v float64) { m.TTFT50 = v }},
		{quantile(0.99, mTTFT), func(m *snap.Model, v float64) { m.TTFT99 = v }},
		{quantile(0.5, mTPOT), func(m *snap.Model, v float64) { m.TPOT50 = v }},
		{quantile(0.99, mTPOT), func(m *snap.Model, v float64) { m.TPOT99 = v }},
		{by + "(rate(" + mTokens + `{gen_ai_token_type="output"}[` + w + "]))", func(m *snap.Model, v float64) { m.OutTPS = v }},
		{by + "(rate(" + mTokens + `{gen_ai_token_type="input"}[` + w + "]))", func(m *snap.Model, v float64) { m.InTPS = v }},
		{by + "(" + mActive + ")", func(m *snap.Model, v float64) { m.Active = v }},
		{`label_replace(sum by (model_name) (` + mVLLMWait + `), "` + lModel + `", "$1", "model_name", "(.*)")`,
			func(m *snap.Model, v float64) { m.Queue = v }},
	}
}

// seriesQueries return series whose samples are folded as they come (GPU and
// training gauges, and the training rates under synthetic names).
func (p *Prometheus) seriesQueries() []struct{ q, name string } {
	w := p.window
	by := "sum by (instance, run, rank) "
	return []struct{ q, name string }{
		{`{__name__=~"` + strings.Join(gpuNames, "|") + `"}`, ""},
		{`{__name__=~"` + strings.Join(runGauges, "|") + `"}`, ""},
		{by + "(rate(" + mStepDur + "_sum[" + w + "])) / " + by + "(rate(" + mStepDur + "_count[" + w + "]))", sStepTime},
		{by + "(rate(" + mTrTokens + "[" + w + "]))", sTrTokRate},
	}
}

// Fetch implements Source.
func (p *Prometheus) Fetch(ctx context.Context) snap.Snapshot {
	now := p.now()
	mq, sq := p.modelQueries(), p.seriesQueries()
	results := make([]model.Vector, len(mq)+len(sq))
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	query := func(i int, q string) {
		v, _, _, err := p.api.Query(ctx, q, now)
		if err != nil {
			errs[i] = fmt.Errorf("query %s: %w", q, err)
			return
		}
		vec, ok := v.(model.Vector)
		if !ok {
			errs[i] = fmt.Errorf("query %s: got a %s, want a vector", q, v.Type())
			return
		}
		results[i] = vec
	}
	for i, q := range mq {
		wg.Go(func() { query(i, q.q) })
	}
	for i, q := range sq {
		wg.Go(func() { query(len(mq)+i, q.q) })
	}
	wg.Wait()

	out := snap.Snapshot{Time: now}
	st := snap.Status{Source: p.Describe(), LastOK: p.lastOK}
	failed := 0
	var firstErr error
	for _, err := range errs {
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if failed == len(errs) {
		st.Err = shortError(firstErr)
		out.Status = []snap.Status{st}
		return out
	}
	if failed > 0 {
		st.Warn = fmt.Errorf("%d of %d queries failed: %w", failed, len(errs), firstErr)
	}
	p.lastOK, st.LastOK = now, now
	out.Status = []snap.Status{st}

	ms := models{}
	for i, q := range mq {
		for _, s := range results[i] {
			name := string(s.Metric[lModel])
			q.set(ms.get(name), float64(s.Value))
		}
	}
	var samples []sample
	for i, q := range sq {
		for _, s := range results[len(mq)+i] {
			name := q.name
			if name == "" {
				name = string(s.Metric[model.MetricNameLabel])
			}
			labels := make(map[string]string, len(s.Metric))
			for k, v := range s.Metric {
				labels[string(k)] = string(v)
			}
			samples = append(samples, sample{name, labels, float64(s.Value)})
		}
	}
	out.Models, out.GPUs, out.Runs = ms.sorted(), foldGPUs(samples), foldRuns(samples)
	return out
}

// shortError keeps what says why a query failed (connection refused, HTTP
// status) and drops the query and URL, shown elsewhere.
func shortError(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		var ae *v1.Error
		if errors.As(e, &ae) {
			return fmt.Errorf("%s: %s", ae.Type, ae.Msg)
		}
	}
	return unwrapURLError(errors.Unwrap(err))
}
