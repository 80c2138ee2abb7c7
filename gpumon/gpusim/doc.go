// Package gpusim simulates NVIDIA GPUs behind go-nvml's nvml.Interface, for
// tests, demos and fleet experiments without GPUs: N GPUs of a named model
// (H100SXM, the default; A100SXM80GB; L4) whose values follow a load the
// caller sets, and faults on demand.
//
// # Usage
//
// New builds the GPUs; Sim.NVML is the library to hand to gpumon (or to any
// NVML client); SetLoad, InjectXID, FallOffBus, Hang and Clear drive them:
//
//	sim, err := gpusim.New(gpusim.Config{GPUs: 8, Model: gpusim.H100SXM, Seed: 1})
//	if err != nil {
//		return err
//	}
//	gpus, err := gpumon.New(gpumon.WithNVML(sim.NVML()))
//	if err != nil {
//		return err
//	}
//	defer gpus.Close()
//	reg.MustRegister(gpus)
//
//	_ = sim.SetLoad(gpusim.AllGPUs, 0.8) // every GPU at 80%
//	_ = sim.InjectXID(3, 79)             // gpu_xid_errors_total{gpu="3",xid="79"} counts 1
//	_ = sim.FallOffBus(3)                // gpu_up{gpu="3"} 0: calls answer ERROR_GPU_IS_LOST
//	_ = sim.Clear(3)                     // and back
//
// # What is simulated
//
// Identity: name as NVML reports it ("NVIDIA H100 80GB HBM3"), a UUID
// ("GPU-...") and serial that depend only on Config.Seed and the index, a
// PCI bus id as on a DGX H100, the driver version DefaultDriverVersion.
// Values, all derived from the load and the time that passed on Config.Now:
// utilisation (gpu = load, memory = 0.6 × load), memory used (90% of the
// memory at full load; GetMemoryInfo and GetMemoryInfo_v2, with the
// reserved memory apart), power (idle to the power limit, capped there at
// loads above about 0.9, with sw_power_cap set and the SM clock brought
// down), the temperature (which follows the power with the time constant
// Config.TempTimeConstant; sw_thermal_slowdown above the model's slowdown
// temperature), HBM temperature (NVML_FI_DEV_MEMORY_TEMP), a monotonic
// energy counter in mJ, SM and memory clocks, gpu_idle at no load, fan speed
// on models that have a fan (the supported ones are passively cooled, so
// they answer ERROR_NOT_SUPPORTED, as the real boards do), PCIe replays, ECC
// counts and remapped rows, and optionally compute processes on each busy
// GPU (Config.ProcessPID, Config.Processes: one, or several sharing it as
// under time-slicing or MPS) with their memory and utilisation samples
// (nvmlDeviceGetProcessUtilization). GPM (the H100 SXM only, so that A100 and
// L4 exercise a collector's "unsupported" path) gives graphics, SM, tensor and
// DRAM activity and PCIe and NVLink rates from counters integrated with the
// load; nvmlDeviceGetPcieThroughput the same PCIe rates (without its 20 ms
// wait); NVLink has 18 active links on the H100 SXM and 12 on the A100 with
// data counters (field values, scopeId = link) and error counters; Config.MIG
// puts every GPU in MIG mode with GPU instances of the given profiles (memory
// and GPM per instance).
//
// Every other NVML call answers ERROR_NOT_SUPPORTED (from a generated base
// type, zz_unsupported.go), so more of NVML can be added one method at a
// time. Nothing records calls or grows with time, so a
// Sim can serve a long-running exporter.
//
// # Faults
//
// InjectXID posts an XID event to the event sets the GPU is registered with
// (what gpumon's XID watcher waits on); XID 48 also counts an uncorrected
// ECC error and a pending row remapping. FallOffBus makes every call on the
// GPU answer ERROR_GPU_IS_LOST. Hang makes its calls block until Clear, which
// exercises a collector's scrape timeout. InjectNVLinkErrors counts CRC
// errors (and their replays) on one NVLink. Clear ends the faults of a GPU as
// a reset would (NVLink error counts are kept). AllGPUs applies any of them to
// every GPU.
//
// # Simulated, and says so
//
// The library has a method Simulated() bool that returns true; gpumon then
// adds simulated="true" to gpu_info. The driver version ends in "-sim", so
// the DCGM-named series (DCGM_FI_DRIVER_VERSION label) show it too.
//
// # Concurrency and failure
//
// A Sim is safe for concurrent use: GPUs are read concurrently and each has
// its own lock; a hung call holds no lock. Bad input (a GPU index out of
// range, a load outside [0, 1], XID 0) is an error that changes nothing.
// Nothing in the package panics.
//
// The package needs cgo, as go-nvml does; built without cgo it is empty.
package gpusim
