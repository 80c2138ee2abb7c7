// Package gpumon exposes NVIDIA GPU telemetry read through NVML as a
// Prometheus collector, without DCGM.
//
// # Usage
//
// New initialises NVML and reads each GPU's identity once; the Collector
// reads the changing values (utilisation, memory, temperature, power,
// energy, clocks, throttle reasons, ECC and PCIe replay counters) when it is
// scraped. Where there is no NVIDIA driver, New returns an error matching
// ErrNVMLUnavailable and makes no further NVML call, so a program can run
// with or without GPUs:
//
//	gpus, err := gpumon.New(gpumon.WithCacheTTL(time.Second))
//	switch {
//	case errors.Is(err, gpumon.ErrNVMLUnavailable):
//		slog.Info("no GPU telemetry", "err", err)
//	case err != nil:
//		return err
//	default:
//		defer gpus.Close()
//		reg.MustRegister(gpus)
//		http.Handle("/readyz", gpus.HealthHandler())
//	}
//
// # Metrics
//
// Every per-GPU series has the labels gpu (the NVML index) and uuid;
// gpu_info{gpu,uuid,name,pci_bus_id,driver_version} carries the rest of the
// identity. gpu_up is 1 when every NVML call for the GPU succeeded in the
// last read. Values are in base units: gpu_utilization_ratio,
// gpu_memory_used_bytes, gpu_temperature_celsius, gpu_power_usage_watts,
// gpu_energy_consumed_joules_total, gpu_sm_clock_hertz and so on. Memory
// health has gpu_ecc_errors_total{type} and, on GPUs that remap rows,
// gpu_memory_remapped_rows_total{type}, gpu_memory_row_remap_pending and
// gpu_memory_row_remap_failed.
// gpu_xid_errors_total{xid} is a counter fed by an NVML event set watched in
// the background. WithProcessMetrics adds
// gpu_process_memory_used_bytes{pid,process} for the processes alive at
// scrape time. WithDCGMNames emits dcgm-exporter's default names, units and
// labels instead (those of dcgm-exporter's default counters that NVML can
// give), for existing DCGM dashboards.
//
// # Failures
//
// A field a GPU does not support (ERROR_NOT_SUPPORTED) is left out for that
// GPU. One it refuses (ERROR_NO_PERMISSION: device-level memory and process
// queries on a MIG-enabled GPU without root) is left out and counted, and the
// GPU stays up. Any other NVML error is counted in
// gpumon_collect_errors_total{call} and sets that GPU's gpu_up to 0; the
// other GPUs and the scrape go on. A GPU lost from the bus is reported, and
// makes Healthy fail, but is never fatal.
//
// # Cost
//
// Each GPU is read on its own goroutine, and concurrent scrapes share a GPU's
// read in progress; WithCacheTTL lets scrapes reuse a recent read, and
// WithScrapeTimeout bounds how long a scrape waits for a read that hangs in
// the driver: that GPU then gets gpu_up 0 and no stale values, the others
// report as usual, and the hung GPU is not read again until its call
// returns. A scrape allocates nothing per metric.
//
// # Builds without cgo
//
// go-nvml needs cgo. Built with CGO_ENABLED=0, this package still compiles,
// without WithNVML, and New returns an error matching ErrNVMLUnavailable.
package gpumon
