//go:build cgo

package gpumon_test

import (
	"encoding/binary"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modeltel/modeltel/gpumon"
	"github.com/modeltel/modeltel/internal/testkit"
)

// gpmSample is a mocked GPM sample: what the driver's counters were at a
// moment, as a recorded sample holds them. GpmMetricsGet (gpmMetrics)
// turns two of them into rates, as NVML does.
type gpmSample struct {
	t        float64 // seconds
	cycles   float64 // elapsed SM cycles
	smActive float64 // SM cycles with a warp
	warps    float64 // resident warp-cycles over the warp slots' (occupancy)
	gr       float64 // graphics engine busy cycles
	tensor   float64 // tensor pipe busy cycles
	dram     float64 // DRAM busy cycles
	pcieTX   float64 // bytes
	pcieRX   float64
	nvlTX    float64
	nvlRX    float64
	freed    bool
}

func (s *gpmSample) Free() nvml.Return                   { s.freed = true; return nvml.SUCCESS }
func (s *gpmSample) Get(nvml.Device) nvml.Return         { return nvml.ERROR_NOT_SUPPORTED }
func (s *gpmSample) MigGet(nvml.Device, int) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }

// gpmStep is the change between two consecutive recorded samples of one GPU
// (or instance): 1 s and 1e9 cycles apart, with these fractions busy and
// these bytes moved.
type gpmStep struct {
	sm, occ, gr, tensor, dram    float64 // fractions
	pcieTX, pcieRX, nvlTX, nvlRX float64 // bytes in the second
}

// record fills s with the k-th sample of a counter that advances by st per
// sample.
func record(s nvml.GpmSample, k int, st gpmStep) {
	g := s.(*gpmSample)
	f := float64(k)
	*g = gpmSample{
		t: f, cycles: 1e9 * f, smActive: 1e9 * f * st.sm, warps: 1e9 * f * st.occ, gr: 1e9 * f * st.gr,
		tensor: 1e9 * f * st.tensor, dram: 1e9 * f * st.dram,
		pcieTX: f * st.pcieTX, pcieRX: f * st.pcieRX, nvlTX: f * st.nvlTX, nvlRX: f * st.nvlRX,
	}
}

// gpmMetrics is GpmMetricsGet over two mocked samples.
func gpmMetrics(m *nvml.GpmMetricsGetType) nvml.Return {
	a, ok1 := m.Sample1.(*gpmSample)
	b, ok2 := m.Sample2.(*gpmSample)
	if !ok1 || !ok2 || b.t <= a.t {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	dt, dc := b.t-a.t, b.cycles-a.cycles
	for k := range m.NumMetrics {
		x := &m.Metrics[k]
		x.NvmlReturn = uint32(nvml.SUCCESS)
		switch nvml.GpmMetricId(x.MetricId) {
		case nvml.GPM_METRIC_SM_UTIL:
			x.Value = 100 * (b.smActive - a.smActive) / dc
		case nvml.GPM_METRIC_SM_OCCUPANCY:
			x.Value = 100 * (b.warps - a.warps) / dc
		case nvml.GPM_METRIC_GRAPHICS_UTIL:
			x.Value = 100 * (b.gr - a.gr) / dc
		case nvml.GPM_METRIC_ANY_TENSOR_UTIL:
			x.Value = 100 * (b.tensor - a.tensor) / dc
		case nvml.GPM_METRIC_DRAM_BW_UTIL:
			x.Value = 100 * (b.dram - a.dram) / dc
		case nvml.GPM_METRIC_PCIE_TX_PER_SEC:
			x.Value = (b.pcieTX - a.pcieTX) / dt / (1 << 20)
		case nvml.GPM_METRIC_PCIE_RX_PER_SEC:
			x.Value = (b.pcieRX - a.pcieRX) / dt / (1 << 20)
		case nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC:
			x.Value = (b.nvlTX - a.nvlTX) / dt / (1 << 20)
		case nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC:
			x.Value = (b.nvlRX - a.nvlRX) / dt / (1 << 20)
		default:
			x.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
		}
	}
	return nvml.SUCCESS
}

// hopperBox is a 2-GPU box whose GPUs look like H100s to the sampler:
//
//	GPM on both: SM active 50%, occupancy 30%, graphics 60%, tensor 25%,
//	DRAM 40%, PCIe 2 GiB/s out and 1 GiB/s in, NVLink 8 GiB/s each way
//	NVLink: links 0 and 1 active, link 2 present but down; per link l the
//	data counters are TX 1000(l+1)n KiB, RX 500(l+1)n KiB at the n-th read
//	(timestamps n seconds), CRC flit errors l, replays 2l, CRC data and
//	recovery 0
//	GPU 1 in MIG mode: GPU instances 3 (1g.10gb) and 5 (3g.40gb), the second
//	listed twice (two compute instances); instance memory used gi GiB of
//	10 GiB; per-instance GPM tensor activity gi*10%.
func hopperBox(t testing.TB) (*box, *[]*gpmSample) { return hopperize(newBox(t, 2)) }

// hopperize gives b's GPUs hopperBox's GPM, NVLink and MIG answers.
func hopperize(b *box) (*box, *[]*gpmSample) {
	var samples []*gpmSample
	b.GpmSampleAllocFunc = func() (nvml.GpmSample, nvml.Return) {
		s := &gpmSample{}
		samples = append(samples, s)
		return s, nvml.SUCCESS
	}
	b.GpmSampleFreeFunc = func(s nvml.GpmSample) nvml.Return { return s.Free() }
	b.GpmMetricsGetFunc = gpmMetrics
	for i, d := range b.devs {
		hopper(d, i)
	}
	return b, &samples
}

var gpuStep = gpmStep{sm: 0.5, occ: 0.3, gr: 0.6, tensor: 0.25, dram: 0.4,
	pcieTX: 2 << 30, pcieRX: 1 << 30, nvlTX: 8 << 30, nvlRX: 8 << 30}

func hopper(d *dgxa100.Device, i int) {
	d.GpmQueryDeviceSupportFunc = func() (nvml.GpmSupport, nvml.Return) {
		return nvml.GpmSupport{IsSupportedDevice: 1}, nvml.SUCCESS
	}
	n := 0
	d.GpmSampleGetFunc = func(s nvml.GpmSample) nvml.Return {
		n++
		record(s, n, gpuStep)
		return nvml.SUCCESS
	}
	migN := map[int]int{}
	d.GpmMigSampleGetFunc = func(gi int, s nvml.GpmSample) nvml.Return {
		migN[gi]++
		record(s, migN[gi], gpmStep{sm: 0.5, tensor: float64(gi) / 10})
		return nvml.SUCCESS
	}
	d.GetNvLinkStateFunc = func(l int) (nvml.EnableState, nvml.Return) {
		switch {
		case l < 2:
			return nvml.FEATURE_ENABLED, nvml.SUCCESS
		case l == 2:
			return nvml.FEATURE_DISABLED, nvml.SUCCESS
		}
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	memTemp := d.GetFieldValuesFunc
	nvl := 0 // NVLink counter reads: the counters advance by one step per read, 1 s apart
	d.GetFieldValuesFunc = func(values []nvml.FieldValue) nvml.Return {
		if len(values) > 1 {
			nvl++
		}
		for k := range values {
			v := &values[k]
			switch v.FieldId {
			case nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX, nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX:
				x := 1000 * uint64(v.ScopeId+1) * uint64(nvl)
				v.Timestamp = int64(nvl) * 1e6
				if v.FieldId == nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX {
					x /= 2
				}
				v.ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG)
				v.NvmlReturn = uint32(nvml.SUCCESS)
				binary.NativeEndian.PutUint64(v.Value[:], x)
			default:
				_ = memTemp(values[k : k+1])
			}
		}
		return nvml.SUCCESS
	}
	d.GetNvLinkErrorCounterFunc = func(l int, c nvml.NvLinkErrorCounter) (uint64, nvml.Return) {
		switch c {
		case nvml.NVLINK_ERROR_DL_CRC_FLIT:
			return uint64(l), nvml.SUCCESS
		case nvml.NVLINK_ERROR_DL_REPLAY:
			return uint64(2 * l), nvml.SUCCESS
		}
		return 0, nvml.SUCCESS
	}
	if i != 1 {
		return
	}
	d.MigMode = nvml.DEVICE_MIG_ENABLE
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	gis := []int{3, 5, 5}
	d.GetMigDeviceHandleByIndexFunc = func(k int) (nvml.Device, nvml.Return) {
		if k >= len(gis) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		gi := gis[k]
		return &mock.Device{
			GetGpuInstanceIdFunc: func() (int, nvml.Return) { return gi, nvml.SUCCESS },
			GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
				return nvml.Memory{Total: 10 * gib, Used: uint64(gi) * gib, Free: uint64(10-gi) * gib}, nvml.SUCCESS
			},
		}, nvml.SUCCESS
	}
	d.GetGpuInstanceByIdFunc = func(gi int) (nvml.GpuInstance, nvml.Return) {
		profile := uint32(nvml.GPU_INSTANCE_PROFILE_1_SLICE)
		if gi == 5 {
			profile = nvml.GPU_INSTANCE_PROFILE_3_SLICE
		}
		return &mock.GpuInstance{GetInfoFunc: func() (nvml.GpuInstanceInfo, nvml.Return) {
			return nvml.GpuInstanceInfo{Id: uint32(gi), ProfileId: profile}, nvml.SUCCESS
		}}, nvml.SUCCESS
	}
	d.GetGpuInstanceProfileInfoFunc = func(p int) (nvml.GpuInstanceProfileInfo, nvml.Return) {
		switch p {
		case nvml.GPU_INSTANCE_PROFILE_1_SLICE:
			return nvml.GpuInstanceProfileInfo{Id: uint32(p), SliceCount: 1, MemorySizeMB: 9856}, nvml.SUCCESS
		case nvml.GPU_INSTANCE_PROFILE_3_SLICE:
			return nvml.GpuInstanceProfileInfo{Id: uint32(p), SliceCount: 3, MemorySizeMB: 40192}, nvml.SUCCESS
		}
		return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_NOT_SUPPORTED
	}
}

// sampled builds a Collector over b with a sampler that makes one round at
// start and one when the test asks (SampleNow), so that GPM has its two
// samples.
func sampled(t *testing.T, b *box, opts ...gpumon.Option) *gpumon.Collector {
	t.Helper()
	c := newCollector(t, b, append([]gpumon.Option{gpumon.WithSampleInterval(time.Hour)}, opts...)...)
	if err := gpumon.SampleNow(c); err != nil {
		t.Fatal(err)
	}
	return c
}

const wantGPM = `
# HELP gpu_dram_active_ratio Fraction of the device memory bandwidth in use (GPM).
# TYPE gpu_dram_active_ratio gauge
gpu_dram_active_ratio{gpu="0",uuid="GPU-mock-0"} 0.4
gpu_dram_active_ratio{gpu="1",uuid="GPU-mock-1"} 0.4
# HELP gpu_graphics_engine_active_ratio Fraction of time the graphics or compute engine was active (GPM, Hopper and later).
# TYPE gpu_graphics_engine_active_ratio gauge
gpu_graphics_engine_active_ratio{gpu="0",uuid="GPU-mock-0"} 0.6
gpu_graphics_engine_active_ratio{gpu="1",uuid="GPU-mock-1"} 0.6
# HELP gpu_nvlink_receive_bytes_per_second NVLink traffic to the GPU over all its links (GPM).
# TYPE gpu_nvlink_receive_bytes_per_second gauge
gpu_nvlink_receive_bytes_per_second{gpu="0",uuid="GPU-mock-0"} 8.589934592e+09
gpu_nvlink_receive_bytes_per_second{gpu="1",uuid="GPU-mock-1"} 8.589934592e+09
# HELP gpu_nvlink_transmit_bytes_per_second NVLink traffic from the GPU over all its links (GPM).
# TYPE gpu_nvlink_transmit_bytes_per_second gauge
gpu_nvlink_transmit_bytes_per_second{gpu="0",uuid="GPU-mock-0"} 8.589934592e+09
gpu_nvlink_transmit_bytes_per_second{gpu="1",uuid="GPU-mock-1"} 8.589934592e+09
# HELP gpu_pcie_receive_bytes_per_second PCIe traffic to the GPU, headers included (GPM; else nvmlDeviceGetPcieThroughput, sampled in the background).
# TYPE gpu_pcie_receive_bytes_per_second gauge
gpu_pcie_receive_bytes_per_second{gpu="0",uuid="GPU-mock-0"} 1.073741824e+09
gpu_pcie_receive_bytes_per_second{gpu="1",uuid="GPU-mock-1"} 1.073741824e+09
# HELP gpu_pcie_transmit_bytes_per_second PCIe traffic from the GPU, headers included (GPM; else nvmlDeviceGetPcieThroughput, sampled in the background).
# TYPE gpu_pcie_transmit_bytes_per_second gauge
gpu_pcie_transmit_bytes_per_second{gpu="0",uuid="GPU-mock-0"} 2.147483648e+09
gpu_pcie_transmit_bytes_per_second{gpu="1",uuid="GPU-mock-1"} 2.147483648e+09
# HELP gpu_sm_active_ratio Fraction of SM cycles with at least one warp assigned, averaged over the SMs (GPM).
# TYPE gpu_sm_active_ratio gauge
gpu_sm_active_ratio{gpu="0",uuid="GPU-mock-0"} 0.5
gpu_sm_active_ratio{gpu="1",uuid="GPU-mock-1"} 0.5
# HELP gpu_sm_occupancy_ratio Fraction of the SMs' warp slots with a resident warp (GPM).
# TYPE gpu_sm_occupancy_ratio gauge
gpu_sm_occupancy_ratio{gpu="0",uuid="GPU-mock-0"} 0.3
gpu_sm_occupancy_ratio{gpu="1",uuid="GPU-mock-1"} 0.3
# HELP gpu_tensor_pipe_active_ratio Fraction of cycles any tensor pipe was active (GPM).
# TYPE gpu_tensor_pipe_active_ratio gauge
gpu_tensor_pipe_active_ratio{gpu="0",uuid="GPU-mock-0"} 0.25
gpu_tensor_pipe_active_ratio{gpu="1",uuid="GPU-mock-1"} 0.25
`

var gpmNames = []string{
	"gpu_dram_active_ratio", "gpu_graphics_engine_active_ratio", "gpu_nvlink_receive_bytes_per_second",
	"gpu_nvlink_transmit_bytes_per_second", "gpu_pcie_receive_bytes_per_second", "gpu_pcie_transmit_bytes_per_second",
	"gpu_sm_active_ratio", "gpu_sm_occupancy_ratio", "gpu_tensor_pipe_active_ratio",
}

// TestGPM: two recorded samples a known delta apart give the known rates,
// and before the second sample there is nothing to report.
func TestGPM(t *testing.T) {
	b, _ := hopperBox(t)
	c := newCollector(t, b, gpumon.WithSampleInterval(time.Hour))
	if err := gpumon.SampleNow(c); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(wantGPM), gpmNames...); err != nil {
		t.Error(err)
	}
	// A third sample: the rates are those of the last two samples.
	if err := gpumon.SampleNow(c); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(wantGPM), gpmNames...); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="timeout"} 0
# HELP gpumon_unsupported_gpus GPUs on which the feature is not available (GPU or driver without it); its series are absent for them.
# TYPE gpumon_unsupported_gpus gauge
gpumon_unsupported_gpus{feature="gpm"} 0
gpumon_unsupported_gpus{feature="nvlink"} 0
`), "gpumon_collect_errors_total", "gpumon_unsupported_gpus"); err != nil {
		t.Error(err)
	}
	testkit.Lint(t, c)
}

// TestGPMFirstRound: one sample gives no rate yet.
func TestGPMFirstRound(t *testing.T) {
	b, _ := hopperBox(t)
	b.GpmMetricsGetFunc = func(*nvml.GpmMetricsGetType) nvml.Return {
		t.Error("GpmMetricsGet with one sample")
		return nvml.ERROR_UNKNOWN
	}
	c := newCollector(t, b, gpumon.WithSampleInterval(time.Hour))
	for deadline := time.Now().Add(5 * time.Second); testutil.CollectAndCount(c, "gpu_nvlink_active") == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := testutil.CollectAndCount(c, gpmNames...); n != 0 {
		t.Errorf("%d GPM series after one sample, want 0", n)
	}
}

// TestSamplerUnsupported: GPUs without GPM, NVLink, PCIe throughput or MIG (the
// plain A100 mock, whose funcs for them are not even set) have none of
// those series, no error, gpu_up 1, and are counted once.
func TestSamplerUnsupported(t *testing.T) {
	c := sampled(t, newBox(t, 2))
	if n := testutil.CollectAndCount(c, append(gpmNames, "gpu_nvlink_active", "gpu_nvlink_errors_total", "gpu_mig_memory_used_bytes")...); n != 0 {
		t.Errorf("%d series of unsupported features", n)
	}
	want := `
# HELP gpu_up 1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.
# TYPE gpu_up gauge
gpu_up{gpu="0",uuid="GPU-mock-0"} 1
gpu_up{gpu="1",uuid="GPU-mock-1"} 1
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="timeout"} 0
# HELP gpumon_unsupported_gpus GPUs on which the feature is not available (GPU or driver without it); its series are absent for them.
# TYPE gpumon_unsupported_gpus gauge
gpumon_unsupported_gpus{feature="gpm"} 2
gpumon_unsupported_gpus{feature="nvlink"} 2
gpumon_unsupported_gpus{feature="pcie_throughput"} 2
`
	for range 3 { // counted once, not per round
		if err := gpumon.SampleNow(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_up", "gpumon_collect_errors_total", "gpumon_unsupported_gpus"); err != nil {
		t.Error(err)
	}
}

// TestPCIeFallback: without GPM, PCIe throughput comes from
// nvmlDeviceGetPcieThroughput (KB/s), called by the sampler only.
func TestPCIeFallback(t *testing.T) {
	b := newBox(t, 1)
	var scraping bool
	b.devs[0].GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
		if scraping {
			t.Error("GetPcieThroughput called in a scrape")
		}
		if c == nvml.PCIE_UTIL_TX_BYTES {
			return 1000, nvml.SUCCESS
		}
		return 500, nvml.SUCCESS
	}
	c := sampled(t, b)
	want := `
# HELP gpu_pcie_receive_bytes_per_second PCIe traffic to the GPU, headers included (GPM; else nvmlDeviceGetPcieThroughput, sampled in the background).
# TYPE gpu_pcie_receive_bytes_per_second gauge
gpu_pcie_receive_bytes_per_second{gpu="0",uuid="GPU-mock-0"} 512000
# HELP gpu_pcie_transmit_bytes_per_second PCIe traffic from the GPU, headers included (GPM; else nvmlDeviceGetPcieThroughput, sampled in the background).
# TYPE gpu_pcie_transmit_bytes_per_second gauge
gpu_pcie_transmit_bytes_per_second{gpu="0",uuid="GPU-mock-0"} 1.024e+06
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_pcie_receive_bytes_per_second", "gpu_pcie_transmit_bytes_per_second"); err != nil {
		t.Error(err)
	}
}

const wantNVLink = `
# HELP gpu_nvlink_active 1 when the NVLink link is active, else 0 (links the GPU has).
# TYPE gpu_nvlink_active gauge
gpu_nvlink_active{gpu="0",link="0",uuid="GPU-mock-0"} 1
gpu_nvlink_active{gpu="0",link="1",uuid="GPU-mock-0"} 1
gpu_nvlink_active{gpu="0",link="2",uuid="GPU-mock-0"} 0
# HELP gpu_nvlink_errors_total NVLink data-link errors on the link by type: crc_flit, crc_data, replay, recovery (active links).
# TYPE gpu_nvlink_errors_total counter
gpu_nvlink_errors_total{gpu="0",link="0",type="crc_data",uuid="GPU-mock-0"} 0
gpu_nvlink_errors_total{gpu="0",link="0",type="crc_flit",uuid="GPU-mock-0"} 0
gpu_nvlink_errors_total{gpu="0",link="0",type="recovery",uuid="GPU-mock-0"} 0
gpu_nvlink_errors_total{gpu="0",link="0",type="replay",uuid="GPU-mock-0"} 0
gpu_nvlink_errors_total{gpu="0",link="1",type="crc_data",uuid="GPU-mock-0"} 0
gpu_nvlink_errors_total{gpu="0",link="1",type="crc_flit",uuid="GPU-mock-0"} 1
gpu_nvlink_errors_total{gpu="0",link="1",type="recovery",uuid="GPU-mock-0"} 0
gpu_nvlink_errors_total{gpu="0",link="1",type="replay",uuid="GPU-mock-0"} 2
# HELP gpu_nvlink_receive_bytes_total Data received over the NVLink link, payload only (NVML counter, active links).
# TYPE gpu_nvlink_receive_bytes_total counter
gpu_nvlink_receive_bytes_total{gpu="0",link="0",uuid="GPU-mock-0"} 1.024e+06
gpu_nvlink_receive_bytes_total{gpu="0",link="1",uuid="GPU-mock-0"} 2.048e+06
# HELP gpu_nvlink_transmit_bytes_total Data sent over the NVLink link, payload only (NVML counter, active links).
# TYPE gpu_nvlink_transmit_bytes_total counter
gpu_nvlink_transmit_bytes_total{gpu="0",link="0",uuid="GPU-mock-0"} 2.048e+06
gpu_nvlink_transmit_bytes_total{gpu="0",link="1",uuid="GPU-mock-0"} 4.096e+06
`

// TestNVLink: per-link state, field-value throughput counters (scopeId =
// link) and error counters, counters only for the active links.
func TestNVLink(t *testing.T) {
	b, _ := hopperBox(t)
	c := sampled(t, b)
	names := []string{"gpu_nvlink_active", "gpu_nvlink_errors_total", "gpu_nvlink_receive_bytes_total", "gpu_nvlink_transmit_bytes_total"}
	if err := testutil.CollectAndCompare(onlyGPU(c, "0"), strings.NewReader(wantNVLink), names...); err != nil {
		t.Error(err)
	}
}

const wantMIG = `
# HELP gpu_mig_memory_total_bytes Device memory of the MIG GPU instance.
# TYPE gpu_mig_memory_total_bytes gauge
gpu_mig_memory_total_bytes{gpu="1",gpu_instance="3",gpu_instance_profile="1g.10gb",uuid="GPU-mock-1"} 1.073741824e+10
gpu_mig_memory_total_bytes{gpu="1",gpu_instance="5",gpu_instance_profile="3g.40gb",uuid="GPU-mock-1"} 1.073741824e+10
# HELP gpu_mig_memory_used_bytes Device memory in use in the MIG GPU instance.
# TYPE gpu_mig_memory_used_bytes gauge
gpu_mig_memory_used_bytes{gpu="1",gpu_instance="3",gpu_instance_profile="1g.10gb",uuid="GPU-mock-1"} 3.221225472e+09
gpu_mig_memory_used_bytes{gpu="1",gpu_instance="5",gpu_instance_profile="3g.40gb",uuid="GPU-mock-1"} 5.36870912e+09
# HELP gpu_mig_tensor_pipe_active_ratio Fraction of cycles any tensor pipe of the MIG instance was active (GPM).
# TYPE gpu_mig_tensor_pipe_active_ratio gauge
gpu_mig_tensor_pipe_active_ratio{gpu="1",gpu_instance="3",gpu_instance_profile="1g.10gb",uuid="GPU-mock-1"} 0.3
gpu_mig_tensor_pipe_active_ratio{gpu="1",gpu_instance="5",gpu_instance_profile="3g.40gb",uuid="GPU-mock-1"} 0.5
`

// TestMIG: a GPU in MIG mode reports memory and GPM activity per GPU
// instance (once per instance, whatever its compute instances).
func TestMIG(t *testing.T) {
	b, _ := hopperBox(t)
	c := sampled(t, b)
	names := []string{"gpu_mig_memory_total_bytes", "gpu_mig_memory_used_bytes", "gpu_mig_tensor_pipe_active_ratio"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(wantMIG), names...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "gpu_mig_sm_active_ratio"); n != 2 {
		t.Errorf("gpu_mig_sm_active_ratio: %d series, want 2", n)
	}
}

// TestDCGMNamesSampler: with DCGM names the series are dcgm-exporter's:
// DCGM_FI_PROF_* per GPU and per MIG instance (GPU_I_ID, GPU_I_PROFILE),
// instance memory as DCGM_FI_DEV_FB_USED in MiB, NVLink totals per GPU.
func TestDCGMNamesSampler(t *testing.T) {
	b, _ := hopperBox(t)
	c := sampled(t, b, gpumon.WithDCGMNames(), gpumon.WithHostname("node1"))
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	l0 := `DCGM_FI_DRIVER_VERSION="550.54.15",GPU_I_ID="",GPU_I_PROFILE="",Hostname="node1",UUID="GPU-mock-0",device="nvidia0",gpu="0",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:00:00.0"`
	l1 := `DCGM_FI_DRIVER_VERSION="550.54.15",GPU_I_ID="",GPU_I_PROFILE="",Hostname="node1",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"`
	i3 := `DCGM_FI_DRIVER_VERSION="550.54.15",GPU_I_ID="3",GPU_I_PROFILE="1g.10gb",Hostname="node1",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"`
	i5 := `DCGM_FI_DRIVER_VERSION="550.54.15",GPU_I_ID="5",GPU_I_PROFILE="3g.40gb",Hostname="node1",UUID="GPU-mock-1",device="nvidia1",gpu="1",modelName="Mock NVIDIA A100-SXM4-40GB",pci_bus_id="0000:01:00.0"`
	want := `
# HELP DCGM_FI_PROF_PIPE_TENSOR_ACTIVE Ratio of cycles the tensor (HMMA) pipe is active.
# TYPE DCGM_FI_PROF_PIPE_TENSOR_ACTIVE gauge
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{` + l0 + `} 0.25
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{` + l1 + `} 0.25
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{` + i3 + `} 0.3
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{` + i5 + `} 0.5
# HELP DCGM_FI_PROF_PCIE_TX_BYTES The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.
# TYPE DCGM_FI_PROF_PCIE_TX_BYTES gauge
DCGM_FI_PROF_PCIE_TX_BYTES{` + l0 + `} 2.147483648e+09
DCGM_FI_PROF_PCIE_TX_BYTES{` + l1 + `} 2.147483648e+09
# HELP DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL Total number of NVLink bandwidth counters for all lanes
# TYPE DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL counter
DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL{` + l0 + `} 4.608
DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL{` + l1 + `} 4.608
# HELP DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL Total number of NVLink retries.
# TYPE DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL counter
DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL{` + l0 + `} 2
DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL{` + l1 + `} 2
`
	names := []string{"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_PCIE_TX_BYTES", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Instance memory is FB_USED in MiB with the instance's labels.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var inst int
	for _, mf := range mfs {
		if mf.GetName() != "DCGM_FI_DEV_FB_USED" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "GPU_I_ID" && l.GetValue() == "5" {
					inst++
					if v := m.GetGauge().GetValue(); v != 5*1024 {
						t.Errorf("FB_USED of instance 5 = %v MiB, want 5120", v)
					}
				}
			}
		}
	}
	if inst != 1 {
		t.Errorf("%d FB_USED series of instance 5, want 1", inst)
	}
	// dcgm-exporter's names fail the lint by design (no _total, camelCase
	// labels); the native names are linted in TestGPM.
}

// TestSamplerClose: Close stops the sampler goroutine and frees the GPM
// samples; no goroutine is left behind.
func TestSamplerClose(t *testing.T) {
	before := runtime.NumGoroutine()
	b, samples := hopperBox(t)
	c, err := gpumon.New(gpumon.WithNVML(b), gpumon.WithSampleInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := gpumon.SampleNow(c); err != nil {
		t.Fatal(err)
	}
	if !gpumon.SamplerRunning(c) {
		t.Fatal("no sampler running")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if gpumon.SamplerRunning(c) {
		t.Error("sampler still running after Close")
	}
	for k, s := range *samples {
		if !s.freed {
			t.Errorf("GPM sample %d not freed", k)
		}
	}
	if n := testutil.CollectAndCount(c, gpmNames...); n != 0 {
		t.Errorf("%d GPM series after Close", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before New", n, before)
	}
}

// TestSamplerDisabled: a negative interval starts no sampler.
func TestSamplerDisabled(t *testing.T) {
	b, _ := hopperBox(t)
	c := newCollector(t, b, gpumon.WithSampleInterval(-1))
	if gpumon.SamplerRunning(c) {
		t.Error("sampler running")
	}
	if n := testutil.CollectAndCount(c, append(gpmNames, "gpumon_unsupported_gpus", "gpu_nvlink_active")...); n != 0 {
		t.Errorf("%d sampler series", n)
	}
}

// TestVGPULicense: where NVML reports vGPU licensing, the licence state;
// elsewhere (the A100 mock without the func, like bare metal) nothing.
func TestVGPULicense(t *testing.T) {
	b := newBox(t, 2)
	b.devs[1].GetGridLicensableFeaturesFunc = func() (nvml.GridLicensableFeatures, nvml.Return) {
		var f nvml.GridLicensableFeatures
		f.IsGridLicenseSupported, f.LicensableFeaturesCount = 1, 1
		f.GridLicensableFeatures[0] = nvml.GridLicensableFeature{FeatureCode: uint32(nvml.GRID_LICENSE_FEATURE_CODE_VGPU), FeatureState: 1}
		return f, nvml.SUCCESS
	}
	c := sampled(t, b)
	want := `
# HELP gpu_vgpu_licensed 1 when the GPU's vGPU licence is active, else 0 (only where NVML reports vGPU licensing).
# TYPE gpu_vgpu_licensed gauge
gpu_vgpu_licensed{gpu="1",uuid="GPU-mock-1"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpu_vgpu_licensed"); err != nil {
		t.Error(err)
	}
	d := sampled(t, b, gpumon.WithDCGMNames())
	if n := testutil.CollectAndCount(d, "DCGM_FI_DEV_VGPU_LICENSE_STATUS"); n != 1 {
		t.Errorf("DCGM_FI_DEV_VGPU_LICENSE_STATUS: %d series, want 1", n)
	}
}

// TestSamplerLostGPU: a GPU that falls off the bus after New costs one
// counted error per round, not one per NVLink call, and the other GPU's
// values go on.
func TestSamplerLostGPU(t *testing.T) {
	b, _ := hopperBox(t)
	c := sampled(t, b)
	lost := func() nvml.Return { return nvml.ERROR_GPU_IS_LOST }
	d := b.devs[0]
	d.GpmSampleGetFunc = func(nvml.GpmSample) nvml.Return { return lost() }
	d.GetNvLinkStateFunc = func(int) (nvml.EnableState, nvml.Return) { return 0, lost() }
	d.GetNvLinkErrorCounterFunc = func(int, nvml.NvLinkErrorCounter) (uint64, nvml.Return) { return 0, lost() }
	d.GetFieldValuesFunc = func([]nvml.FieldValue) nvml.Return { return lost() }
	for range 3 {
		if err := gpumon.SampleNow(c); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="GetFieldValues"} 1
gpumon_collect_errors_total{call="GpmSampleGet"} 3
gpumon_collect_errors_total{call="timeout"} 0
`
	// GpmSampleGet: the sampler, once per round; GetFieldValues: this
	// scrape's own read (the memory temperature), which stops there.
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpumon_collect_errors_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(onlyGPU(c, "1"), "gpu_tensor_pipe_active_ratio"); n != 1 {
		t.Errorf("gpu 1: %d tensor series, want 1", n)
	}
	if n := testutil.CollectAndCount(onlyGPU(c, "0"), "gpu_tensor_pipe_active_ratio", "gpu_nvlink_active"); n != 0 {
		t.Errorf("lost gpu 0: %d sampler series, want 0", n)
	}
}

// TestGPMRefused: a GPU whose GPM sampling answers NO_PERMISSION is counted
// once, not every round, and falls back to GetPcieThroughput for PCIe.
func TestGPMRefused(t *testing.T) {
	b, _ := hopperBox(t)
	b.devs[0].GpmSampleGetFunc = func(nvml.GpmSample) nvml.Return { return nvml.ERROR_NO_PERMISSION }
	b.devs[0].GetPcieThroughputFunc = func(nvml.PcieUtilCounter) (uint32, nvml.Return) { return 10, nvml.SUCCESS }
	c := sampled(t, b)
	for range 3 {
		if err := gpumon.SampleNow(c); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP gpumon_collect_errors_total NVML calls that failed (other than not supported), by call; call="timeout" counts scrapes that gave up waiting for NVML.
# TYPE gpumon_collect_errors_total counter
gpumon_collect_errors_total{call="GpmSampleGet"} 1
gpumon_collect_errors_total{call="timeout"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "gpumon_collect_errors_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(filteredName(onlyGPU(c, "0"), "gpu_pcie_transmit_bytes_per_second")); got != 10240 {
		t.Errorf("gpu 0 PCIe TX = %v, want 10240 (GetPcieThroughput)", got)
	}
}

// TestSamplerSkipsHungGPU: a GPU whose scrape read hangs past the scrape
// timeout is left out of the sampler's rounds (its values go stale), so the
// other GPUs' values go on.
func TestSamplerSkipsHungGPU(t *testing.T) {
	b, _ := hopperBox(t)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	c := sampled(t, b, gpumon.WithScrapeTimeout(20*time.Millisecond))
	var hangs atomic.Bool
	hangs.Store(true)
	power := b.devs[0].GetPowerUsageFunc
	b.devs[0].GetPowerUsageFunc = func() (uint32, nvml.Return) {
		if hangs.Load() {
			<-release
		}
		return power()
	}
	var sampled0 atomic.Int32
	b.devs[0].GpmSampleGetFunc = func(s nvml.GpmSample) nvml.Return { sampled0.Add(1); return nvml.ERROR_UNKNOWN }
	testutil.CollectAndCount(c, "gpu_up") // starts gpu 0's read, which hangs
	time.Sleep(40 * time.Millisecond)
	for range 2 {
		if err := gpumon.SampleNow(c); err != nil {
			t.Fatal(err)
		}
	}
	if n := sampled0.Load(); n != 0 {
		t.Errorf("the sampler called the hung gpu 0 %d times", n)
	}
	if n := testutil.CollectAndCount(onlyGPU(c, "1"), "gpu_tensor_pipe_active_ratio"); n != 1 {
		t.Errorf("gpu 1: %d tensor series, want 1", n)
	}
	hangs.Store(false)
	unblock()
}
