//go:build cgo

package gpusim

import (
	"fmt"
	"math"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// MIGProfile is a GPU instance profile of a MIG-capable model, as
// nvmlDeviceGetGpuInstanceProfileInfo reports it.
type MIGProfile struct {
	Name         string // as nvidia-smi and dcgm-exporter write it: "1g.10gb"
	ID           int    // nvml.GPU_INSTANCE_PROFILE_*
	Slices       int
	MemorySizeMB uint64
}

// MIGProfiles returns the GPU instance profiles of a model with MIG (those
// of the 80 GB H100 and A100), none for one without.
func (m Model) MIGProfiles() []MIGProfile {
	if !m.MIG {
		return nil
	}
	return mig80GB
}

var mig80GB = []MIGProfile{
	{"1g.10gb", nvml.GPU_INSTANCE_PROFILE_1_SLICE, 1, 9856},
	{"2g.20gb", nvml.GPU_INSTANCE_PROFILE_2_SLICE, 2, 19968},
	{"3g.40gb", nvml.GPU_INSTANCE_PROFILE_3_SLICE, 3, 40192},
	{"4g.40gb", nvml.GPU_INSTANCE_PROFILE_4_SLICE, 4, 40192},
	{"7g.80gb", nvml.GPU_INSTANCE_PROFILE_7_SLICE, 7, 81152},
}

// migSlices is the number of compute slices of a MIG-capable GPU.
const migSlices = 7

// migInstance is one GPU instance of a simulated GPU in MIG mode, and its
// MIG device handle (one compute instance taking the whole GPU instance).
type migInstance struct {
	unsupportedDevice
	parent  *device
	id      int
	profile *MIGProfile
	uuid    string
}

// migLayout checks names against the model's profiles and returns them.
func migLayout(m *Model, names []string) ([]*MIGProfile, error) {
	if len(names) == 0 {
		return nil, nil
	}
	profiles := m.MIGProfiles()
	if len(profiles) == 0 {
		return nil, fmt.Errorf("gpusim: model %q has no MIG", m.Key)
	}
	var out []*MIGProfile
	slices := 0
	for _, n := range names {
		var p *MIGProfile
		for k := range profiles {
			if strings.EqualFold(profiles[k].Name, n) {
				p = &profiles[k]
			}
		}
		if p == nil {
			var known []string
			for _, q := range profiles {
				known = append(known, q.Name)
			}
			return nil, fmt.Errorf("gpusim: MIG profile %q: the %s has %s", n, m.Key, strings.Join(known, ", "))
		}
		slices += p.Slices
		out = append(out, p)
	}
	if slices > migSlices {
		return nil, fmt.Errorf("gpusim: MIG profiles %s take %d slices; a GPU has %d", strings.Join(names, ","), slices, migSlices)
	}
	return out, nil
}

// newMIG makes d's GPU instances, ids 1, 2, ... in the order of the layout.
func (d *device) newMIG(layout []*MIGProfile) {
	for k, p := range layout {
		d.mig = append(d.mig, &migInstance{parent: d, id: k + 1, profile: p,
			uuid: fmt.Sprintf("MIG-%s-%d", strings.TrimPrefix(d.uuid, "GPU-"), k+1)})
	}
}

func (d *device) migInstance(gi int) *migInstance {
	for _, in := range d.mig {
		if in.id == gi {
			return in
		}
	}
	return nil
}

func (d *device) GetMigMode() (int, int, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, 0, ret
	}
	defer d.mu.Unlock()
	if len(d.mig) > 0 {
		return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS
	}
	return nvml.DEVICE_MIG_DISABLE, nvml.DEVICE_MIG_DISABLE, nvml.SUCCESS
}

func (d *device) GetMaxMigDeviceCount() (int, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer d.mu.Unlock()
	if !d.m.MIG {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return migSlices, nvml.SUCCESS
}

func (d *device) GetMigDeviceHandleByIndex(k int) (nvml.Device, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nil, ret
	}
	defer d.mu.Unlock()
	switch {
	case len(d.mig) == 0:
		return nil, nvml.ERROR_NOT_SUPPORTED
	case k < 0 || k >= migSlices:
		return nil, nvml.ERROR_INVALID_ARGUMENT
	case k >= len(d.mig):
		return nil, nvml.ERROR_NOT_FOUND
	}
	return d.mig[k], nvml.SUCCESS
}

func (d *device) GetGpuInstanceById(gi int) (nvml.GpuInstance, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nil, ret
	}
	defer d.mu.Unlock()
	in := d.migInstance(gi)
	if in == nil {
		return nil, nvml.ERROR_NOT_FOUND
	}
	return gpuInstance{in: in}, nvml.SUCCESS
}

func (d *device) GetGpuInstanceProfileInfo(id int) (nvml.GpuInstanceProfileInfo, nvml.Return) {
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.GpuInstanceProfileInfo{}, ret
	}
	defer d.mu.Unlock()
	for _, p := range d.m.MIGProfiles() {
		if p.ID == id {
			return nvml.GpuInstanceProfileInfo{Id: uint32(p.ID), SliceCount: uint32(p.Slices),
				InstanceCount: uint32(migSlices / p.Slices), MemorySizeMB: p.MemorySizeMB}, nvml.SUCCESS
		}
	}
	return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_NOT_SUPPORTED
}

// GpmMigSampleGet samples GPU instance gi: it runs the GPU's load, so its
// activities are the GPU's; its counters are the GPU's scaled to its share
// of the slices.
func (d *device) GpmMigSampleGet(gi int, s nvml.GpmSample) nvml.Return {
	g, ok := s.(*gpmSample)
	if !ok || g == nil {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	if ret := d.lock(); ret != nvml.SUCCESS {
		return ret
	}
	defer d.mu.Unlock()
	in := d.migInstance(gi)
	if !d.m.GPM || in == nil {
		return nvml.ERROR_NOT_SUPPORTED
	}
	d.gpmSnapshot(g)
	share := float64(in.profile.Slices) / migSlices
	g.pcieTX *= share
	g.pcieRX *= share
	g.nvlTX *= share
	g.nvlRX *= share
	for k := 5; k < len(g.inst); k++ {
		g.inst[k] *= share
	}
	return nvml.SUCCESS
}

// ---- the MIG device handle ----

func (in *migInstance) GetGpuInstanceId() (int, nvml.Return) {
	if ret := in.parent.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer in.parent.mu.Unlock()
	return in.id, nvml.SUCCESS
}

func (in *migInstance) GetComputeInstanceId() (int, nvml.Return) {
	if ret := in.parent.lock(); ret != nvml.SUCCESS {
		return 0, ret
	}
	defer in.parent.mu.Unlock()
	return 0, nvml.SUCCESS
}

func (in *migInstance) IsMigDeviceHandle() (bool, nvml.Return) { return true, nvml.SUCCESS }

func (in *migInstance) GetDeviceHandleFromMigDeviceHandle() (nvml.Device, nvml.Return) {
	return in.parent, nvml.SUCCESS
}

func (in *migInstance) GetUUID() (string, nvml.Return) {
	if ret := in.parent.lock(); ret != nvml.SUCCESS {
		return "", ret
	}
	defer in.parent.mu.Unlock()
	return in.uuid, nvml.SUCCESS
}

// GetMemoryInfo: the instance's memory, 90% of it in use at load 1, as the
// whole GPU's.
func (in *migInstance) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	d := in.parent
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.Memory{}, ret
	}
	defer d.mu.Unlock()
	total := in.profile.MemorySizeMB * mib
	used := uint64(math.Round(float64(total)*0.9*d.load)) &^ (mib - 1)
	return nvml.Memory{Total: total, Used: used, Free: total - used}, nvml.SUCCESS
}

// gpuInstance is the nvml.GpuInstance of a migInstance.
type gpuInstance struct {
	unsupportedGpuInstance
	in *migInstance
}

func (g gpuInstance) GetInfo() (nvml.GpuInstanceInfo, nvml.Return) {
	d := g.in.parent
	if ret := d.lock(); ret != nvml.SUCCESS {
		return nvml.GpuInstanceInfo{}, ret
	}
	defer d.mu.Unlock()
	return nvml.GpuInstanceInfo{Device: d, Id: uint32(g.in.id), ProfileId: uint32(g.in.profile.ID)}, nvml.SUCCESS
}
