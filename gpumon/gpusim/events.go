//go:build cgo

package gpusim

import (
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// eventQueue is how many events an event set holds before it drops new ones.
const eventQueue = 256

// eventSet is an nvml.EventSet: Wait returns the events the GPUs registered
// with it post, in order.
type eventSet struct {
	ch   chan nvml.EventData
	done chan struct{} // closed by Free

	once sync.Once
}

func newEventSet() *eventSet {
	return &eventSet{ch: make(chan nvml.EventData, eventQueue), done: make(chan struct{})}
}

// Wait returns the next event, or ERROR_TIMEOUT after ms milliseconds (of
// real time, whatever the Sim's clock), or ERROR_UNINITIALIZED once freed.
func (e *eventSet) Wait(ms uint32) (nvml.EventData, nvml.Return) {
	select {
	case ev := <-e.ch:
		return ev, nvml.SUCCESS
	case <-e.done:
		return nvml.EventData{}, nvml.ERROR_UNINITIALIZED
	default:
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case ev := <-e.ch:
		return ev, nvml.SUCCESS
	case <-e.done:
		return nvml.EventData{}, nvml.ERROR_UNINITIALIZED
	case <-t.C:
		return nvml.EventData{}, nvml.ERROR_TIMEOUT
	}
}

// Free releases the set; a second Free answers ERROR_UNINITIALIZED.
func (e *eventSet) Free() nvml.Return {
	ret := nvml.ERROR_UNINITIALIZED
	e.once.Do(func() {
		close(e.done)
		ret = nvml.SUCCESS
	})
	return ret
}

// post queues ev unless the set is freed or full.
func (e *eventSet) post(ev nvml.EventData) {
	select {
	case <-e.done:
		return
	default:
	}
	select {
	case e.ch <- ev:
	default: // full: dropped, as NVML drops events nobody waits for
	}
}

func (e *eventSet) freed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}
