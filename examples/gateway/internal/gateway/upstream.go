package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/examples/internal/openai"
)

// upstream is one OpenAI-compatible server the gateway forwards to.
type upstream struct {
	name string // the upstream label: host:port of its URL
	url  *url.URL
	up   atomic.Bool

	mu     sync.Mutex
	models []openai.Model // as of the last successful refresh

	// Label children, resolved once.
	upGauge, modelsGauge prometheus.Gauge
	active               prometheus.Gauge
	requests             prometheus.Counter
	duration, headers    prometheus.Observer
	errs                 [numErrTypes]prometheus.Counter
}

// Error types of gateway_upstream_errors_total.
const (
	errConnect   = iota // the connection could not be made
	errTimeout          // no response headers in time (or a body read timed out)
	errTransport        // any other failure before the response headers
	errAborted          // the upstream's body ended early (a cut stream)
	errStatus5xx        // the upstream answered 5xx
	numErrTypes
)

var errTypeNames = [numErrTypes]string{"connect", "timeout", "transport", "aborted", "status_5xx"}

// parseUpstream checks an --upstream URL: http or https with a host.
func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway: upstream %q: want http://host:port or https://host:port", raw)
	}
	// A base URL ending in /v1 is the OpenAI SDKs' habit: the gateway adds
	// the /v1 of the request itself.
	u.Path = strings.TrimSuffix(u.Path, "/v1")
	return u, nil
}

// refresh asks the upstream for its models; an upstream that does not
// answer 200 with a model list in time is marked down (its last models are
// kept, so that a request for them gets "unavailable", not "unknown").
func (u *upstream) refresh(ctx context.Context, client *http.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := u.fetch(ctx, client)
	u.setUp(err == nil)
	return err
}

func (u *upstream) fetch(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url.String()+"/v1/models", nil)
	if err != nil {
		return fmt.Errorf("gateway: %s: %w", u.name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("gateway: %s: list models: %w", u.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("gateway: %s: list models: status %d", u.name, resp.StatusCode)
	}
	var list openai.ModelList
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&list); err != nil {
		return fmt.Errorf("gateway: %s: list models: %w", u.name, err)
	}
	models := list.Data[:0]
	for _, m := range list.Data {
		if m.ID != "" {
			models = append(models, m)
		}
	}
	u.mu.Lock()
	u.models = models
	u.mu.Unlock()
	u.modelsGauge.Set(float64(len(models)))
	return nil
}

func (u *upstream) setUp(up bool) {
	u.up.Store(up)
	if up {
		u.upGauge.Set(1)
	} else {
		u.upGauge.Set(0)
	}
}

func (u *upstream) modelList() []openai.Model {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.models)
}

// catalog is the union of the upstreams' models: what /v1/models lists and
// requests are routed by. It is replaced whole after each refresh.
type catalog struct {
	list   []openai.Model         // sorted by id
	routes map[string]*modelRoute // by id
}

// modelRoute is the upstreams that serve one model, tried round robin
// among those up.
type modelRoute struct {
	ups  []*upstream
	next atomic.Uint32
}

func buildCatalog(ups []*upstream) *catalog {
	c := &catalog{routes: map[string]*modelRoute{}}
	for _, u := range ups {
		for _, m := range u.modelList() {
			r := c.routes[m.ID]
			if r == nil {
				r = &modelRoute{}
				c.routes[m.ID] = r
				if m.Object == "" {
					m.Object = "model"
				}
				c.list = append(c.list, m)
			}
			r.ups = append(r.ups, u)
		}
	}
	slices.SortFunc(c.list, func(a, b openai.Model) int { return strings.Compare(a.ID, b.ID) })
	return c
}

// pick returns an upstream that is up for the route, nil when none is.
func (r *modelRoute) pick() *upstream {
	n := len(r.ups)
	start := int(r.next.Add(1))
	for i := range n {
		if u := r.ups[(start+i)%n]; u.up.Load() {
			return u
		}
	}
	return nil
}
