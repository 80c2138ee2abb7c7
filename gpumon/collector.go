//go:build cgo

package gpumon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// nvmlOptions holds the options that only cgo builds use.
type nvmlOptions struct {
	lib      nvml.Interface
	procRoot string           // "" is /proc
	now      func() time.Time // nil is time.Now; tests set it (withClock)
	dcgmMIG  bool             // DCGM names and a GPU in MIG mode at New: the MIG labels (mig.go)
}

// WithNVML makes New use lib instead of the system's libnvidia-ml. Tests pass
// go-nvml's mock.Interface (or mock/dgxa100); its InitFunc, ShutdownFunc,
// ExtensionsFunc (with LookupSymbolFunc), SystemGetDriverVersionFunc,
// DeviceGetCountFunc, DeviceGetHandleByIndexFunc and EventSetCreateFunc must be
// set, and each device's Funcs for the fields it reads. gpumon/gpusim's
// Sim.NVML gives simulated GPUs that need none of that; a lib with a method
// Simulated() bool that returns true (gpusim's) makes gpu_info carry
// simulated="true". A nil lib keeps the default.
func WithNVML(lib nvml.Interface) Option {
	return optionFunc(func(c *config) { c.lib = lib })
}

var errTimeout = errors.New("gpumon: nvml read timed out")

// errCanceled is what a Healthy call whose context ended before the NVML read
// finished gets from snapshot.
var errCanceled = errors.New("gpumon: canceled")

// Collector is a prometheus.Collector of NVML GPU metrics. It reads device
// identity once, in New, and the changing values at scrape time, each GPU on
// its own reader goroutine (started in New, ended by Close): concurrent scrapes share a GPU's read in progress, a
// read can be cached (WithCacheTTL), and a scrape waits for a GPU's read no
// longer than the scrape timeout, so one hung GPU does not hold up the
// others. A background goroutine counts XID errors from an NVML event set
// until Close; another (sampler.go) samples GPM, PCIe throughput, NVLink and
// MIG instances every WithSampleInterval until Close.
//
// A Collector is safe for concurrent use. The methods of a nil *Collector do
// nothing (Healthy returns an error matching ErrNVMLUnavailable).
type Collector struct {
	lib  nvml.Interface
	cfg  config
	devs []*device
	set  *metricSet

	errors   *prometheus.CounterVec
	timeouts prometheus.Counter
	duration prometheus.Gauge
	xid      *xidWatcher
	procs    *procResolver // nil unless WithProcessMetrics
	sampler  *sampler      // nil when disabled (sampler.go)

	// down is gpu_up 0, by GPU (nil with DCGM names): what a scrape reports
	// for a GPU whose read did not answer in time.
	down []sample

	// work is each device's reader: a goroutine, started in New, that
	// makes the NVML reads of that device one at a time. A read is sent
	// only while the device has none in flight (under mu), so a buffer of
	// one never blocks the sender.
	work []chan *devCall

	mu     sync.Mutex
	closed bool
	last   *snapshot // the last one in which every GPU answered
	// Each device's read in progress is its inflight, and its last read
	// that answered its last, also guarded by mu.

	closeOnce sync.Once
}

// devCall is one NVML read of one GPU, made by the GPU's reader goroutine.
// It holds the result and room for its samples; the reads one scrape starts
// share one readBatch, so that a scrape makes the same few allocations
// however many GPUs and series there are.
type devCall struct {
	start time.Time  // when the read began: a scrape waits for it until start + scrape timeout
	batch *readBatch // the reads started with this one
	fin   atomic.Bool
	took  time.Duration // set, with res and err, before fin
	res   *devResult    // &result; nil when the read panicked
	err   error

	result devResult
	buf    [maxPerDevice]sample
}

// readBatch is the reads one scrape started: done is closed once every one
// of them finished (never, while one hangs: a scrape waiting on it gives up
// at the scrape timeout and looks at each read's fin).
type readBatch struct {
	calls   []devCall
	pending atomic.Int32
	done    chan struct{}
}

func newReadBatch(n int) *readBatch {
	b := &readBatch{calls: make([]devCall, n), done: make(chan struct{})}
	b.pending.Store(int32(n))
	return b
}

// finish publishes call's result (set before) and closes the batch's done
// after its last read.
func (call *devCall) finish() {
	call.fin.Store(true)
	if call.batch.pending.Add(-1) == 0 {
		close(call.batch.done)
	}
}

// New initialises NVML, reads the identity of every GPU (index, UUID, name,
// PCI bus id, driver version), builds the metric descriptors and starts the
// XID watcher. Where NVML cannot be initialised it returns an error matching
// ErrNVMLUnavailable (and the nvml.Return, e.g. nvml.ERROR_LIBRARY_NOT_FOUND)
// and makes no further NVML call. A GPU that cannot be opened is kept with
// gpu_up 0 rather than failing New. The caller registers the Collector and
// calls Close when done.
func New(opts ...Option) (c *Collector, err error) {
	cfg := newConfig(opts)
	lib := cfg.lib
	if lib == nil {
		lib = nvml.New()
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		// Any NVML call after a failed Init can kill the process: return now.
		return nil, fmt.Errorf("%w: init: %w", ErrNVMLUnavailable, ret)
	}
	// A panic while reading the identity (a mock without the func, a
	// go-nvml bug) is New's error, not the caller's crash.
	defer func() {
		if p := recover(); p != nil {
			func() {
				defer func() { _ = recover() }()
				_ = lib.Shutdown()
			}()
			c, err = nil, fmt.Errorf("gpumon: nvml panicked while reading the GPUs: %v", p)
		}
	}()
	c = &Collector{
		lib: lib,
		cfg: cfg,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpumon_collect_errors_total",
			Help: "NVML calls that failed (other than not supported), by call; call=\"timeout\" counts scrapes that gave up waiting for NVML.",
		}, []string{"call"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpumon_collect_duration_seconds",
			Help: "Time the slowest GPU's NVML read in the last scrape took (GPUs are read concurrently; a hung read counts until the scrape gave up on it).",
		}),
	}
	c.timeouts = c.errors.WithLabelValues("timeout")

	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		_ = lib.Shutdown()
		return nil, fmt.Errorf("gpumon: device count: %w", ret)
	}
	driver, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		c.countError("SystemGetDriverVersion", ret)
	}
	hostname := cfg.hostname
	if !cfg.hostnameSet {
		hostname = defaultHostname()
	}
	// Calling a function the driver's library lacks crashes the process:
	// newer calls are used only where the symbol is there.
	ext := lib.Extensions()
	eventReasons := ext.LookupSymbol("nvmlDeviceGetCurrentClocksEventReasons") == nil
	memoryV2 := ext.LookupSymbol("nvmlDeviceGetMemoryInfo_v2") == nil
	if cfg.dcgmNames && cfg.sampleInterval >= 0 {
		cfg.dcgmMIG = anyMIG(lib, count)
		c.cfg.dcgmMIG = cfg.dcgmMIG
	}
	c.set = newMetricSet(cfg, eventReasons, memoryV2, isSimulated(lib))
	if c.set.proc != nil {
		root := cfg.procRoot
		if root == "" {
			root = "/proc"
		}
		c.procs = newProcResolver(root)
		c.set.proc.mps = ext.LookupSymbol("nvmlDeviceGetMPSComputeRunningProcesses") == nil
	}
	for i := range count {
		c.devs = append(c.devs, c.openDevice(i, driver, hostname))
	}
	c.startReaders()
	if c.set.up != nil {
		for _, d := range c.devs {
			c.down = append(c.down, sample{c.set.up, d.base, prometheus.GaugeValue, 0})
		}
	}
	c.sampler = startSampler(c)
	c.xid = startXIDWatcher(c)
	return c, nil
}

// startReaders starts a reader goroutine for each device.
func (c *Collector) startReaders() {
	for i, d := range c.devs {
		w := make(chan *devCall, 1)
		c.work = append(c.work, w)
		go c.reader(i, d, w)
	}
}

// reader makes the reads of device i sent on w until Close closes it. A
// reader hung in NVML keeps its device's read in flight: scrapes join it
// (and time out) rather than start another.
func (c *Collector) reader(i int, d *device, w <-chan *devCall) {
	for call := range w {
		c.runDevice(i, d, call)
	}
}

// defaultHostname is dcgm-exporter's Hostname: $NODE_NAME where set, else
// the host name.
func defaultHostname() string {
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// isSimulated reports whether lib says its GPUs are simulated (gpusim's
// does, with a method Simulated() bool that returns true).
func isSimulated(lib nvml.Interface) bool {
	s, ok := lib.(interface{ Simulated() bool })
	return ok && s.Simulated()
}

// openDevice reads the identity of GPU i once.
func (c *Collector) openDevice(i int, driver, hostname string) *device {
	d := &device{index: i, idx: strconv.Itoa(i)}
	h, ret := c.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		c.countError("DeviceGetHandleByIndex", ret)
	} else {
		d.handle = h
		if d.uuid, ret = h.GetUUID(); ret != nvml.SUCCESS {
			c.countError("GetUUID", ret)
		}
		if ret == nvml.ERROR_GPU_IS_LOST {
			d.handle = nil
		}
	}
	if d.handle != nil {
		if d.name, ret = d.handle.GetName(); ret != nvml.SUCCESS {
			c.countError("GetName", ret)
		}
		if pci, ret := d.handle.GetPciInfo(); ret == nvml.SUCCESS {
			d.busID = busID(pci.BusId)
		} else {
			c.countError("GetPciInfo", ret)
		}
	}
	c.set.labelDevice(d, driver, hostname)
	return d
}

// busID converts NVML's NUL-terminated C string.
func busID(b [32]int8) string {
	buf := make([]byte, 0, len(b))
	for _, v := range b {
		if v == 0 {
			break
		}
		buf = append(buf, byte(v))
	}
	return string(buf)
}

func (c *Collector) countError(call string, ret nvml.Return) {
	_ = ret
	c.errors.WithLabelValues(call).Inc()
}

// Describe sends the descriptor of every metric the Collector can emit. It is
// safe for concurrent use.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	if c == nil {
		return
	}
	c.set.describe(ch)
	if c.set.xidCounter {
		c.xid.counts.Describe(ch)
	}
	c.sampler.describe(ch)
	c.errors.Describe(ch)
	ch <- c.duration.Desc()
}

// Collect sends the GPU metrics of the current (shared or cached) NVML reads,
// plus gpu_info, the XID counters and the self-metrics. For a GPU whose read
// exceeds the scrape timeout (or panicked) it sends gpu_up 0 instead of the
// read's values: the GPU did not answer this scrape, and values from an
// earlier read are not passed off as current; the other GPUs are unaffected.
// After Close it sends only the self-metrics. It is safe for concurrent use.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c == nil {
		return
	}
	snap, err := c.snapshot(nil)
	if !errors.Is(err, errClosed) {
		for _, d := range c.devs {
			if d.info != nil {
				ch <- d.info
			}
		}
		for i, res := range snap.devs {
			if res == nil {
				if c.down != nil {
					ch <- &c.down[i]
				}
				continue
			}
			for k := range res.samples {
				ch <- &res.samples[k]
			}
			for _, m := range res.extra {
				ch <- m
			}
			c.sampler.collectDevice(i, ch)
		}
		if c.set.xidCounter {
			c.xid.counts.Collect(ch)
		}
		c.sampler.collectSelf(ch)
	}
	c.errors.Collect(ch)
	ch <- c.duration
}

// snapshot returns each GPU's values from a fresh, shared or cached NVML
// read. A GPU with no read in progress gets a new one, on its reader;
// one whose read is in progress (perhaps hung in the driver) is joined, never
// read twice at once. A GPU whose read does not finish within the scrape
// timeout of its start is left out (errTimeout in snap.errs), and the scrape
// counts one timeout and returns errTimeout with the others' values. If
// cancel is closed first it returns errCanceled and counts nothing. Reads go
// on in the background and later calls join them.
func (c *Collector) snapshot(cancel <-chan struct{}) (*snapshot, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	if ttl := c.cfg.cacheTTL; ttl > 0 && c.last != nil && time.Since(c.last.at) < ttl {
		s := c.last
		c.mu.Unlock()
		return s, nil
	}
	now := time.Now()
	calls := make([]*devCall, len(c.devs))
	fresh := 0 // the devices whose read this scrape starts
	for i, d := range c.devs {
		// A GPU that answered within the TTL keeps its read even when
		// another GPU's hangs (and so c.last is not renewed).
		if ttl := c.cfg.cacheTTL; ttl > 0 && d.last != nil && now.Sub(d.last.start) < ttl {
			calls[i] = d.last
			continue
		}
		if d.inflight != nil {
			calls[i] = d.inflight
			continue
		}
		fresh++
	}
	if fresh > 0 {
		batch := newReadBatch(fresh)
		k := 0
		for i, d := range c.devs {
			if calls[i] != nil {
				continue
			}
			call := &batch.calls[k]
			k++
			call.start, call.batch = now, batch
			d.inflight = call
			calls[i] = call
			c.work[i] <- call // never blocks: see Collector.work
		}
	}
	c.mu.Unlock()

	snap := &snapshot{at: now, devs: make([]*devResult, len(calls))}
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
			timers.Put(t)
		}
	}()
	var timedOut bool
	var took time.Duration
	for i, call := range calls {
		snap.at = minTime(snap.at, call.start)
		// The timeout runs from the start of the GPU's read, not of this
		// wait: a scrape that joins a read already hung past the timeout
		// gives up on it at once instead of waiting a full timeout more.
		done := call.fin.Load()
		if !done {
			if left := c.cfg.scrapeTimeout - time.Since(call.start); left > 0 {
				if t == nil {
					t = timers.Get().(*time.Timer)
				}
				t.Reset(left)
				select {
				case <-call.batch.done:
					done = true
				case <-cancel:
					if !call.fin.Load() {
						return nil, errCanceled // the caller gave up: no NVML timeout to count
					}
					done = true
				case <-t.C:
					done = call.fin.Load()
				}
				t.Stop()
			}
		}
		if !done {
			timedOut = true
			took = max(took, time.Since(call.start))
			snap.setErr(i, len(calls), errTimeout)
			continue
		}
		took = max(took, call.took)
		if call.res == nil {
			snap.setErr(i, len(calls), call.err)
			continue
		}
		snap.devs[i] = call.res
	}
	c.duration.Set(took.Seconds())
	if timedOut {
		c.timeouts.Inc()
		return snap, errTimeout
	}
	if snap.errs == nil {
		c.mu.Lock()
		if c.last == nil || c.last.at.Before(snap.at) {
			c.last = snap
		}
		c.mu.Unlock()
	}
	return snap, nil
}

func (s *snapshot) setErr(i, n int, err error) {
	if s.errs == nil {
		s.errs = make([]error, n)
	}
	s.errs[i] = err
}

// timers are the scrape timeout timers of snapshot, stopped; reused so
// that a scrape allocates none.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// runDevice performs one NVML read of GPU i and publishes it. It runs on its
// own goroutine, where nothing else would recover a panic from go-nvml (or
// from a mock that lacks a func): a panic is counted as call="panic", fails
// this read of this GPU (gpu_up 0) and leaves later reads free to start.
func (c *Collector) runDevice(i int, d *device, call *devCall) {
	defer func() {
		if p := recover(); p != nil {
			c.countError("panic", nvml.ERROR_UNKNOWN)
			call.res, call.err = nil, fmt.Errorf("gpumon: nvml read panicked: %v", p)
		}
		call.took = time.Since(call.start)
		c.mu.Lock()
		d.inflight = nil
		if call.res != nil {
			d.last = call
		}
		c.mu.Unlock()
		call.finish()
	}()
	call.result.samples = call.buf[:0]
	c.readDevice(i, d, &call.result)
	call.res = &call.result
}

// Healthy reports whether every GPU is fit to serve: it returns an error
// wrapping ErrUnhealthy, naming the GPU, when a GPU is lost (or could not be
// opened), has uncorrected ECC errors since the driver loaded, reports a
// failed row remapping (no spare memory row was left), or has had a
// critical XID error (any XID but the application ones 13, 31, 43, 45, 68,
// 109) since New. It uses the same shared NVML read as scrapes, bounded by ctx
// and the scrape timeout. After Close it returns an error. It is safe for
// concurrent use; a nil Collector returns an error matching ErrNVMLUnavailable.
func (c *Collector) Healthy(ctx context.Context) error {
	if c == nil {
		return fmt.Errorf("gpumon: health: %w", ErrNVMLUnavailable)
	}
	snap, err := c.snapshot(ctx.Done())
	if errors.Is(err, errCanceled) {
		return fmt.Errorf("gpumon: health: %w", context.Cause(ctx))
	}
	if errors.Is(err, errClosed) {
		return fmt.Errorf("gpumon: health: %w", err)
	}
	critical := c.xid.criticalXIDs()
	var errs []error
	for i, d := range c.devs {
		res := snap.devs[i]
		if res == nil {
			errs = append(errs, fmt.Errorf("gpumon: health: gpu %d (%s): %w", d.index, d.uuid, snap.errs[i]))
			continue
		}
		h := res.health
		switch {
		case h.lost:
			errs = append(errs, fmt.Errorf("%w: gpu %d (%s): lost", ErrUnhealthy, d.index, d.uuid))
		case h.uncorrected > 0:
			errs = append(errs, fmt.Errorf("%w: gpu %d (%s): %d uncorrected ECC errors", ErrUnhealthy, d.index, d.uuid, h.uncorrected))
		}
		if h.remapFailed {
			errs = append(errs, fmt.Errorf("%w: gpu %d (%s): row remapping failed", ErrUnhealthy, d.index, d.uuid))
		}
		if x := critical[i]; x != 0 {
			errs = append(errs, fmt.Errorf("%w: gpu %d (%s): critical XID %d", ErrUnhealthy, d.index, d.uuid, x))
		}
	}
	return errors.Join(errs...)
}

// Close stops the background sampler and the XID watcher, waits for an NVML
// read in progress, and shuts NVML down, once; later calls return nil. If an
// NVML call is still hung after the scrape timeout it leaves NVML
// initialised (shutting it down under a running call is unsafe) and returns
// an error. After Close, Collect sends
// only the self-metrics. A nil Collector returns nil.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	var err error
	c.closeOnce.Do(func() { err = c.close() })
	return err
}

func (c *Collector) close() error {
	c.mu.Lock()
	c.closed = true
	var calls []*devCall
	for _, d := range c.devs {
		if d.inflight != nil {
			calls = append(calls, d.inflight)
		}
	}
	c.mu.Unlock()
	// No read is sent once closed is set: the readers end (a hung one
	// when its NVML call returns).
	for _, w := range c.work {
		close(w)
	}
	wait := time.NewTimer(c.cfg.scrapeTimeout + 4*c.cfg.xidWait)
	defer wait.Stop()
	if !c.sampler.halt(wait.C) {
		return errors.New("gpumon: close: sampler still in an NVML call; nvml left initialised")
	}
	if !c.xid.stop(wait.C) {
		return errors.New("gpumon: close: xid watcher still in EventSetWait; nvml left initialised")
	}
	for _, call := range calls {
		if call.fin.Load() {
			continue
		}
		select {
		case <-call.batch.done:
		case <-wait.C:
			return errors.New("gpumon: close: nvml read still running; nvml left initialised")
		}
	}
	if ret := c.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("gpumon: shutdown nvml: %w", ret)
	}
	return nil
}
