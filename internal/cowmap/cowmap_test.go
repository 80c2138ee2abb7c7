package cowmap

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	var m Map[string, int]
	if _, ok := m.Load("a"); ok || m.Len() != 0 {
		t.Fatal("zero Map not empty")
	}
	calls := 0
	create := func(v int) func() int { return func() int { calls++; return v } }
	tests := []struct {
		key       string
		v, want   int
		wantCalls int
		wantLen   int
	}{
		{"a", 1, 1, 1, 1},
		{"a", 2, 1, 1, 1}, // stored: create not called again
		{"b", 3, 3, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.key+strconv.Itoa(tt.v), func(t *testing.T) {
			if got := m.LoadOrCreate(tt.key, create(tt.v)); got != tt.want {
				t.Errorf("LoadOrCreate = %d, want %d", got, tt.want)
			}
			if calls != tt.wantCalls || m.Len() != tt.wantLen {
				t.Errorf("calls %d len %d, want %d %d", calls, m.Len(), tt.wantCalls, tt.wantLen)
			}
			if v, ok := m.Load(tt.key); !ok || v != tt.want {
				t.Errorf("Load = %d, %v", v, ok)
			}
		})
	}
}

// A bound of two names; the rest go to "other" or, with refuse, are refused.
func TestLoadOrAdmit(t *testing.T) {
	tests := []struct {
		name   string
		refuse bool
		keys   []string
		want   []string // values returned ("" with ok false)
		stored []string // keys stored, in any order
		create int      // create calls
	}{
		{"under the bound", false, []string{"a", "b", "a"}, []string{"a", "b", "a"}, []string{"a", "b"}, 2},
		{"beyond: other, created once, names not stored", false,
			[]string{"a", "b", "c", "d", "c", "a"}, []string{"a", "b", "other", "other", "other", "a"},
			[]string{"a", "b", "other"}, 3},
		{"beyond: refused, nothing stored", true,
			[]string{"a", "b", "c", "c", "b"}, []string{"a", "b", "", "", "b"}, []string{"a", "b"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Map[string, string]
			admitted := map[string]bool{} // guarded by m's lock
			creates := 0
			admit := func(k string) (string, bool) {
				if admitted[k] {
					return k, true
				}
				if len(admitted) >= 2 {
					return "other", !tt.refuse
				}
				admitted[k] = true
				return k, true
			}
			create := func(k string) string { creates++; return k }
			for i, k := range tt.keys {
				v, ok := m.LoadOrAdmit(k, admit, create)
				if v != tt.want[i] || ok != (tt.want[i] != "") {
					t.Errorf("LoadOrAdmit(%q) = %q, %v; want %q", k, v, ok, tt.want[i])
				}
			}
			if creates != tt.create {
				t.Errorf("create called %d times, want %d", creates, tt.create)
			}
			if m.Len() != len(tt.stored) {
				t.Errorf("Len = %d, want %d", m.Len(), len(tt.stored))
			}
			for _, k := range tt.stored {
				if _, ok := m.Load(k); !ok {
					t.Errorf("%q not stored", k)
				}
			}
		})
	}
}

// Concurrent callers see one value per key, created once (run with -race).
func TestConcurrent(t *testing.T) {
	var m Map[int, *int]
	var creates [8]atomic.Int32
	var wg sync.WaitGroup
	results := make([][8]*int, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 8 {
				k := (i + g) % 8
				results[g][k] = m.LoadOrCreate(k, func() *int {
					creates[k].Add(1)
					return new(int)
				})
				_, _ = m.LoadOrAdmit(k+8, func(k int) (int, bool) { return 100 + k%2, true }, func(int) *int { return new(int) })
			}
		})
	}
	wg.Wait()
	if m.Len() != 10 {
		t.Errorf("Len = %d, want 8 keys and 2 redirect targets", m.Len())
	}
	for k := range 8 {
		if n := creates[k].Load(); n != 1 {
			t.Errorf("key %d created %d times", k, n)
		}
		for g := range 16 {
			if results[g][k] != results[0][k] {
				t.Errorf("key %d: goroutines saw different values", k)
			}
		}
	}
}

type key struct {
	route  string
	method uint8
	status uint16
}

// BenchmarkHit is the read of a stored key, against a map under a
// sync.RWMutex and a sync.Map.
func BenchmarkHit(b *testing.B) {
	k := key{"/v1/chat/completions", 2, 200}
	b.Run("cowmap-LoadOrCreate", func(b *testing.B) {
		var m Map[key, *int]
		m.LoadOrCreate(k, func() *int { return new(int) })
		b.ReportAllocs()
		for b.Loop() {
			_ = m.LoadOrCreate(k, func() *int { return new(int) })
		}
	})
	b.Run("cowmap-LoadOrAdmit", func(b *testing.B) {
		var m Map[key, *int]
		admit := func(k key) (key, bool) { return k, true }
		create := func(key) *int { return new(int) }
		m.LoadOrAdmit(k, admit, create)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = m.LoadOrAdmit(k, admit, create)
		}
	})
	b.Run("cowmap-parallel", func(b *testing.B) {
		var m Map[key, *int]
		m.LoadOrCreate(k, func() *int { return new(int) })
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = m.LoadOrCreate(k, func() *int { return new(int) })
			}
		})
	})
	b.Run("baseline-rwmutex-parallel", func(b *testing.B) {
		var mu sync.RWMutex
		m := map[key]*int{k: new(int)}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.RLock()
				_ = m[k]
				mu.RUnlock()
			}
		})
	})
	b.Run("baseline-syncmap-parallel", func(b *testing.B) {
		var m sync.Map
		m.Store(k, new(int))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = m.Load(k)
			}
		})
	})
}

func TestAll(t *testing.T) {
	var m Map[string, int]
	for range m.All() {
		t.Fatal("zero Map yields")
	}
	admit := func(k string) (string, bool) {
		if k == "x" {
			return "other", true // redirected: lives under "other" only
		}
		return k, k != "refused"
	}
	for i, k := range []string{"a", "b", "x", "refused", "a"} {
		m.LoadOrAdmit(k, admit, func(string) int { return i })
	}
	got := map[string]int{}
	for k, v := range m.All() {
		got[k] = v
	}
	want := map[string]int{"a": 0, "b": 1, "other": 2}
	if len(got) != len(want) {
		t.Fatalf("All = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("All = %v, want %v", got, want)
		}
	}
	n := 0
	for range m.All() {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("All went on after break: %d", n)
	}
}
