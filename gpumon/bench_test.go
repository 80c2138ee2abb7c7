//go:build cgo

package gpumon_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
)

// benchBox is the 8-GPU mock without XID events, so that no watcher
// goroutine allocates during the measurement.
func benchBox(b *testing.B) *box {
	bx := newBox(b, 8)
	bx.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	return bx
}

// collectOnce is one scrape: Collect into a channel, drained.
func collectOnce(c prometheus.Collector, ch chan prometheus.Metric) int {
	c.Collect(ch)
	n := len(ch)
	for range n {
		<-ch
	}
	return n
}

// BenchmarkCollect is one scrape of 8 mocked A100s with a fresh NVML read
// (without the background sampler, as before it existed: the baseline of
// BenchmarkCollectSampled).
func BenchmarkCollect(b *testing.B) {
	c := newCollector(b, benchBox(b), gpumon.WithSampleInterval(-1))
	ch := make(chan prometheus.Metric, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if collectOnce(c, ch) < 8*25 {
			b.Fatal("short scrape")
		}
	}
}

// BenchmarkCollectProcesses is BenchmarkCollect with WithProcessMetrics and
// 4 compute processes on each of the 8 GPUs, each in a Kubernetes pod of a
// fake /proc, with a new utilisation sample per process at every read:
// "host" in the initial PID namespace, "container" outside it (the fd
// check). /proc is read when a process first shows up, so after the first
// scrape a scrape reads none: what remains is the two NVML calls per GPU
// and the 5 series per process. BenchmarkCollect is its baseline.
func BenchmarkCollectProcesses(b *testing.B) {
	for _, mode := range []struct {
		name string
		host bool
	}{{"host", true}, {"container", false}} {
		b.Run(mode.name, func(b *testing.B) {
			proc := gpumon.NewFakeProc(b, mode.host)
			bx := benchBox(b)
			for i, d := range bx.devs {
				var ps []nvml.ProcessInfo
				var us []nvml.ProcessUtilizationSample
				for k := range 4 {
					pid := uint32(1000 + 10*i + k)
					// A realistic fd table: the NVIDIA files come after a few others.
					proc.Add(pid, "python3", uint64(pid), "/dev/null", "/dev/null", "/dev/null", "socket:[1]",
						"pipe:[2]", "/dev/nvidiactl", fmt.Sprintf("/dev/nvidia%d", i), "/dev/nvidia-uvm")
					proc.SetPod(pid, gpumon.PodFiles{
						Cgroup:    strings.Replace(podCgroup, containerID[:8], fmt.Sprintf("%08x", pid), 1),
						Mountinfo: podMountinfo,
						Environ:   fmt.Sprintf("HOSTNAME=train-%d\x00", pid),
						Namespace: "ml",
						UTS:       fmt.Sprintf("uts:[%d]", 4026532000+pid),
					})
					ps = append(ps, nvml.ProcessInfo{Pid: pid, UsedGpuMemory: gib})
					us = append(us, nvml.ProcessUtilizationSample{Pid: pid, SmUtil: 40, MemUtil: 10})
				}
				d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return ps, nvml.SUCCESS }
				d.GetProcessUtilizationFunc = func(last uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
					for k := range us { // reads of one GPU never overlap
						us[k].TimeStamp = last + 1
					}
					return us, nvml.SUCCESS
				}
			}
			c := newCollector(b, bx, gpumon.WithProcessMetrics(), gpumon.WithProcRoot(proc.Root()))
			ch := make(chan prometheus.Metric, 1024)
			if n := collectOnce(c, ch); n < 8*25+32*5 {
				b.Fatalf("first scrape: %d series", n)
			}
			b.ReportAllocs()
			for b.Loop() {
				if collectOnce(c, ch) < 8*25+32*5 {
					b.Fatal("short scrape")
				}
			}
		})
	}
}

// BenchmarkCollectCached is the same scrape served from the cache
// (WithCacheTTL): the cost of the collector itself without NVML.
func BenchmarkCollectCached(b *testing.B) {
	c := newCollector(b, benchBox(b), gpumon.WithCacheTTL(time.Hour))
	ch := make(chan prometheus.Metric, 1024)
	collectOnce(c, ch)
	b.ReportAllocs()
	for b.Loop() {
		if collectOnce(c, ch) < 8*25 {
			b.Fatal("short scrape")
		}
	}
}

// benchBoxN is benchBox with n GPUs (more than the mock's 8: the extra
// devices are made like the mock's own).
func benchBoxN(b *testing.B, n int) *box {
	if n <= 8 {
		bx := benchBox(b)
		bx.devs = bx.devs[:n]
		bx.DeviceGetCountFunc = func() (int, nvml.Return) { return n, nvml.SUCCESS }
		return bx
	}
	bx := benchBox(b)
	for i := 8; i < n; i++ {
		d := dgxa100.NewDevice(i)
		fillDevice(d, i)
		bx.devs = append(bx.devs, d)
	}
	bx.DeviceGetCountFunc = func() (int, nvml.Return) { return n, nvml.SUCCESS }
	bx.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < 0 || i >= n {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		return bx.devs[i], nvml.SUCCESS
	}
	return bx
}

// BenchmarkScrape is one scrape (Collect, drained) of 8 and of 64 mocked
// GPUs next to its floor, the same NVML calls made directly on the same
// mocks ("baseline-mock-reads"). go-nvml's moq mocks record every call, so
// their cost grows with the records: the collect run times the floor again
// on its own mocks after its loop, as many times, and reports the ratio
// ("x-mock-reads"). Its allocations should not grow with the number of
// series (gpusim's TestCollectAllocsIndependentOfGPUs checks it without
// the mocks' own).
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{8, 64} {
		b.Run(fmt.Sprintf("gpus=%d", n), func(b *testing.B) {
			b.Run("baseline-mock-reads", func(b *testing.B) {
				bx := benchBoxN(b, n)
				b.ReportAllocs()
				var sink uint64
				for b.Loop() {
					sink += mockReads(bx)
				}
				_ = sink
			})
			b.Run("collect", func(b *testing.B) {
				bx := benchBoxN(b, n)
				c := newCollector(b, bx)
				ch := make(chan prometheus.Metric, 64*64)
				collectOnce(c, ch)
				b.ReportAllocs()
				for b.Loop() {
					if collectOnce(c, ch) < n*25 {
						b.Fatal("short scrape")
					}
				}
				b.StopTimer()
				start := time.Now()
				var sink uint64
				for range b.N {
					sink += mockReads(bx)
				}
				_ = sink
				floor := time.Since(start)
				b.ReportMetric(float64(b.Elapsed())/float64(floor), "x-mock-reads")
				if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="timeout"} 0
`), "gpumon_collect_errors_total"); err != nil {
					b.Fatalf("the scrapes counted errors: %v", err)
				}
			})
		})
	}
}

// mockReads makes the NVML calls of one scrape of bx's GPUs directly: the
// calls the collector makes with default names on this mock.
func mockReads(bx *box) uint64 {
	var sink uint64
	var fv [1]nvml.FieldValue // gpumon keeps one such buffer per device
	for _, d := range bx.devs {
		u, _ := d.GetUtilizationRates()
		m, _ := d.GetMemoryInfo_v2()
		enc, _, _ := d.GetEncoderUtilization()
		dec, _, _ := d.GetDecoderUtilization()
		sink += uint64(enc + dec)
		t, _ := d.GetTemperature(nvml.TEMPERATURE_GPU)
		p, _ := d.GetPowerUsage()
		l, _ := d.GetEnforcedPowerLimit()
		e, _ := d.GetTotalEnergyConsumption()
		sm, _ := d.GetClockInfo(nvml.CLOCK_SM)
		mc, _ := d.GetClockInfo(nvml.CLOCK_MEM)
		f, _ := d.GetFanSpeed()
		r, _ := d.GetPcieReplayCounter()
		cr, _ := d.GetCurrentClocksEventReasons()
		e1, _ := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC)
		e2, _ := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
		fv[0] = nvml.FieldValue{FieldId: nvml.FI_DEV_MEMORY_TEMP}
		_ = d.GetFieldValues(fv[:])
		rc, ru, _, _, _ := d.GetRemappedRows()
		sink += uint64(u.Gpu) + m.Used + uint64(t+p+l+sm+mc+f) + e + uint64(r) + cr + e1 + e2
		sink += uint64(fv[0].Value[0]) + uint64(rc+ru)
	}
	return sink
}

// BenchmarkMockReads is the baseline: the NVML calls of one scrape of the
// same 8 mocked GPUs (mockReads), made directly, without building any metric.
func BenchmarkMockReads(b *testing.B) {
	bx := benchBox(b)
	var sink uint64
	b.ReportAllocs()
	for b.Loop() {
		sink += mockReads(bx)
	}
	_ = sink
}

// BenchmarkGather is a whole scrape through a registry, as promhttp does it
// (Gather, without text encoding), for scale.
func BenchmarkGather(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(b, benchBox(b)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollectSampled is BenchmarkCollect with everything the
// background sampler adds, on 8 mocked H100s (hopperBox's GPUs: GPM, 3
// NVLinks of which 2 active, GPU 1 in MIG mode with 2 instances): the
// scrape sends the sampler's last values besides the fresh NVML read.
// BenchmarkCollect is its baseline.
func BenchmarkCollectSampled(b *testing.B) {
	bx, _ := hopperize(benchBox(b))
	c := newCollector(b, bx, gpumon.WithSampleInterval(time.Hour))
	if err := gpumon.SampleNow(c); err != nil {
		b.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if collectOnce(c, ch) < 8*(25+9+3+8) {
			b.Fatal("short scrape")
		}
	}
}

// BenchmarkCollectSampledNVLinkPerGPU is BenchmarkCollectSampled with
// WithNVLinkPerLink(false): each GPU's 3 links' 21 NVLink series become 7
// per-GPU sums.
func BenchmarkCollectSampledNVLinkPerGPU(b *testing.B) {
	bx, _ := hopperize(benchBox(b))
	c := newCollector(b, bx, gpumon.WithSampleInterval(time.Hour), gpumon.WithNVLinkPerLink(false))
	if err := gpumon.SampleNow(c); err != nil {
		b.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if collectOnce(c, ch) < 8*(25+9+7) {
			b.Fatal("short scrape")
		}
	}
}

// BenchmarkSamplerRound is one round of the background sampler over the
// same 8 mocked H100s (GPM samples and metrics, NVLink state, counters and
// errors, MIG memory and GPM): its cost per second is this times the
// rounds per second (1 at the default interval). The mocks' own cost is in
// it; real NVML calls cost more (see docs/gpumon.md).
func BenchmarkSamplerRound(b *testing.B) {
	bx, _ := hopperize(benchBox(b))
	c := newCollector(b, bx, gpumon.WithSampleInterval(time.Hour))
	if err := gpumon.SampleNow(c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := gpumon.SampleNow(c); err != nil {
			b.Fatal(err)
		}
	}
}
