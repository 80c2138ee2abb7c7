// Package cowmap is a copy-on-write map for caches that are read on every
// request and written a bounded number of times: reads are one atomic load
// and a map lookup, with no lock; a write copies the map under a mutex.
//
// # Usage
//
// The label children of a metric, resolved once per label set:
//
//	var children cowmap.Map[string, prometheus.Counter]
//
//	c := children.LoadOrCreate(route, func() prometheus.Counter {
//		return vec.WithLabelValues(route)
//	})
//
// A bounded cache, where a key beyond the bound shares the value of an
// "other" key and is not stored under its own name, uses LoadOrAdmit.
package cowmap

import (
	"iter"
	"sync"
	"sync/atomic"
)

// Map is a map from K to V with lock-free reads. Values are created at most
// once per stored key, under the map's lock. The zero Map is empty and ready
// to use; a Map must not be copied after first use. Its methods are safe for
// concurrent use.
type Map[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex // serializes writers, and the admit and create funcs
}

// Load returns the value stored under k, without locking.
func (m *Map[K, V]) Load(k K) (v V, ok bool) {
	if p := m.m.Load(); p != nil {
		v, ok = (*p)[k]
	}
	return v, ok
}

// Len returns the number of keys stored, without locking. Called from an
// admit or create func (the lock is held), it is exact.
func (m *Map[K, V]) Len() int {
	if p := m.m.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// All returns the keys and values stored when it is called, without
// locking: the map it ranges over is never written once published.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		p := m.m.Load()
		if p == nil {
			return
		}
		for k, v := range *p {
			if !yield(k, v) {
				return
			}
		}
	}
}

// LoadOrCreate returns the value stored under k. On a miss it takes the
// lock, looks again, and otherwise stores and returns create(), which runs
// with the lock held (so once per key).
func (m *Map[K, V]) LoadOrCreate(k K, create func() V) V {
	if v, ok := m.Load(k); ok {
		return v
	}
	return m.create(k, create)
}

func (m *Map[K, V]) create(k K, create func() V) V {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.Load(k); ok {
		return v
	}
	v := create()
	m.store(k, v)
	return v
}

// LoadOrAdmit is LoadOrCreate for a bounded map. On a miss it takes the
// lock, looks again, and otherwise calls admit(k), which names the key the
// value lives under: k itself, or a key that stands for it (an "other"
// bucket); ok false means k is refused and LoadOrAdmit returns the zero V
// and false, storing nothing. The value of that key is returned, created by
// create(key) and stored under key only the first time: k itself is stored
// only when admit returned it, so refused and redirected keys cost a locked
// lookup each time but no memory. admit and create run with the lock held,
// so they may update state that only they touch (the counts of a bound)
// without a lock of their own.
func (m *Map[K, V]) LoadOrAdmit(k K, admit func(K) (key K, ok bool), create func(key K) V) (V, bool) {
	if v, ok := m.Load(k); ok {
		return v, true
	}
	return m.admit(k, admit, create)
}

func (m *Map[K, V]) admit(k K, admit func(K) (K, bool), create func(K) V) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.Load(k); ok {
		return v, true
	}
	key, ok := admit(k)
	if !ok {
		var zero V
		return zero, false
	}
	if key != k {
		if v, ok := m.Load(key); ok {
			return v, true
		}
	}
	v := create(key)
	m.store(key, v)
	return v, true
}

// store adds k: v to a copy of the map; the caller holds the lock.
func (m *Map[K, V]) store(k K, v V) {
	var cur map[K]V
	if p := m.m.Load(); p != nil {
		cur = *p
	}
	next := make(map[K]V, len(cur)+1)
	for kk, vv := range cur {
		next[kk] = vv
	}
	next[k] = v
	m.m.Store(&next)
}
