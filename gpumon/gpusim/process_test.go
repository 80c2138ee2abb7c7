//go:build cgo

package gpusim_test

import (
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/modeltel/modeltel/gpumon/gpusim"
)

// TestProcesses: a GPU under load lists Config.Processes processes that
// share its memory and utilisation; an idle one lists none; samples are
// stamped with the Sim's clock and only those newer than lastSeenTimestamp
// are returned, as NVML does.
func TestProcesses(t *testing.T) {
	clk := newClock()
	sim := newSim(t, gpusim.Config{GPUs: 2, ProcessPID: 4242, Processes: 3, Now: clk.Now})
	_, devs := open(t, sim)
	d := devs[1]
	if ps, ret := d.GetComputeRunningProcesses(); ret != nvml.SUCCESS || len(ps) != 0 {
		t.Errorf("idle: %v, %v; want no process", ps, ret)
	}
	if _, ret := d.GetProcessUtilization(0); ret != nvml.ERROR_NOT_FOUND {
		t.Errorf("idle: GetProcessUtilization = %v, want ERROR_NOT_FOUND", ret)
	}
	if err := sim.SetLoad(1, 0.6); err != nil {
		t.Fatal(err)
	}
	ps, ret := d.GetComputeRunningProcesses()
	if ret != nvml.SUCCESS || len(ps) != 3 {
		t.Fatalf("GetComputeRunningProcesses = %v, %v; want 3 processes", ps, ret)
	}
	wantPIDs := []uint32{4242, gpusim.SimPIDBase + gpusim.MaxProcesses + 1, gpusim.SimPIDBase + gpusim.MaxProcesses + 2}
	m, _ := d.GetMemoryInfo_v2()
	var sum uint64
	for k, p := range ps {
		if p.Pid != wantPIDs[k] {
			t.Errorf("process %d: pid %d, want %d", k, p.Pid, wantPIDs[k])
		}
		sum += p.UsedGpuMemory
	}
	if sum != m.Used {
		t.Errorf("the processes hold %d bytes, the GPU uses %d", sum, m.Used)
	}
	us, ret := d.GetProcessUtilization(0)
	if ret != nvml.SUCCESS || len(us) != 3 {
		t.Fatalf("GetProcessUtilization(0) = %v, %v", us, ret)
	}
	ts := uint64(clk.Now().UnixMicro())
	for k, u := range us {
		if u.Pid != wantPIDs[k] || u.TimeStamp != ts || u.SmUtil != 20 || u.MemUtil != 12 || u.EncUtil != 0 || u.DecUtil != 0 {
			t.Errorf("sample %d = %+v, want pid %d at %d, SM 20 %%, memory 12 %%", k, u, wantPIDs[k], ts)
		}
	}
	if _, ret := d.GetProcessUtilization(ts); ret != nvml.ERROR_NOT_FOUND {
		t.Errorf("nothing newer than the last sample: %v, want ERROR_NOT_FOUND", ret)
	}
	clk.Add(time.Second)
	if us, ret := d.GetProcessUtilization(ts); ret != nvml.SUCCESS || len(us) != 3 || us[0].TimeStamp != ts+1e6 {
		t.Errorf("a second later: %v, %v", us, ret)
	}
	if err := sim.FallOffBus(1); err != nil {
		t.Fatal(err)
	}
	if _, ret := d.GetProcessUtilization(0); ret != nvml.ERROR_GPU_IS_LOST {
		t.Errorf("off the bus: %v", ret)
	}
	// Without ProcessPID, Processes alone gives pids no /proc has.
	sim2 := newSim(t, gpusim.Config{Processes: 2})
	_, devs2 := open(t, sim2)
	_ = sim2.SetLoad(0, 1)
	ps, _ = devs2[0].GetComputeRunningProcesses()
	if len(ps) != 2 || ps[0].Pid != gpusim.SimPIDBase || ps[1].Pid != gpusim.SimPIDBase+1 {
		t.Errorf("Processes without ProcessPID: %v", ps)
	}
}
