//go:build cgo

package gpumon

import (
	"slices"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// field is one per-device value read from NVML at scrape time. Values are
// kept in NVML's units (%, bytes, °C, mW, mJ, MHz) and converted by the
// metric set in use.
type field int

const (
	fUtil field = iota
	fMemUtil
	fMemUsed
	fMemFree
	fMemTotal
	fTemp
	fPower
	fPowerLimit
	fEnergy
	fSMClock
	fMemClock
	fFan
	fPCIeReplay
	fEncUtil
	fDecUtil
	fMemReserved // GetMemoryInfo_v2; DCGM names only
	fMemTemp     // NVML field value NVML_FI_DEV_MEMORY_TEMP
	fRemapCorr   // GetRemappedRows: rows remapped for correctable errors
	fRemapUnc    // GetRemappedRows: rows remapped for uncorrectable errors
	fRemapPend   // GetRemappedRows: a remapping waits for a GPU reset (0/1)
	fRemapFail   // GetRemappedRows: a remapping has failed (0/1)
	numFields
)

type fieldDef struct {
	desc *prometheus.Desc // nil: not emitted (nor read) with this metric set
	typ  prometheus.ValueType
	conv func(uint64) float64
}

func ident(v uint64) float64   { return float64(v) }
func percent(v uint64) float64 { return float64(v) / 100 }
func milli(v uint64) float64   { return float64(v) / 1000 }
func mega(v uint64) float64    { return float64(v) * 1e6 }
func mib(v uint64) float64     { return float64(v >> 20) }

// clockReasons are the bits of nvmlDeviceGetCurrentClocksEventReasons, with
// the reason label of gpu_clock_event_active.
var clockReasons = [...]struct {
	bit  uint64
	name string
}{
	{nvml.ClocksEventReasonGpuIdle, "gpu_idle"},
	{nvml.ClocksEventReasonApplicationsClocksSetting, "applications_clocks_setting"},
	{nvml.ClocksEventReasonSwPowerCap, "sw_power_cap"},
	{nvml.ClocksThrottleReasonHwSlowdown, "hw_slowdown"},
	{nvml.ClocksEventReasonSyncBoost, "sync_boost"},
	{nvml.ClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown"},
	{nvml.ClocksThrottleReasonHwThermalSlowdown, "hw_thermal_slowdown"},
	{nvml.ClocksThrottleReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"},
	{nvml.ClocksEventReasonDisplayClockSetting, "display_clock_setting"},
}

// eccTypes are the type label values of gpu_ecc_errors_total and
// gpu_memory_remapped_rows_total, indexed by nvml.MemoryErrorType.
var eccTypes = [2]string{"corrected", "uncorrected"}

// remapFields are the fields of gpu_memory_remapped_rows_total, indexed like
// eccTypes.
var remapFields = [len(eccTypes)]field{fRemapCorr, fRemapUnc}

// metricSet is the descriptors of one naming scheme (default or DCGM), built
// once in New.
type metricSet struct {
	fields       [numFields]fieldDef
	up           *prometheus.Desc // gpu_up; nil with DCGM names
	info         *prometheus.Desc // gpu_info; nil with DCGM names
	clockEvent   *prometheus.Desc // nil with DCGM names
	ecc          *prometheus.Desc // nil with DCGM names
	remapped     *prometheus.Desc // gpu_memory_remapped_rows_total; nil with DCGM names
	proc         *procDescs       // per-process series; nil unless WithProcessMetrics
	xidLast      *prometheus.Desc // DCGM_FI_DEV_XID_ERRORS{...,err_code,err_msg}; nil with default names
	xidCounter   bool             // emit gpu_xid_errors_total
	simulated    bool             // gpu_info has simulated="true"
	eventReasons bool             // the driver has nvmlDeviceGetCurrentClocksEventReasons
	memoryV2     bool             // read memory with nvmlDeviceGetMemoryInfo_v2 (reserved apart from used)
	labels       *prometheus.Desc // template whose labels are the per-device ones
	dcgmMIG      bool             // DCGM labels include GPU_I_PROFILE and GPU_I_ID (mig.go)
}

// maxPerDevice is the most samples one device yields in either metric set
// (gpu_up, the fields, the clock reasons, ECC and remapped rows by type).
const maxPerDevice = 2 + int(numFields) + len(clockReasons) + 2*len(eccTypes)

var defaultLabels = []string{"gpu", "uuid"}

// dcgmLabels are dcgm-exporter's per-GPU labels. DCGM_FI_DRIVER_VERSION is
// the label field of its default counters (3.3 and later).
var dcgmLabels = []string{"gpu", "UUID", "device", "modelName", "Hostname", "pci_bus_id", "DCGM_FI_DRIVER_VERSION"}

// dcgmXIDLabels are the labels dcgm-exporter adds to DCGM_FI_DEV_XID_ERRORS:
// the XID as a number and its description (xidMessage).
var dcgmXIDLabels = append(append([]string(nil), dcgmLabels...), "err_code", "err_msg")

// newMetricSet builds the descriptors of the naming scheme cfg asks for.
// eventReasons and memoryV2 say whether the driver has
// nvmlDeviceGetCurrentClocksEventReasons and nvmlDeviceGetMemoryInfo_v2;
// simulated whether the library says its GPUs are simulated.
func newMetricSet(cfg config, eventReasons, memoryV2, simulated bool) *metricSet {
	s := &metricSet{eventReasons: eventReasons, simulated: simulated}
	g, ctr := prometheus.GaugeValue, prometheus.CounterValue
	if cfg.dcgmNames {
		labels := dcgmLabelNames(cfg)
		d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
		s.labels = d("gpumon_dcgm_labels", "template")
		s.fields = [numFields]fieldDef{
			fUtil:       {d("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."), g, ident},
			fMemUtil:    {d("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."), g, ident},
			fMemUsed:    {d("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."), g, mib},
			fMemFree:    {d("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."), g, mib},
			fTemp:       {d("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."), g, ident},
			fMemTemp:    {d("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C)."), g, ident},
			fPower:      {d("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."), g, milli},
			fEnergy:     {d("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ)."), ctr, ident},
			fSMClock:    {d("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."), g, ident},
			fMemClock:   {d("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."), g, ident},
			fPCIeReplay: {d("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries."), ctr, ident},
			fEncUtil:    {d("DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %)."), g, ident},
			fDecUtil:    {d("DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %)."), g, ident},
			// DCGM's FB_USED leaves the reserved memory out (it is
			// FB_RESERVED), as GetMemoryInfo_v2 does.
			fMemReserved: {d("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB)."), g, mib},
			fRemapUnc:    {d("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors"), ctr, ident},
			fRemapCorr:   {d("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors"), ctr, ident},
			fRemapFail:   {d("DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed"), g, ident},
		}
		s.memoryV2 = memoryV2
		s.xidLast = prometheus.NewDesc("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", append(slices.Clone(labels), dcgmXIDLabels[len(dcgmLabels):]...), nil)
		s.dcgmMIG = cfg.dcgmMIG
	} else {
		d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, defaultLabels, nil) }
		s.labels = d("gpumon_labels", "template")
		s.up = d("gpu_up", "1 when every NVML call for this GPU succeeded (or was not supported) in the last read, else 0.")
		infoLabels, infoHelp := []string{"gpu", "uuid", "name", "pci_bus_id", "driver_version"}, "GPU identity; always 1."
		if simulated {
			infoLabels = append(infoLabels, "simulated")
			infoHelp += " simulated=\"true\": the GPUs are simulated (gpumon/gpusim), not real."
		}
		s.info = prometheus.NewDesc("gpu_info", infoHelp, infoLabels, nil)
		s.clockEvent = prometheus.NewDesc("gpu_clock_event_active",
			"1 when the reason is currently reducing (or holding) the GPU clocks, else 0 (NVML clocks event reasons).",
			[]string{"gpu", "uuid", "reason"}, nil)
		s.ecc = prometheus.NewDesc("gpu_ecc_errors_total",
			"ECC errors since the driver loaded (volatile counters), by type.",
			[]string{"gpu", "uuid", "type"}, nil)
		s.remapped = prometheus.NewDesc("gpu_memory_remapped_rows_total",
			"Device memory rows remapped to spare rows, by the type of the error that caused it (kept across reboots).",
			[]string{"gpu", "uuid", "type"}, nil)
		s.xidCounter = true
		s.fields = [numFields]fieldDef{
			fUtil:       {d("gpu_utilization_ratio", "Fraction of the last sample period in which one or more kernels ran on the GPU."), g, percent},
			fMemUtil:    {d("gpu_memory_utilization_ratio", "Fraction of the last sample period in which device memory was being read or written."), g, percent},
			fMemUsed:    {d("gpu_memory_used_bytes", "Device memory in use."), g, ident},
			fMemFree:    {d("gpu_memory_free_bytes", "Device memory free."), g, ident},
			fMemTotal:   {d("gpu_memory_total_bytes", "Device memory installed."), g, ident},
			fTemp:       {d("gpu_temperature_celsius", "GPU core temperature."), g, ident},
			fPower:      {d("gpu_power_usage_watts", "Power drawn by the GPU and its memory."), g, milli},
			fPowerLimit: {d("gpu_power_limit_watts", "Power limit enforced on the GPU."), g, milli},
			fEnergy:     {d("gpu_energy_consumed_joules_total", "Energy consumed since the driver loaded."), ctr, milli},
			fSMClock:    {d("gpu_sm_clock_hertz", "Current SM clock."), g, mega},
			fMemClock:   {d("gpu_memory_clock_hertz", "Current memory clock."), g, mega},
			fFan:        {d("gpu_fan_speed_ratio", "Intended fan speed as a fraction of the maximum."), g, percent},
			fPCIeReplay: {d("gpu_pcie_replay_errors_total", "PCIe replays (link-level retransmissions) since the driver loaded."), ctr, ident},
			fMemTemp:    {d("gpu_memory_temperature_celsius", "Device memory temperature (absent where the GPU reports none)."), g, ident},
			fRemapPend:  {d("gpu_memory_row_remap_pending", "1 when a row remapping waits for the next GPU reset to take effect, else 0."), g, ident},
			fRemapFail:  {d("gpu_memory_row_remap_failed", "1 when a row remapping has failed (no spare row was left), else 0."), g, ident},
		}
	}
	if cfg.processMetrics {
		s.proc = newProcDescs()
	}
	return s
}

func (s *metricSet) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.up, s.info, s.clockEvent, s.ecc, s.remapped, s.xidLast} {
		if d != nil {
			ch <- d
		}
	}
	if s.proc != nil {
		s.proc.describe(ch)
	}
	for i := range s.fields {
		if d := s.fields[i].desc; d != nil {
			ch <- d
		}
	}
}

// wants reports whether any of the fields is emitted, i.e. worth an NVML call.
func (s *metricSet) wants(fs ...field) bool {
	for _, f := range fs {
		if s.fields[f].desc != nil {
			return true
		}
	}
	return false
}

// device is one GPU: its identity, read once, and the label pairs of its
// series, built once so that a scrape allocates none.
type device struct {
	index  int
	idx    string      // index as a label value
	handle nvml.Device // nil when the GPU could not be opened (or was lost) in New
	uuid   string
	name   string
	busID  string

	base   []*dto.LabelPair
	reason [len(clockReasons)][]*dto.LabelPair
	ecc    [len(eccTypes)][]*dto.LabelPair
	remap  [len(eccTypes)][]*dto.LabelPair
	info   prometheus.Metric // gpu_info, nil with DCGM names

	// fields is the buffer of the NVML field values read from this device.
	// Reads of one device never overlap (the next read starts only once
	// the last one has returned), so one buffer serves them all and a
	// scrape allocates none.
	fields [1]nvml.FieldValue

	// dcgmValues are the values of dcgmLabels (DCGM names only).
	dcgmValues []string
	// xid and xidPairs are the last XID this device's reads reported with
	// DCGM names and the label pairs of its DCGM_FI_DEV_XID_ERRORS sample,
	// built again only when the XID changes. Only readDevice touches them,
	// and reads of one device never overlap; a built slice is never changed.
	xid      uint64
	xidPairs []*dto.LabelPair

	// procs is the state of the per-process series (WithProcessMetrics);
	// only readDevice touches it, and reads of one device never overlap.
	procs procState

	// inflight is the NVML read of this device in progress, if any; a
	// scrape joins it rather than start another. Guarded by Collector.mu.
	inflight *devCall
	// last is the last read of this device that finished without a panic,
	// for WithCacheTTL. Guarded by Collector.mu.
	last *devCall
}

// labelDevice builds d's label pairs and gpu_info.
func (s *metricSet) labelDevice(d *device, driver, hostname string) {
	if s.info == nil {
		d.dcgmValues = []string{d.idx, d.uuid, "nvidia" + d.idx, d.name, hostname, d.busID, driver}
		if s.dcgmMIG {
			d.dcgmValues = append(d.dcgmValues, "", "") // a GPU, not an instance
		}
		d.base = labelPairs(s.labels, d.dcgmValues...)
		return
	}
	d.base = labelPairs(s.labels, d.idx, d.uuid)
	for i, r := range clockReasons {
		d.reason[i] = labelPairs(s.clockEvent, d.idx, d.uuid, r.name)
	}
	for i, t := range eccTypes {
		d.ecc[i] = labelPairs(s.ecc, d.idx, d.uuid, t)
		d.remap[i] = labelPairs(s.remapped, d.idx, d.uuid, t)
	}
	values := []string{d.idx, d.uuid, d.name, d.busID, driver}
	if s.simulated {
		values = append(values, "true")
	}
	if m, err := prometheus.NewConstMetric(s.info, prometheus.GaugeValue, 1, values...); err == nil {
		d.info = m
	}
}

// labelPairs returns the sorted label pairs client_golang itself makes for
// desc and values, so that samples can share them.
func labelPairs(desc *prometheus.Desc, values ...string) []*dto.LabelPair {
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, 0, values...)
	if err != nil {
		return nil
	}
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		return nil
	}
	return out.Label
}

// sample is one immutable value of a snapshot. Collect sends pointers into
// the snapshot's slice, so a scrape allocates no metric.
type sample struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	typ    prometheus.ValueType
	value  float64
}

func (s *sample) Desc() *prometheus.Desc { return s.desc }

func (s *sample) Write(out *dto.Metric) error {
	out.Label = s.labels
	v := s.value
	if s.typ == prometheus.CounterValue {
		out.Counter = &dto.Counter{Value: &v}
	} else {
		out.Gauge = &dto.Gauge{Value: &v}
	}
	return nil
}

// xidLabels returns the label pairs of d's DCGM_FI_DEV_XID_ERRORS sample for
// XID x, with err_code and err_msg as dcgm-exporter sets them.
func (s *metricSet) xidLabels(d *device, x uint64) []*dto.LabelPair {
	if d.xidPairs == nil || d.xid != x {
		d.xid = x
		d.xidPairs = labelPairs(s.xidLast, append(append([]string(nil), d.dcgmValues...), strconv.FormatUint(x, 10), xidMessage(x))...)
	}
	return d.xidPairs
}
