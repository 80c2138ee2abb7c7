//go:build cgo

package gpusim_test

import (
	"math"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/modeltel/modeltel/gpumon/gpusim"
)

// clock is a fake clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// open returns sim's library, initialised until the test ends, and its devices.
func open(t *testing.T, sim *gpusim.Sim) (nvml.Interface, []nvml.Device) {
	t.Helper()
	lib := sim.NVML()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		t.Fatalf("Init: %v", ret)
	}
	t.Cleanup(func() { _ = sim.Clear(gpusim.AllGPUs); _ = lib.Shutdown() })
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS || n != sim.GPUs() {
		t.Fatalf("DeviceGetCount = %d, %v; want %d", n, ret, sim.GPUs())
	}
	var devs []nvml.Device
	for i := range n {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			t.Fatalf("DeviceGetHandleByIndex(%d): %v", i, ret)
		}
		devs = append(devs, d)
	}
	return lib, devs
}

func newSim(t *testing.T, cfg gpusim.Config) *gpusim.Sim {
	t.Helper()
	sim, err := gpusim.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return sim
}

func TestNewBadConfig(t *testing.T) {
	bad := gpusim.H100SXM
	bad.PowerLimitW = 10 // below the idle power
	for _, tc := range []struct {
		name string
		cfg  gpusim.Config
		want string
	}{
		{"negative GPUs", gpusim.Config{GPUs: -1}, "-1 GPUs"},
		{"too many GPUs", gpusim.Config{GPUs: gpusim.MaxGPUs + 1}, "GPUs: want 0 to"},
		{"bad model", gpusim.Config{Model: bad}, "PowerLimitW"},
		{"unnamed model", gpusim.Config{Model: gpusim.Model{MemoryTotal: 1}}, "no Name"},
		{"negative processes", gpusim.Config{Processes: -1}, "-1 processes"},
		{"too many processes", gpusim.Config{Processes: gpusim.MaxProcesses + 1}, "processes per GPU: want 0 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, err := gpusim.New(tc.cfg)
			if err == nil || sim != nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "gpusim: ") {
				t.Errorf("New = %v, %v; want an error with %q", sim, err, tc.want)
			}
		})
	}
	sim := newSim(t, gpusim.Config{})
	if sim.GPUs() != 1 || sim.Model().Name != gpusim.H100SXM.Name {
		t.Errorf("zero Config: %d GPUs of %q, want one H100 SXM", sim.GPUs(), sim.Model().Name)
	}
}

func TestBadInput(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 2})
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"load above 1", sim.SetLoad(0, 1.5)},
		{"negative load", sim.SetLoad(0, -0.1)},
		{"NaN load", sim.SetLoad(0, math.NaN())},
		{"gpu out of range", sim.SetLoad(2, 0.5)},
		{"negative gpu", sim.FallOffBus(-2)},
		{"xid 0", sim.InjectXID(0, 0)},
		{"xid too big", sim.InjectXID(0, 1000)},
		{"hang no gpu", sim.Hang(9)},
		{"clear no gpu", sim.Clear(9)},
	} {
		if tc.err == nil || !strings.HasPrefix(tc.err.Error(), "gpusim: ") {
			t.Errorf("%s: err = %v, want a gpusim error", tc.name, tc.err)
		}
	}
	for i := range 2 {
		if l, err := sim.Load(i); err != nil || l != 0 {
			t.Errorf("Load(%d) = %v, %v after bad input; want 0", i, l, err)
		}
	}
	var nilSim *gpusim.Sim
	if nilSim.SetLoad(0, 0) == nil || nilSim.NVML() != nil || nilSim.GPUs() != 0 || nilSim.UUID(0) != "" {
		t.Error("nil Sim: want errors and zero values")
	}
}

func TestModelByName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"H100 SXM", "NVIDIA H100 80GB HBM3"},
		{"h100-sxm", "NVIDIA H100 80GB HBM3"},
		{"NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"},
		{"a100_sxm_80gb", "NVIDIA A100-SXM4-80GB"},
		{"L4", "NVIDIA L4"},
		{"H200", ""},
		{"", ""},
	} {
		m, ok := gpusim.ModelByName(tc.in)
		if m.Name != tc.want || ok != (tc.want != "") {
			t.Errorf("ModelByName(%q) = %q, %v; want %q", tc.in, m.Name, ok, tc.want)
		}
	}
}

var uuidRE = regexp.MustCompile(`^GPU-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestIdentity(t *testing.T) {
	a := newSim(t, gpusim.Config{GPUs: 10, Seed: 1})
	b := newSim(t, gpusim.Config{GPUs: 10, Seed: 1})
	c := newSim(t, gpusim.Config{GPUs: 10, Seed: 2})
	seen := map[string]bool{}
	for i := range 10 {
		if a.UUID(i) != b.UUID(i) {
			t.Errorf("gpu %d: UUID %s and %s with the same seed", i, a.UUID(i), b.UUID(i))
		}
		if a.UUID(i) == c.UUID(i) {
			t.Errorf("gpu %d: same UUID %s with another seed", i, a.UUID(i))
		}
		if !uuidRE.MatchString(a.UUID(i)) {
			t.Errorf("gpu %d: UUID %q is not GPU-<uuid v4>", i, a.UUID(i))
		}
		if seen[a.UUID(i)] {
			t.Errorf("gpu %d: UUID %s repeated", i, a.UUID(i))
		}
		seen[a.UUID(i)] = true
	}
	_, devs := open(t, a)
	busIDs := map[string]bool{}
	for i, d := range devs {
		p, ret := d.GetPciInfo()
		if ret != nvml.SUCCESS {
			t.Fatal(ret)
		}
		id := cstr(p.BusId[:])
		if !regexp.MustCompile(`^[0-9A-F]{8}:[0-9A-F]{2}:00\.0$`).MatchString(id) || busIDs[id] {
			t.Errorf("gpu %d: bus id %q", i, id)
		}
		busIDs[id] = true
		if p.PciDeviceId != 0x233010de {
			t.Errorf("gpu %d: PCI device id %#x, want H100's 0x233010de", i, p.PciDeviceId)
		}
		if u, _ := d.GetUUID(); u != a.UUID(i) {
			t.Errorf("gpu %d: GetUUID %s, UUID %s", i, u, a.UUID(i))
		}
		if s, ret := d.GetSerial(); ret != nvml.SUCCESS || len(s) != 13 {
			t.Errorf("gpu %d: serial %q, %v", i, s, ret)
		}
	}
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// TestUninitialized: like NVML, nothing answers before Init or after Shutdown.
func TestUninitialized(t *testing.T) {
	sim := newSim(t, gpusim.Config{})
	lib := sim.NVML()
	if _, ret := lib.DeviceGetCount(); ret != nvml.ERROR_UNINITIALIZED {
		t.Errorf("DeviceGetCount before Init: %v", ret)
	}
	if ret := lib.Shutdown(); ret != nvml.ERROR_UNINITIALIZED {
		t.Errorf("Shutdown before Init: %v", ret)
	}
	_ = lib.Init()
	d, _ := lib.DeviceGetHandleByIndex(0)
	if _, ret := d.GetPowerUsage(); ret != nvml.SUCCESS {
		t.Errorf("GetPowerUsage: %v", ret)
	}
	_ = lib.Shutdown()
	if _, ret := d.GetPowerUsage(); ret != nvml.ERROR_UNINITIALIZED {
		t.Errorf("GetPowerUsage after Shutdown: %v", ret)
	}
}

// TestEvolution: values follow the load at once, the temperature with its
// time constant, and the energy counter is the integral of the power.
func TestEvolution(t *testing.T) {
	clk := newClock()
	sim := newSim(t, gpusim.Config{GPUs: 1, Now: clk.Now})
	_, devs := open(t, sim)
	d := devs[0]
	m := gpusim.H100SXM
	read := func() (util, power, temp, sm uint32, energy uint64, reasons uint64, used uint64) {
		u, _ := d.GetUtilizationRates()
		power, _ = d.GetPowerUsage()
		temp, _ = d.GetTemperature(nvml.TEMPERATURE_GPU)
		sm, _ = d.GetClockInfo(nvml.CLOCK_SM)
		energy, _ = d.GetTotalEnergyConsumption()
		reasons, _ = d.GetCurrentClocksEventReasons()
		mem, _ := d.GetMemoryInfo_v2()
		return u.Gpu, power, temp, sm, energy, reasons, mem.Used
	}
	util, power, temp, sm, e0, reasons, used := read()
	if util != 0 || power != 72000 || temp != 31 || sm != m.IdleSMClockMHz || reasons != nvml.ClocksEventReasonGpuIdle || used != 0 {
		t.Errorf("idle: util %d power %d mW temp %d sm %d reasons %#x used %d", util, power, temp, sm, reasons, used)
	}
	clk.Add(10 * time.Second)
	_, _, _, _, e1, _, _ := read()
	if want := uint64(72 * 10 * 1000); e1-e0 != want {
		t.Errorf("10 s idle: energy +%d mJ, want %d", e1-e0, want)
	}

	if err := sim.SetLoad(0, 0.5); err != nil {
		t.Fatal(err)
	}
	util, power, temp, sm, _, reasons, used = read()
	wantPower := 72 + (1.1*700-72)*0.5 // 421 W
	if util != 50 || power != uint32(wantPower*1000) || temp != 31 || sm != m.MaxSMClockMHz || reasons != 0 {
		t.Errorf("load 0.5 at once: util %d power %d mW temp %d sm %d reasons %#x", util, power, temp, sm, reasons)
	}
	if used == 0 || used > m.MemoryTotal-m.MemoryReserved {
		t.Errorf("load 0.5: %d bytes used", used)
	}
	// Full load: the power is capped at the limit, the clocks come down.
	_ = sim.SetLoad(0, 1)
	_, power, _, sm, e2, reasons, _ := read()
	if power != 700000 || reasons != nvml.ClocksEventReasonSwPowerCap || sm >= m.MaxSMClockMHz || sm < m.MaxSMClockMHz*8/10 {
		t.Errorf("full load: power %d mW, sm %d MHz, reasons %#x; want 700 W, capped clocks, sw_power_cap", power, sm, reasons)
	}
	prevTemp, prevE := uint32(31), e2
	for i := range 30 {
		clk.Add(5 * time.Second)
		_, _, temp, _, e, _, _ := read()
		if temp < prevTemp || temp > uint32(m.FullTempC) {
			t.Fatalf("step %d: temperature %d after %d: not rising towards %v", i, temp, prevTemp, m.FullTempC)
		}
		if e-prevE != 700*5*1000 {
			t.Fatalf("step %d: energy +%d mJ in 5 s at 700 W", i, e-prevE)
		}
		prevTemp, prevE = temp, e
	}
	if prevTemp != uint32(m.FullTempC) {
		t.Errorf("temperature after 150 s at full load: %d, want %v", prevTemp, m.FullTempC)
	}
	// A clock that goes back changes nothing.
	clk.Add(-time.Hour)
	if _, _, _, _, e, _, _ := read(); e != prevE {
		t.Errorf("energy %d after the clock went back, want %d", e, prevE)
	}
}

// TestFaults: XID events through the event set, lost GPUs, hung calls, Clear.
func TestFaults(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 3})
	lib, devs := open(t, sim)
	set, ret := lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		t.Fatal(ret)
	}
	for _, d := range devs[:2] { // gpu 2 is not registered
		if types, _ := d.GetSupportedEventTypes(); types&nvml.EventTypeXidCriticalError == 0 {
			t.Fatalf("supported events %#x lack XID", types)
		}
		if ret := d.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret != nvml.SUCCESS {
			t.Fatal(ret)
		}
	}
	if ret := devs[0].RegisterEvents(nvml.EventTypeXidCriticalError, nil); ret != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("RegisterEvents(nil set) = %v", ret)
	}
	_ = sim.InjectXID(2, 13) // lost: nobody listens
	_ = sim.InjectXID(1, 48)
	ev, ret := set.Wait(1000)
	if ret != nvml.SUCCESS || ev.EventData != 48 || ev.Device != devs[1] || ev.EventType != nvml.EventTypeXidCriticalError {
		t.Fatalf("Wait = %+v, %v; want XID 48 on gpu 1", ev, ret)
	}
	if _, ret := set.Wait(1); ret != nvml.ERROR_TIMEOUT {
		t.Errorf("second Wait: %v, want a timeout", ret)
	}
	if unc, _ := devs[1].GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); unc != 1 {
		t.Errorf("uncorrected ECC after XID 48: %d", unc)
	}
	if _, unc, pending, failed, _ := devs[1].GetRemappedRows(); unc != 1 || !pending || failed {
		t.Errorf("remapped rows after XID 48: unc %d pending %v failed %v", unc, pending, failed)
	}

	_ = sim.FallOffBus(0)
	if _, ret := devs[0].GetPowerUsage(); ret != nvml.ERROR_GPU_IS_LOST {
		t.Errorf("lost GPU: %v", ret)
	}
	if _, ret := devs[1].GetPowerUsage(); ret != nvml.SUCCESS {
		t.Errorf("gpu 1 while gpu 0 is lost: %v", ret)
	}

	_ = sim.Hang(1)
	done := make(chan nvml.Return)
	go func() { _, ret := devs[1].GetTemperature(nvml.TEMPERATURE_GPU); done <- ret }()
	select {
	case ret := <-done:
		t.Fatalf("call on a hung GPU returned %v", ret)
	case <-time.After(50 * time.Millisecond):
	}
	if _, ret := devs[2].GetPowerUsage(); ret != nvml.SUCCESS { // others answer
		t.Errorf("gpu 2 while gpu 1 hangs: %v", ret)
	}
	_ = sim.Clear(gpusim.AllGPUs)
	if ret := <-done; ret != nvml.SUCCESS {
		t.Errorf("hung call after Clear: %v", ret)
	}
	if _, ret := devs[0].GetPowerUsage(); ret != nvml.SUCCESS {
		t.Errorf("gpu 0 after Clear: %v", ret)
	}
	if unc, _ := devs[1].GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); unc != 0 {
		t.Errorf("volatile ECC after Clear: %d, want 0", unc)
	}
	if agg, _ := devs[1].GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC); agg != 1 {
		t.Errorf("aggregate ECC after Clear: %d, want 1", agg)
	}
	if ret := set.Free(); ret != nvml.SUCCESS {
		t.Errorf("Free: %v", ret)
	}
	if _, ret := set.Wait(1000); ret != nvml.ERROR_UNINITIALIZED {
		t.Errorf("Wait after Free: %v", ret)
	}
	if ret := set.Free(); ret != nvml.ERROR_UNINITIALIZED {
		t.Errorf("second Free: %v", ret)
	}
	_ = sim.InjectXID(0, 79) // to a freed set: dropped, no panic
}

// TestEveryMethod calls every method of the library and of a device with
// zero arguments: none panics, and what is not simulated answers
// ERROR_NOT_SUPPORTED.
func TestEveryMethod(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 2})
	lib, devs := open(t, sim)
	for _, target := range []any{devs[0], lib} {
		v := reflect.ValueOf(target)
		for i := range v.NumMethod() {
			m := v.Type().Method(i)
			if m.Name == "Shutdown" || m.Name == "Init" || m.Name == "InitWithFlags" {
				continue // keep the library initialised
			}
			args := make([]reflect.Value, m.Type.NumIn()-1)
			for k := range args {
				args[k] = reflect.Zero(m.Type.In(k + 1))
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%T.%s panicked: %v", target, m.Name, p)
					}
				}()
				v.Method(i).Call(args)
			}()
		}
	}
	if _, ret := devs[0].GetNvLinkRemotePciInfo(0); ret != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("GetNvLinkRemotePciInfo: %v", ret)
	}
	if _, ret := lib.DeviceGetGpuInstanceById(devs[0], 1); ret != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("DeviceGetGpuInstanceById: %v", ret)
	}
	fv := []nvml.FieldValue{{FieldId: nvml.FI_DEV_MEMORY_TEMP}, {FieldId: nvml.FI_DEV_NVLINK_BANDWIDTH_C0_TOTAL}}
	if ret := devs[0].GetFieldValues(fv); ret != nvml.SUCCESS || fv[0].NvmlReturn != uint32(nvml.SUCCESS) || fv[1].NvmlReturn != uint32(nvml.ERROR_NOT_SUPPORTED) {
		t.Errorf("GetFieldValues: %v, %+v", ret, fv)
	}
}

// TestConcurrent drives a Sim from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	sim := newSim(t, gpusim.Config{GPUs: 4})
	lib, devs := open(t, sim)
	set, _ := lib.EventSetCreate()
	for _, d := range devs {
		_ = d.RegisterEvents(nvml.EventTypeXidCriticalError, set)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				gpu := (g + i) % 4
				switch i % 5 {
				case 0:
					_ = sim.SetLoad(gpu, float64(i%11)/10)
				case 1:
					_ = sim.InjectXID(gpu, 13)
				case 2:
					_ = sim.FallOffBus(gpu)
				case 3:
					_ = sim.Clear(gpu)
				default:
					_, _ = devs[gpu].GetPowerUsage()
					_, _ = devs[gpu].GetTotalEnergyConsumption()
					_, _ = set.Wait(0)
				}
			}
		}()
	}
	wg.Wait()
	_ = set.Free()
}
