//go:build cgo

package gpumon_test

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/internal/testkit"
)

// nvlinkSeries gathers c through a pedantic registry (which fails on a
// series Describe did not announce) and returns the series of the names
// given, as "name{labels}" (gpu and uuid left out, the others sorted by
// name) to value, for GPU gpu.
func nvlinkSeries(t *testing.T, c prometheus.Collector, gpu string, names ...string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			keep := true
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "gpu":
					keep = l.GetValue() == gpu
				case "uuid", "UUID", "device", "modelName", "Hostname", "pci_bus_id", "DCGM_FI_DRIVER_VERSION":
				default:
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
			}
			if keep {
				out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = gaugeOrCounter(m)
			}
		}
	}
	return out
}

var nvlinkNames = []string{"gpu_nvlink_active", "gpu_nvlink_active_links", "gpu_nvlink_transmit_bytes_total",
	"gpu_nvlink_receive_bytes_total", "gpu_nvlink_errors_total"}

// TestNVLinkPerLinkOption: per link (the default, and
// WithNVLinkPerLink(true)) the series carry a link label; per GPU
// (WithNVLinkPerLink(false)) they are the sums over the GPU's links without
// it, plus the count of active links, and no per-link series is left. Both
// are lint-clean and what Describe announces (pedantic registry), and the
// sums are the per-link series summed. DCGM names are the same with either.
func TestNVLinkPerLinkOption(t *testing.T) {
	// hopperBox's GPU 0 after two rounds: links 0 and 1 active (TX 2000 and
	// 4000 KiB, RX 1000 and 2000 KiB, CRC flit 0 and 1, replays 0 and 2),
	// link 2 down.
	perLink := map[string]float64{
		"gpu_nvlink_active{link=0}": 1, "gpu_nvlink_active{link=1}": 1, "gpu_nvlink_active{link=2}": 0,
		"gpu_nvlink_transmit_bytes_total{link=0}": 2000 * 1024, "gpu_nvlink_transmit_bytes_total{link=1}": 4000 * 1024,
		"gpu_nvlink_receive_bytes_total{link=0}": 1000 * 1024, "gpu_nvlink_receive_bytes_total{link=1}": 2000 * 1024,
	}
	for _, l := range []string{"0", "1"} {
		for _, typ := range []string{"crc_flit", "crc_data", "replay", "recovery"} {
			v := 0.0
			if l == "1" && typ == "crc_flit" {
				v = 1
			}
			if l == "1" && typ == "replay" {
				v = 2
			}
			perLink["gpu_nvlink_errors_total{link="+l+",type="+typ+"}"] = v
		}
	}
	perGPU := map[string]float64{
		"gpu_nvlink_active_links{}":              2,
		"gpu_nvlink_transmit_bytes_total{}":      6000 * 1024,
		"gpu_nvlink_receive_bytes_total{}":       3000 * 1024,
		"gpu_nvlink_errors_total{type=crc_flit}": 1, "gpu_nvlink_errors_total{type=crc_data}": 0,
		"gpu_nvlink_errors_total{type=replay}": 2, "gpu_nvlink_errors_total{type=recovery}": 0,
	}
	for _, tc := range []struct {
		name string
		opts []gpumon.Option
		want map[string]float64
	}{
		{"default", nil, perLink},
		{"per link", []gpumon.Option{gpumon.WithNVLinkPerLink(true)}, perLink},
		{"per GPU", []gpumon.Option{gpumon.WithNVLinkPerLink(false)}, perGPU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hopperBox(t)
			c := sampled(t, b, tc.opts...)
			testkit.Lint(t, c)
			got := nvlinkSeries(t, c, "0", nvlinkNames...)
			if !maps.Equal(got, tc.want) {
				t.Errorf("got\n%v\nwant\n%v", got, tc.want)
			}
			// The per-GPU sums are the per-link series summed by GPU.
			sums := map[string]float64{}
			for k, v := range got {
				name, labels, _ := strings.Cut(strings.TrimSuffix(k, "}"), "{")
				var keep []string
				for _, l := range strings.Split(labels, ",") {
					if l != "" && !strings.HasPrefix(l, "link=") {
						keep = append(keep, l)
					}
				}
				if name == "gpu_nvlink_active" {
					name = "gpu_nvlink_active_links"
				}
				sums[name+"{"+strings.Join(keep, ",")+"}"] += v
			}
			if !maps.Equal(sums, perGPU) {
				t.Errorf("summed by GPU\n%v\nwant\n%v", sums, perGPU)
			}
		})
	}
	// With DCGM names the option changes nothing: per GPU already.
	dcgm := []string{"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
		"DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
		"DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"}
	var first map[string]float64
	for _, on := range []bool{true, false} {
		b, _ := hopperBox(t)
		c := sampled(t, b, gpumon.WithDCGMNames(), gpumon.WithNVLinkPerLink(on))
		got := nvlinkSeries(t, c, "0", append(dcgm, nvlinkNames...)...)
		if len(got) != len(dcgm) {
			t.Errorf("DCGM names, per link %v: %v, want one series each of %v", on, got, dcgm)
		}
		if first == nil {
			first = got
		} else if !maps.Equal(first, got) {
			t.Errorf("DCGM names: per link on %v, off %v", first, got)
		}
	}
}

// linkScript is one mocked GPU's NVLinks as a test step sets them: two
// links with their state and counters, and the failures of this round.
type linkScript struct {
	mu         sync.Mutex
	up         [2]bool
	tx, rx     [2]uint64 // KiB
	flit       [2]uint64
	stateFail  [2]bool // GetNvLinkState answers ERROR_UNKNOWN
	errFail    [2]bool // GetNvLinkErrorCounter answers ERROR_UNKNOWN
	fieldFail  [2]bool // the link's field values answer ERROR_UNKNOWN
	fieldsFail bool    // GetFieldValues answers ERROR_UNKNOWN
}

// install makes b's GPU 0 answer from s.
func (s *linkScript) install(b *box) {
	d := b.devs[0]
	other := d.GetFieldValuesFunc
	d.GetNvLinkStateFunc = func(l int) (nvml.EnableState, nvml.Return) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case l >= 2:
			return 0, nvml.ERROR_INVALID_ARGUMENT
		case s.stateFail[l]:
			return 0, nvml.ERROR_UNKNOWN
		case s.up[l]:
			return nvml.FEATURE_ENABLED, nvml.SUCCESS
		}
		return nvml.FEATURE_DISABLED, nvml.SUCCESS
	}
	d.GetFieldValuesFunc = func(values []nvml.FieldValue) nvml.Return {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range values {
			v := &values[k]
			var x uint64
			switch v.FieldId {
			case nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX:
				x = s.tx[v.ScopeId]
			case nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX:
				x = s.rx[v.ScopeId]
			default:
				_ = other(values[k : k+1])
				continue
			}
			if s.fieldsFail {
				return nvml.ERROR_UNKNOWN
			}
			if s.fieldFail[v.ScopeId] {
				v.NvmlReturn = uint32(nvml.ERROR_UNKNOWN)
				continue
			}
			v.ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG)
			v.NvmlReturn = uint32(nvml.SUCCESS)
			binary.NativeEndian.PutUint64(v.Value[:], x)
		}
		return nvml.SUCCESS
	}
	d.GetNvLinkErrorCounterFunc = func(l int, c nvml.NvLinkErrorCounter) (uint64, nvml.Return) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case s.errFail[l]:
			return 0, nvml.ERROR_UNKNOWN
		case c == nvml.NVLINK_ERROR_DL_CRC_FLIT:
			return s.flit[l], nvml.SUCCESS
		}
		return 0, nvml.SUCCESS
	}
}

// TestNVLinkSumsMonotonic: the per-GPU sums (WithNVLinkPerLink(false), and
// the DCGM error totals) never go backwards, whatever the links do round
// by round: a link going down and up, an error counter or field value that
// fails for one link, a failed GetFieldValues, a counter reset, a state
// that does not answer, every link down. Each step changes the script and
// makes one sampler round.
func TestNVLinkSumsMonotonic(t *testing.T) {
	type want struct {
		tx, flit float64 // KiB, errors
		active   float64 // gpu_nvlink_active_links; -1: absent
	}
	steps := []struct {
		name   string
		change func(s *linkScript)
		want   want
	}{
		{"both up", func(s *linkScript) {}, want{300, 3, 2}},
		{"both count", func(s *linkScript) { s.tx = [2]uint64{150, 250}; s.flit = [2]uint64{1, 3} }, want{400, 4, 2}},
		// Link 1 down: its counters are not read; the sum keeps what it counted.
		{"link 1 down", func(s *linkScript) { s.up[1] = false; s.tx[0] = 170; s.tx[1] = 900; s.flit[1] = 9 }, want{420, 4, 1}},
		// Back up, its counters lower than while it was down (never read then).
		{"link 1 up", func(s *linkScript) { s.up[1] = true; s.tx[1] = 260; s.flit[1] = 5 }, want{430, 6, 2}},
		{"errors fail on link 0", func(s *linkScript) { s.errFail[0] = true; s.flit[0] = 4 }, want{430, 6, 2}},
		{"errors answer again", func(s *linkScript) { s.errFail[0] = false }, want{430, 9, 2}},
		{"field values fail on link 1", func(s *linkScript) { s.fieldFail[1] = true; s.tx = [2]uint64{200, 300} }, want{460, 9, 2}},
		// Link 0's counters reset: they count from zero again.
		{"link 0 reset", func(s *linkScript) { s.fieldFail[1] = false; s.tx[0] = 10; s.flit[0] = 0 }, want{510, 9, 2}},
		{"state fails on link 0", func(s *linkScript) { s.stateFail[0] = true; s.tx = [2]uint64{50, 310}; s.flit[1] = 6 }, want{520, 10, -1}},
		{"GetFieldValues fails", func(s *linkScript) { s.stateFail[0] = false; s.fieldsFail = true }, want{520, 10, 2}},
		{"every link down", func(s *linkScript) { s.fieldsFail = false; s.up = [2]bool{}; s.tx = [2]uint64{99, 999} }, want{520, 10, 0}},
		// Link 0 was last read at 10 (the reset), link 1 at 310.
		{"both up again", func(s *linkScript) { s.up = [2]bool{true, true} }, want{520 + 89 + 689, 10, 2}},
	}
	for _, mode := range []struct {
		name string
		opts []gpumon.Option
		tx   string // "": not served
		flit string
	}{
		{"per GPU", []gpumon.Option{gpumon.WithNVLinkPerLink(false)}, "gpu_nvlink_transmit_bytes_total{}", "gpu_nvlink_errors_total{type=crc_flit}"},
		{"DCGM names", []gpumon.Option{gpumon.WithDCGMNames()}, "", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL{}"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			b := newBox(t, 1)
			s := &linkScript{up: [2]bool{true, true}, tx: [2]uint64{100, 200}, rx: [2]uint64{1, 2}, flit: [2]uint64{1, 2}}
			s.install(b)
			c := sampled(t, b, mode.opts...)
			var prev want
			for _, st := range steps {
				s.mu.Lock()
				st.change(s)
				s.mu.Unlock()
				if err := gpumon.SampleNow(c); err != nil {
					t.Fatal(err)
				}
				got := nvlinkSeries(t, c, "0", append(nvlinkNames, "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL")...)
				if v, ok := got[mode.flit]; !ok || v != st.want.flit || v < prev.flit {
					t.Errorf("%s: %s = %v (served %v), want %v (last %v)", st.name, mode.flit, v, ok, st.want.flit, prev.flit)
				}
				if mode.tx != "" {
					if v, ok := got[mode.tx]; !ok || v != st.want.tx*1024 || v < prev.tx*1024 {
						t.Errorf("%s: %s = %v KiB (served %v), want %v (last %v)", st.name, mode.tx, v/1024, ok, st.want.tx, prev.tx)
					}
					v, ok := got["gpu_nvlink_active_links{}"]
					if st.want.active < 0 && ok || st.want.active >= 0 && (!ok || v != st.want.active) {
						t.Errorf("%s: gpu_nvlink_active_links = %v (served %v), want %v (-1: absent)", st.name, v, ok, st.want.active)
					}
					for k := range got {
						if strings.Contains(k, "link=") {
							t.Errorf("%s: per-link series %s", st.name, k)
						}
					}
				}
				prev = st.want
			}
			if mode.tx != "" { // dcgm-exporter's names are not Prometheus-style
				testkit.Lint(t, c)
			}
			// The failures were counted, as everywhere in gpumon.
			for _, call := range []string{"GetNvLinkErrorCounter", "GetFieldValues", "GetNvLinkState"} {
				if n := errCount(t, c, call); n < 1 {
					t.Errorf("gpumon_collect_errors_total{call=%q} = %v, want the failures counted", call, n)
				}
			}
		})
	}
}

// TestNVLinkLateLink: a link that answers for the first time after the
// GPU's sums were served adds only what it counts from then on (its first
// reading is its baseline, as for a new series under rate), so the sum
// does not jump by what the link counted before.
func TestNVLinkLateLink(t *testing.T) {
	b := newBox(t, 1)
	s := &linkScript{up: [2]bool{true, false}, tx: [2]uint64{100, 5000}, flit: [2]uint64{1, 50}}
	s.install(b)
	c := sampled(t, b, gpumon.WithNVLinkPerLink(false))
	for k, st := range []struct {
		change   func()
		tx, flit float64
	}{
		{func() {}, 100, 1},
		{func() { s.up[1] = true }, 100, 1},
		{func() { s.tx = [2]uint64{110, 5020}; s.flit[1] = 51 }, 130, 2},
	} {
		s.mu.Lock()
		st.change()
		s.mu.Unlock()
		if err := gpumon.SampleNow(c); err != nil {
			t.Fatal(err)
		}
		got := nvlinkSeries(t, c, "0", nvlinkNames...)
		if tx, flit := got["gpu_nvlink_transmit_bytes_total{}"], got["gpu_nvlink_errors_total{type=crc_flit}"]; tx != st.tx*1024 || flit != st.flit {
			t.Errorf("round %d: TX %v KiB, CRC flit %v; want %v, %v", k, tx/1024, flit, st.tx, st.flit)
		}
	}
}

// TestNVLinkPerGPUCounts: the series a GPU has in each mode, on a box with
// NVLink on one GPU and none on the other (every link's state unsupported).
func TestNVLinkPerGPUCounts(t *testing.T) {
	for _, tc := range []struct {
		perLink bool
		want    map[string]int
	}{
		{true, map[string]int{"gpu_nvlink_active": 3, "gpu_nvlink_transmit_bytes_total": 2, "gpu_nvlink_receive_bytes_total": 2, "gpu_nvlink_errors_total": 8}},
		{false, map[string]int{"gpu_nvlink_active_links": 1, "gpu_nvlink_transmit_bytes_total": 1, "gpu_nvlink_receive_bytes_total": 1, "gpu_nvlink_errors_total": 4}},
	} {
		t.Run(fmt.Sprint("per link ", tc.perLink), func(t *testing.T) {
			b, _ := hopperBox(t)
			b.devs[1].GetNvLinkStateFunc = func(int) (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
			c := sampled(t, b, gpumon.WithNVLinkPerLink(tc.perLink))
			for _, name := range nvlinkNames {
				if n := testutil.CollectAndCount(c, name); n != tc.want[name] {
					t.Errorf("%s: %d series, want %d", name, n, tc.want[name])
				}
			}
			testkit.Lint(t, c)
		})
	}
}
