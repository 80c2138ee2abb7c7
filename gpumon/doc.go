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
// the background. WithProcessMetrics adds, for each compute process on a
// GPU, gpu_process_memory_used_bytes and its share of the time it used the
// SMs, memory, encoder and decoder since the last scrape
// (gpu_process_sm_utilization_ratio and so on), labelled with pid, process
// and, for a process in a Kubernetes container, pod, namespace, container,
// pod_uid and container_id. WithDCGMNames emits dcgm-exporter's default names, units and
// labels instead (those of dcgm-exporter's default counters that NVML can
// give), for existing DCGM dashboards.
//
// # Profiling, PCIe, NVLink and MIG
//
// One background goroutine, owned by the Collector and stopped by Close,
// samples every second (WithSampleInterval) what needs two readings apart or
// blocks: NVML's GPM metrics on Hopper and later (gpu_sm_active_ratio,
// gpu_sm_occupancy_ratio, gpu_graphics_engine_active_ratio,
// gpu_tensor_pipe_active_ratio, gpu_dram_active_ratio, PCIe and NVLink bytes
// per second; DCGM_FI_PROF_* with DCGM names), PCIe throughput from
// nvmlDeviceGetPcieThroughput where GPM has none, NVLink per link
// (gpu_nvlink_active, gpu_nvlink_transmit_bytes_total,
// gpu_nvlink_errors_total{link,type}; WithNVLinkPerLink(false) serves each
// GPU's sums over its links and gpu_nvlink_active_links instead, 7 series a
// GPU rather than 7 a link) and, on a GPU in MIG mode, memory and
// activity per GPU instance (gpu_mig_*{gpu_instance,gpu_instance_profile};
// GPU_I_ID and GPU_I_PROFILE with DCGM names). A scrape sends the last
// values without waiting; a GPU without a feature has none of its series
// and is counted once in gpumon_unsupported_gpus{feature}.
//
// # Process metrics
//
// gpu_process_memory_used_bytes{pid,process} (WithProcessMetrics) carries
// the pid NVML reports and, where it can be verified, the command name. The
// driver reports pids in the initial (host) PID namespace (older drivers) or
// in the caller's namespace, leaving out processes it cannot see (newer
// ones). New reads readlink(/proc/self/ns/pid) once: in the initial
// namespace (pid:[4026531836], an inode number the kernel reserves for it)
// both are the pids of our /proc, and the name is read from
// /proc/<pid>/stat. Anywhere else (a container without hostPID) a pid may be
// a host pid that is missing from the container's /proc, or another process
// there: a process is named only if it holds a /dev/nvidia* file open, as
// every NVML and CUDA client does (readlink of /proc/<pid>/fd/*), checked
// once per pid and start time (field 22 of stat, which a reused pid does not
// share) and cached, with dead pids evicted and at most 1024 kept. A process
// that cannot be verified (gone, no NVIDIA file, its fd directory not
// readable, e.g. another user's without CAP_SYS_PTRACE) gets process="";
// its memory series is still sent with NVML's pid. In a container, only a
// pid that collides with a GPU-using process of the container itself can
// still be misnamed (a driver that reports host pids, a host pid that is
// also a live pid of the container); run with hostPID to rule it out.
//
// The utilisation comes from NVML's process samples
// (nvmlDeviceGetProcessUtilization), asked for the samples newer than the
// newest one seen on that GPU, so that each scrape gets the use since the
// one before; a process on the GPU without a new sample for 3 s has been
// idle and reads 0. Under time-slicing each process has its own samples;
// MPS clients are listed as processes too. A GPU that does not support it
// (before Maxwell, MIG mode) is asked once and has no utilisation series.
//
// # Kubernetes attribution
//
// A process's labels are read from /proc once, when it first shows up on a
// GPU, and forgotten when it leaves. pod_uid and container_id come from
// /proc/<pid>/cgroup (cgroup v1 and v2, cgroupfs and systemd drivers,
// containerd, CRI-O and Docker), container from the kubelet's
// /dev/termination-log mount in /proc/<pid>/mountinfo: both readable by
// any user, so hostPID is all they need. pod (the pod's HOSTNAME, from
// /proc/<pid>/environ, not for hostNetwork pods) and namespace (the
// service account namespace file under /proc/<pid>/root) need ptrace
// read access as well: the process's uid, or CAP_SYS_PTRACE. The kubelet
// is never asked.
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
// returns. A scrape allocates nothing per metric, and the same few
// allocations for 1 GPU or 64: each GPU has a reader goroutine from New to
// Close, and the reads one scrape starts share one batch.
//
// # Builds without cgo
//
// go-nvml needs cgo. Built with CGO_ENABLED=0, this package still compiles,
// without WithNVML, and New returns an error matching ErrNVMLUnavailable.
package gpumon
