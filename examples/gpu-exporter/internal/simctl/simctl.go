//go:build cgo

package simctl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modeltel/modeltel/gpumon/gpusim"
)

// Pattern is a load over time for each GPU: the value of GPU gpu at time t
// since the start, within [0, 1].
type Pattern func(gpu int, t time.Duration) float64

// ParsePattern reads --simulate-load: "" (none: the GPUs stay idle until
// told otherwise), a constant ("0.6"), or a sine wave "sine:MIN:MAX:PERIOD"
// ("sine:0.2:0.9:60s") whose phase moves by 1/8 period from one GPU to the
// next, so that the GPUs differ.
func ParsePattern(spec string) (Pattern, error) {
	if spec == "" {
		return nil, nil
	}
	if v, err := strconv.ParseFloat(spec, 64); err == nil {
		if !(v >= 0 && v <= 1) {
			return nil, fmt.Errorf("simulate-load %q: want a load from 0 to 1", spec)
		}
		return func(int, time.Duration) float64 { return v }, nil
	}
	parts := strings.Split(spec, ":")
	if len(parts) != 4 || parts[0] != "sine" {
		return nil, fmt.Errorf("simulate-load %q: want a load from 0 to 1 or sine:MIN:MAX:PERIOD (e.g. sine:0.2:0.9:60s)", spec)
	}
	lo, err1 := strconv.ParseFloat(parts[1], 64)
	hi, err2 := strconv.ParseFloat(parts[2], 64)
	period, err3 := time.ParseDuration(parts[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("simulate-load %q: %w", spec, err)
	}
	if !(lo >= 0 && lo <= hi && hi <= 1) || period <= 0 {
		return nil, fmt.Errorf("simulate-load %q: want 0 <= MIN <= MAX <= 1 and a PERIOD above 0", spec)
	}
	return func(gpu int, t time.Duration) float64 {
		phase := 2*math.Pi*t.Seconds()/period.Seconds() + float64(gpu)*math.Pi/4
		return lo + (hi-lo)*(1+math.Sin(phase))/2
	}, nil
}

// Controller drives a Sim: the control API, and the load pattern for the
// GPUs whose load the API has not set.
type Controller struct {
	sim     *gpusim.Sim
	pattern Pattern

	mu     sync.Mutex
	pinned []bool // the API set this GPU's load: the pattern leaves it alone
}

// New returns a Controller of sim; pattern may be nil.
func New(sim *gpusim.Sim, pattern Pattern) *Controller {
	return &Controller{sim: sim, pattern: pattern, pinned: make([]bool, sim.GPUs())}
}

// Run applies the pattern every interval until ctx ends (at once if there is
// no pattern).
func (c *Controller) Run(ctx context.Context, interval time.Duration) {
	if c.pattern == nil {
		return
	}
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.Apply(time.Since(start))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Apply sets the pattern's load at time t on every GPU not pinned by the API.
func (c *Controller) Apply(t time.Duration) {
	if c.pattern == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for gpu, pinned := range c.pinned {
		if !pinned {
			_ = c.sim.SetLoad(gpu, min(max(c.pattern(gpu, t), 0), 1))
		}
	}
}

// Register adds the control API to mux.
func (c *Controller) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /simulate/load", c.load)
	mux.HandleFunc("POST /simulate/fault", c.fault)
	mux.HandleFunc("POST /simulate/clear", c.clear)
}

// gpu reads the gpu parameter: AllGPUs when absent.
func (c *Controller) gpu(r *http.Request) (int, string, error) {
	s := r.URL.Query().Get("gpu")
	if s == "" {
		return gpusim.AllGPUs, "every GPU", nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= c.sim.GPUs() {
		return 0, "", fmt.Errorf("gpu %q: want a GPU index from 0 to %d, or no gpu for every GPU", s, c.sim.GPUs()-1)
	}
	return n, "gpu " + s, nil
}

func (c *Controller) load(w http.ResponseWriter, r *http.Request) {
	gpu, which, err := c.gpu(r)
	if err != nil {
		bad(w, err)
		return
	}
	s := r.URL.Query().Get("value")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v <= 1) {
		bad(w, fmt.Errorf("value %q: want a load from 0 to 1", s))
		return
	}
	c.mu.Lock()
	err = c.sim.SetLoad(gpu, v)
	if err == nil {
		for i := range c.pinned {
			if gpu == gpusim.AllGPUs || gpu == i {
				c.pinned[i] = true
			}
		}
	}
	c.mu.Unlock()
	if err != nil {
		bad(w, err)
		return
	}
	done(w, "load %v on %s", v, which)
}

func (c *Controller) fault(w http.ResponseWriter, r *http.Request) {
	gpu, which, err := c.gpu(r)
	if err != nil {
		bad(w, err)
		return
	}
	q := r.URL.Query()
	switch typ := q.Get("type"); typ {
	case "xid":
		code, err := strconv.ParseUint(q.Get("code"), 10, 64)
		if err != nil || code == 0 || code > 999 {
			bad(w, fmt.Errorf("code %q: type=xid wants an XID code from 1 to 999 (e.g. code=79)", q.Get("code")))
			return
		}
		err = c.sim.InjectXID(gpu, code)
		c.answer(w, err, "XID %d on %s", code, which)
	case "nvlink":
		link, err := strconv.Atoi(q.Get("link"))
		if err != nil || link < 0 {
			bad(w, fmt.Errorf("link %q: type=nvlink wants a link number (e.g. link=0)", q.Get("link")))
			return
		}
		n := uint64(1)
		if v := q.Get("count"); v != "" {
			if n, err = strconv.ParseUint(v, 10, 64); err != nil || n == 0 {
				bad(w, fmt.Errorf("count %q: type=nvlink wants a count of errors above 0", v))
				return
			}
		}
		c.answer(w, c.sim.InjectNVLinkErrors(gpu, link, n), "%d NVLink CRC errors on link %d of %s", n, link, which)
	case "fall-off-bus":
		c.answer(w, c.sim.FallOffBus(gpu), "%s fell off the bus", which)
	case "hang":
		c.answer(w, c.sim.Hang(gpu), "NVML calls on %s hang", which)
	default:
		bad(w, fmt.Errorf("type %q: want xid, nvlink, fall-off-bus or hang", typ))
	}
}

func (c *Controller) clear(w http.ResponseWriter, r *http.Request) {
	gpu, which, err := c.gpu(r)
	if err != nil {
		bad(w, err)
		return
	}
	c.answer(w, c.sim.Clear(gpu), "faults of %s cleared", which)
}

func (c *Controller) answer(w http.ResponseWriter, err error, format string, args ...any) {
	if err != nil {
		bad(w, err)
		return
	}
	done(w, format, args...)
}

func bad(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "simulate: %v\n", err)
}

func done(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "ok: "+format+"\n", args...)
}
