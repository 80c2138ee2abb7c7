package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/modeltel/modeltel/examples/modeltop/internal/calc"
	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// Scrape reads /metrics endpoints directly. Rates are the growth between two
// successive fetches, quantiles those of the histogram observations made in
// between; the first fetch has neither. Fetch is not safe for concurrent use.
type Scrape struct {
	client  *http.Client
	targets []*target
	now     func() time.Time
}

type target struct {
	url      string
	instance string // host:port, the instance label of its series
	lastOK   time.Time
	prevT    time.Time
	prev     map[string]float64       // counters and histogram counts and sums
	prevH    map[string][]calc.Bucket // histogram buckets
}

// NewScrape returns a source that scrapes urls (a URL with no path gets
// /metrics) with client, whose Timeout bounds each scrape.
func NewScrape(urls []string, client *http.Client) (*Scrape, error) {
	if len(urls) == 0 {
		return nil, errors.New("source: no scrape URL")
	}
	s := &Scrape{client: client, now: time.Now}
	for _, raw := range urls {
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("source: scrape URL %q: %w", raw, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("source: scrape URL %q: want http://host:port[/path]", raw)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/metrics"
		}
		s.targets = append(s.targets, &target{url: u.String(), instance: u.Host})
	}
	return s, nil
}

// Describe implements Source.
func (s *Scrape) Describe() string {
	if len(s.targets) == 1 {
		return "scrape " + s.targets[0].instance
	}
	return fmt.Sprintf("scrape %d targets", len(s.targets))
}

// Fetch implements Source.
func (s *Scrape) Fetch(ctx context.Context) snap.Snapshot {
	fams := make([][]*dto.MetricFamily, len(s.targets))
	errs := make([]error, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		wg.Go(func() { fams[i], errs[i] = s.get(ctx, t.url) })
	}
	wg.Wait()

	now := s.now()
	out := snap.Snapshot{Time: now}
	a := newAccum()
	for i, t := range s.targets {
		st := snap.Status{Source: "scrape " + t.url, LastOK: t.lastOK, Err: errs[i]}
		if errs[i] == nil {
			t.lastOK, st.LastOK = now, now
			t.observe(fams[i], now, a)
		}
		out.Status = append(out.Status, st)
	}
	out.Models, out.GPUs, out.Runs = a.finish()
	return out
}

func (s *Scrape) get(ctx context.Context, u string) ([]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	// The text format: every Prometheus client serves it, and it is the one
	// format whose parser needs nothing negotiated.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return decode(io.LimitReader(resp.Body, 64<<20), expfmt.ResponseFormat(resp.Header))
}

// unwrapURLError drops the "Get URL:" prefix the URL is shown next to.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// decode reads every metric family of an exposition.
func decode(r io.Reader, format expfmt.Format) ([]*dto.MetricFamily, error) {
	dec := expfmt.NewDecoder(r, format)
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("parse: %w", err)
		}
		out = append(out, mf)
	}
}

// accum sums what every target of one fetch saw.
type accum struct {
	models     models
	ttft, tpot map[string][]calc.Bucket
	samples    []sample // GPU and training series
}

func newAccum() *accum {
	return &accum{models: models{}, ttft: map[string][]calc.Bucket{}, tpot: map[string][]calc.Bucket{}}
}

func (a *accum) finish() ([]snap.Model, []snap.GPU, []snap.Run) {
	for name, b := range a.ttft {
		m := a.models.get(name)
		m.TTFT50, m.TTFT99 = calc.Quantile(0.5, b), calc.Quantile(0.99, b)
	}
	for name, b := range a.tpot {
		m := a.models.get(name)
		m.TPOT50, m.TPOT99 = calc.Quantile(0.5, b), calc.Quantile(0.99, b)
	}
	return a.models.sorted(), foldGPUs(a.samples), foldRuns(a.samples)
}

var gpuOrRunGauge = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range append(slices.Clone(gpuNames), runGauges...) {
		m[n] = true
	}
	return m
}()

// observe adds one target's scrape at now to a, and keeps its counters for
// the next.
func (t *target) observe(fams []*dto.MetricFamily, now time.Time, a *accum) {
	dt := 0.0
	if !t.prevT.IsZero() {
		dt = now.Sub(t.prevT).Seconds()
	}
	next := map[string]float64{}
	nextH := map[string][]calc.Bucket{}
	// rate returns the per-second growth of the counter key since the last
	// scrape, NaN on the first.
	rate := func(key string, v float64) float64 {
		next[key] = v
		prev, ok := t.prev[key]
		if !ok {
			return math.NaN()
		}
		return calc.Rate(prev, v, dt)
	}
	delta := func(key string, v float64) float64 {
		next[key] = v
		prev, ok := t.prev[key]
		if !ok || !(dt > 0) {
			return math.NaN()
		}
		return calc.Delta(prev, v)
	}
	bucketsDelta := func(key string, b []calc.Bucket) []calc.Bucket {
		nextH[key] = b
		prev, ok := t.prevH[key]
		if !ok || !(dt > 0) {
			return nil
		}
		return calc.SubBuckets(b, prev)
	}
	type runAcc struct{ sum, count float64 }
	steps := map[[2]string]*runAcc{}

	for _, mf := range fams {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			labels := labelMap(m)
			key := seriesKey(name, m)
			switch name {
			case mDuration:
				md := a.models.get(labels[lModel])
				r := rate(key, histCount(m.GetHistogram()))
				snap.Add(&md.ReqRate, r)
				if !math.IsNaN(r) {
					if labels[lErrorType] != "" {
						snap.Add(&md.ErrRate, r)
					} else {
						snap.Add(&md.ErrRate, 0)
					}
				}
			case mTTFT, mTPOT:
				model := labels[lModel]
				a.models.get(model)
				d := bucketsDelta(key, buckets(m.GetHistogram()))
				if d == nil {
					continue
				}
				if name == mTTFT {
					a.ttft[model] = calc.AddBuckets(a.ttft[model], d)
				} else {
					a.tpot[model] = calc.AddBuckets(a.tpot[model], d)
				}
			case mTokens:
				md := a.models.get(labels[lModel])
				switch labels[lTokenType] {
				case "output":
					snap.Add(&md.OutTPS, rate(key, value(m)))
				case "input":
					snap.Add(&md.InTPS, rate(key, value(m)))
				}
			case mActive:
				snap.Add(&a.models.get(labels[lModel]).Active, value(m))
			case mVLLMWait:
				snap.Add(&a.models.get(labels["model_name"]).Queue, value(m))
			case mStepDur:
				h := m.GetHistogram()
				ds, dc := delta(key+"/sum", h.GetSampleSum()), delta(key+"/count", histCount(h))
				k := [2]string{labels["run"], labels["rank"]}
				if steps[k] == nil {
					steps[k] = &runAcc{sum: math.NaN(), count: math.NaN()}
				}
				snap.Add(&steps[k].sum, ds)
				snap.Add(&steps[k].count, dc)
			case mTrTokens:
				labels[lInstance] = t.instance
				a.samples = append(a.samples, sample{sTrTokRate, labels, rate(key, value(m))})
			default:
				if gpuOrRunGauge[name] {
					labels[lInstance] = t.instance
					a.samples = append(a.samples, sample{name, labels, value(m)})
				}
			}
		}
	}
	for k, s := range steps {
		st := math.NaN()
		if s.count > 0 {
			st = s.sum / s.count
		}
		a.samples = append(a.samples, sample{sStepTime,
			map[string]string{"run": k[0], "rank": k[1], lInstance: t.instance}, st})
	}
	t.prev, t.prevH, t.prevT = next, nextH, now
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel())+1)
	for _, l := range m.GetLabel() {
		if l.GetValue() != "" {
			out[l.GetName()] = l.GetValue()
		}
	}
	return out
}

// seriesKey identifies a series within one target: its name and sorted
// labels.
func seriesKey(name string, m *dto.Metric) string {
	ls := m.GetLabel()
	pairs := make([]string, 0, len(ls))
	for _, l := range ls {
		pairs = append(pairs, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

func histCount(h *dto.Histogram) float64 {
	if h.SampleCountFloat != nil {
		return h.GetSampleCountFloat()
	}
	return float64(h.GetSampleCount())
}

// buckets returns the cumulative classic buckets of h, +Inf included.
func buckets(h *dto.Histogram) []calc.Bucket {
	out := make([]calc.Bucket, 0, len(h.GetBucket())+1)
	hasInf := false
	for _, b := range h.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			c = b.GetCumulativeCountFloat()
		}
		out = append(out, calc.Bucket{UpperBound: b.GetUpperBound(), Count: c})
		hasInf = hasInf || math.IsInf(b.GetUpperBound(), 1)
	}
	if !hasInf {
		out = append(out, calc.Bucket{UpperBound: math.Inf(1), Count: histCount(h)})
	}
	return out
}
