//go:build cgo

package gpumon

import (
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// applicationXIDs are XIDs caused by the application rather than the GPU
// (the list NVIDIA's Kubernetes device plugin ignores); they do not make a
// GPU unhealthy.
var applicationXIDs = map[uint64]bool{13: true, 31: true, 43: true, 45: true, 68: true, 109: true}

// xidWatcher counts XID errors from an NVML event set in a goroutine that
// waits in short EventSetWait calls, so that stop takes effect quickly.
type xidWatcher struct {
	c      *Collector
	counts *prometheus.CounterVec // gpu_xid_errors_total{gpu,uuid,xid}
	set    nvml.EventSet          // nil when no device supports XID events
	quit   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	last     []uint64 // by device: last XID seen (DCGM_FI_DEV_XID_ERRORS)
	critical []uint64 // by device: last XID seen that is not an application one
}

func startXIDWatcher(c *Collector) (w *xidWatcher) {
	w = &xidWatcher{
		c: c,
		counts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpu_xid_errors_total",
			Help: "XID errors reported by the driver (NVML critical XID events), by XID code.",
		}, []string{"gpu", "uuid", "xid"}),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		last:     make([]uint64, len(c.devs)),
		critical: make([]uint64, len(c.devs)),
	}
	var set nvml.EventSet
	// A panic while setting up (a mock without the event funcs, a go-nvml
	// bug) leaves the collector without XID counts, counted as
	// call="panic", instead of failing New.
	defer func() {
		if p := recover(); p != nil {
			c.countError("panic", nvml.ERROR_UNKNOWN)
			if set != nil {
				func() {
					defer func() { _ = recover() }()
					_ = set.Free()
				}()
			}
			w.set = nil
			close(w.done)
		}
	}()
	set, ret := c.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		if ret != nvml.ERROR_NOT_SUPPORTED {
			c.countError("EventSetCreate", ret)
		}
		close(w.done)
		return w
	}
	registered := 0
	for _, d := range c.devs {
		if d.handle == nil {
			continue
		}
		types, ret := d.handle.GetSupportedEventTypes()
		if ret != nvml.SUCCESS {
			if ret != nvml.ERROR_NOT_SUPPORTED {
				c.countError("GetSupportedEventTypes", ret)
			}
			continue
		}
		if types&nvml.EventTypeXidCriticalError == 0 {
			continue
		}
		if ret := d.handle.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret != nvml.SUCCESS {
			if ret != nvml.ERROR_NOT_SUPPORTED {
				c.countError("RegisterEvents", ret)
			}
			continue
		}
		registered++
	}
	if registered == 0 {
		_ = set.Free()
		close(w.done)
		return w
	}
	w.set = set
	go w.run()
	return w
}

func (w *xidWatcher) run() {
	defer close(w.done)
	// A panic here (go-nvml, or a mock) would take the process down: count it
	// and stop watching instead.
	defer func() {
		if p := recover(); p != nil {
			w.c.countError("panic", nvml.ERROR_UNKNOWN)
		}
	}()
	defer w.set.Free()
	ms := uint32(w.c.cfg.xidWait / time.Millisecond)
	for {
		select {
		case <-w.quit:
			return
		default:
		}
		data, ret := w.set.Wait(ms)
		switch ret {
		case nvml.SUCCESS:
			if data.EventType == nvml.EventTypeXidCriticalError {
				w.record(data)
			}
		case nvml.ERROR_TIMEOUT:
		default:
			// A failing wait must not spin: back off for one wait period.
			w.c.countError("EventSetWait", ret)
			select {
			case <-w.quit:
				return
			case <-time.After(w.c.cfg.xidWait):
			}
		}
	}
}

// record counts one XID event against its device.
func (w *xidWatcher) record(data nvml.EventData) {
	i := w.deviceIndex(data.Device)
	if i < 0 {
		w.c.countError("EventSetWait", nvml.ERROR_NOT_FOUND)
		return
	}
	d := w.c.devs[i]
	xid := data.EventData
	w.counts.WithLabelValues(d.idx, d.uuid, strconv.FormatUint(xid, 10)).Inc()
	w.mu.Lock()
	w.last[i] = xid
	if !applicationXIDs[xid] {
		w.critical[i] = xid
	}
	w.mu.Unlock()
}

// deviceIndex finds the device of an event: by handle where handles compare,
// else by UUID. It returns -1 when it cannot tell.
func (w *xidWatcher) deviceIndex(h nvml.Device) int {
	if h == nil {
		return -1
	}
	if reflect.TypeOf(h).Comparable() {
		for i, d := range w.c.devs {
			if d.handle == h {
				return i
			}
		}
	}
	uuid, ret := h.GetUUID()
	if ret != nvml.SUCCESS {
		return -1
	}
	for i, d := range w.c.devs {
		if d.uuid == uuid {
			return i
		}
	}
	return -1
}

// stop ends the watcher; it reports false if the watcher is still inside an
// NVML call when timeout fires.
func (w *xidWatcher) stop(timeout <-chan time.Time) bool {
	close(w.quit)
	select {
	case <-w.done:
		return true
	case <-timeout:
		return false
	}
}

// lastXID is the last XID seen on GPU i, 0 if none.
func (w *xidWatcher) lastXID(i int) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[i]
}

func (w *xidWatcher) criticalXIDs() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uint64(nil), w.critical...)
}
