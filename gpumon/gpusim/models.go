//go:build cgo

package gpusim

import (
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Model is the specification of a simulated GPU model: what NVML reports
// for it and the ranges its values move in. The exported values (H100SXM,
// A100SXM80GB, L4) are the supported models; a caller may define its own.
type Model struct {
	// Key is the short name New and ModelByName accept ("H100 SXM").
	Key string
	// Name is the product name as nvmlDeviceGetName reports it.
	Name         string
	Architecture nvml.DeviceArchitecture
	// CUDA compute capability.
	ComputeMajor, ComputeMinor int
	// PCIDeviceID is the PCI device id (the vendor, 0x10DE, is added), and
	// PCIeGen the PCIe generation of the link (x16).
	PCIDeviceID uint16
	PCIeGen     int

	// MemoryTotal is the device memory NVML reports as total, in bytes;
	// MemoryReserved the part the driver reserves (nvmlDeviceGetMemoryInfo_v2).
	MemoryTotal, MemoryReserved uint64
	// HBM: the memory has its own temperature sensor (NVML_FI_DEV_MEMORY_TEMP).
	HBM bool

	// PowerLimitW is the default (and enforced) power limit; IdlePowerW the
	// draw at no load.
	PowerLimitW, IdlePowerW float64
	// Clocks in MHz: the SM clock at idle and its boost maximum, and the
	// memory clock.
	IdleSMClockMHz, MaxSMClockMHz, MemClockMHz uint32

	// Temperatures in °C: at idle, at the power limit (steady state), and the
	// slowdown threshold above which the clocks are cut (sw_thermal_slowdown).
	IdleTempC, FullTempC, SlowdownTempC float64
	// HasFan: the board reports a fan speed (passively cooled data-centre
	// boards do not: GetFanSpeed answers ERROR_NOT_SUPPORTED).
	HasFan bool

	// GPM: the GPU answers NVML's GPU Performance Monitoring (Hopper and
	// later): graphics, SM, tensor and DRAM activity, PCIe and NVLink rates.
	GPM bool
	// NVLinks is the number of NVLink links (0: none), NVLinkGBps the
	// bandwidth of one link in each direction, in GB/s.
	NVLinks    int
	NVLinkGBps float64
	// MIG: the model can be split into GPU instances (Config.MIG), with the
	// profiles of the 80 GB parts (MIGProfiles).
	MIG bool
}

const mib = 1 << 20

// The models gpusim knows. Values are those of the shipping parts as NVML
// reports them (names, memory as nvidia-smi shows it, default power limits,
// boost clocks).
var (
	// H100SXM is an NVIDIA H100 SXM5 80GB (Hopper, HBM3, 700 W), the default.
	H100SXM = Model{
		Key: "H100 SXM", Name: "NVIDIA H100 80GB HBM3", Architecture: nvml.DEVICE_ARCH_HOPPER,
		ComputeMajor: 9, ComputeMinor: 0, PCIDeviceID: 0x2330, PCIeGen: 5,
		MemoryTotal: 81559 * mib, MemoryReserved: 527 * mib, HBM: true,
		PowerLimitW: 700, IdlePowerW: 72,
		IdleSMClockMHz: 345, MaxSMClockMHz: 1980, MemClockMHz: 2619,
		IdleTempC: 31, FullTempC: 78, SlowdownTempC: 87,
		GPM: true, NVLinks: 18, NVLinkGBps: 25, // NVLink 4: 900 GB/s both ways over 18 links
		MIG: true,
	}
	// A100SXM80GB is an NVIDIA A100 SXM4 80GB (Ampere, HBM2e, 400 W).
	A100SXM80GB = Model{
		Key: "A100 SXM 80GB", Name: "NVIDIA A100-SXM4-80GB", Architecture: nvml.DEVICE_ARCH_AMPERE,
		ComputeMajor: 8, ComputeMinor: 0, PCIDeviceID: 0x20b2, PCIeGen: 4,
		MemoryTotal: 81920 * mib, MemoryReserved: 503 * mib, HBM: true,
		PowerLimitW: 400, IdlePowerW: 58,
		IdleSMClockMHz: 210, MaxSMClockMHz: 1410, MemClockMHz: 1593,
		IdleTempC: 30, FullTempC: 74, SlowdownTempC: 88,
		NVLinks: 12, NVLinkGBps: 25, // NVLink 3: 600 GB/s both ways over 12 links
		MIG: true,
	}
	// L4 is an NVIDIA L4 (Ada Lovelace, 24 GB GDDR6, 72 W, passively cooled).
	L4 = Model{
		Key: "L4", Name: "NVIDIA L4", Architecture: nvml.DEVICE_ARCH_ADA,
		ComputeMajor: 8, ComputeMinor: 9, PCIDeviceID: 0x27b8, PCIeGen: 4,
		MemoryTotal: 23034 * mib, MemoryReserved: 441 * mib,
		PowerLimitW: 72, IdlePowerW: 16,
		IdleSMClockMHz: 210, MaxSMClockMHz: 2040, MemClockMHz: 6251,
		IdleTempC: 34, FullTempC: 76, SlowdownTempC: 90,
	}
)

// Models returns the models gpusim knows, the default first.
func Models() []Model { return []Model{H100SXM, A100SXM80GB, L4} }

// ModelByName returns the known model whose Key or Name is name, ignoring
// case, spaces, dashes and underscores ("h100-sxm", "H100SXM" and
// "NVIDIA H100 80GB HBM3" all give H100SXM).
func ModelByName(name string) (Model, bool) {
	want := normalize(name)
	for _, m := range Models() {
		if want != "" && (normalize(m.Key) == want || normalize(m.Name) == want) {
			return m, true
		}
	}
	return Model{}, false
}

func normalize(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '_':
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// invalid reports what is wrong with m, "" if nothing.
func (m Model) invalid() string {
	switch {
	case m.Name == "":
		return "no Name"
	case m.MemoryTotal == 0 || m.MemoryReserved >= m.MemoryTotal:
		return "MemoryTotal must be above MemoryReserved"
	case !(m.PowerLimitW > 0) || !(m.IdlePowerW >= 0) || m.IdlePowerW >= m.PowerLimitW:
		return "PowerLimitW must be above IdlePowerW (>= 0)"
	case m.MaxSMClockMHz == 0 || m.IdleSMClockMHz > m.MaxSMClockMHz:
		return "MaxSMClockMHz must be at least IdleSMClockMHz, and above 0"
	case !(m.FullTempC >= m.IdleTempC):
		return "FullTempC must be at least IdleTempC"
	case m.NVLinks < 0 || m.NVLinks > nvml.NVLINK_MAX_LINKS || !(m.NVLinkGBps >= 0):
		return "NVLinks must be 0 to 36 and NVLinkGBps at least 0"
	}
	return ""
}
