//go:build cgo

package gpusim

//go:generate go run ./internal/nvmlgen/cmd

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// AllGPUs, given as the gpu of SetLoad, InjectXID, FallOffBus, Hang or
// Clear, means every GPU of the Sim.
const AllGPUs = -1

// MaxGPUs is the most GPUs one Sim holds.
const MaxGPUs = 1024

// DefaultDriverVersion is the driver version a Sim reports when
// Config.DriverVersion is empty. The "-sim" suffix keeps it from passing
// for a real driver wherever the version is shown (gpu_info's
// driver_version, the DCGM_FI_DRIVER_VERSION label).
const DefaultDriverVersion = "550.90.07-sim"

// Config configures New. The zero value is one idle H100 SXM.
type Config struct {
	// GPUs is the number of GPUs (0: 1; at most MaxGPUs).
	GPUs int
	// Model is the GPU model of every GPU; the zero Model is H100SXM.
	Model Model
	// Seed makes the identities (UUID, serial) differ between Sims with
	// the same GPU count; the same seed gives the same identities.
	Seed uint64
	// Now is the clock the state evolves by (default time.Now). Tests pass
	// a fake clock and move it forward to make temperature and energy move.
	Now func() time.Time
	// DriverVersion is what SystemGetDriverVersion reports (default
	// DefaultDriverVersion).
	DriverVersion string
	// ProcessPID, when non-zero, makes every GPU under load list one compute
	// process with this pid that holds the GPU's used memory
	// (nvmlDeviceGetComputeRunningProcesses) and uses all of its SMs
	// (nvmlDeviceGetProcessUtilization); otherwise GPUs list none.
	ProcessPID uint32
	// Processes is how many compute processes each GPU under load lists
	// (0: one where ProcessPID is set, else none; at most MaxProcesses),
	// as under time-slicing or MPS: they share the GPU's used memory and
	// utilisation equally. The first has ProcessPID where it is set; the
	// others have pids from SimPIDBase up, which no Linux process has.
	Processes int
	// TempTimeConstant is how fast the temperature follows the power (the
	// time to cover 63% of a step; default 20s).
	TempTimeConstant time.Duration
	// MIG, when not empty, puts every GPU in MIG mode, split into GPU
	// instances of these profiles (the model's MIGProfiles, e.g.
	// {"3g.40gb", "2g.20gb", "1g.10gb"}; 7 slices at most), ids 1, 2, ...
	// Each instance runs its GPU's load.
	MIG []string
}

// Sim is a set of simulated GPUs. NVML returns the nvml.Interface over
// them; the other methods set their load and inject faults. A Sim is safe for
// concurrent use; its methods never panic. A nil *Sim's methods return an
// error (NVML returns nil).
type Sim struct {
	cfg  Config
	now  func() time.Time
	tau  float64 // seconds
	lib  *library
	devs []*device

	mu    sync.Mutex
	inits int // Init calls minus Shutdown calls
}

// New builds the GPUs cfg describes, all idle and healthy, at the state of
// a GPU that has been idle for a while (temperature steady, energy counted
// since a driver load one day before).
func New(cfg Config) (*Sim, error) {
	if cfg.GPUs < 0 || cfg.GPUs > MaxGPUs {
		return nil, fmt.Errorf("gpusim: %d GPUs: want 0 to %d", cfg.GPUs, MaxGPUs)
	}
	if cfg.GPUs == 0 {
		cfg.GPUs = 1
	}
	if cfg.Model == (Model{}) {
		cfg.Model = H100SXM
	}
	if why := cfg.Model.invalid(); why != "" {
		return nil, fmt.Errorf("gpusim: model %q: %s", cfg.Model.Name, why)
	}
	if cfg.Processes < 0 || cfg.Processes > MaxProcesses {
		return nil, fmt.Errorf("gpusim: %d processes per GPU: want 0 to %d", cfg.Processes, MaxProcesses)
	}
	if cfg.Processes == 0 && cfg.ProcessPID != 0 {
		cfg.Processes = 1
	}
	if cfg.DriverVersion == "" {
		cfg.DriverVersion = DefaultDriverVersion
	}
	if cfg.TempTimeConstant <= 0 {
		cfg.TempTimeConstant = 20 * time.Second
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	layout, err := migLayout(&cfg.Model, cfg.MIG)
	if err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, now: now, tau: cfg.TempTimeConstant.Seconds()}
	s.lib = &library{sim: s}
	t := now()
	for i := range cfg.GPUs {
		d := newDevice(s, i, t)
		d.newMIG(layout)
		s.devs = append(s.devs, d)
	}
	return s, nil
}

// NVML returns the nvml.Interface of the simulated GPUs, for
// gpumon.WithNVML or any other NVML client. Like the real library it
// answers only between Init and Shutdown (ERROR_UNINITIALIZED otherwise).
// Calls gpusim does not simulate answer ERROR_NOT_SUPPORTED. Its
// Simulated method returns true, which is how gpumon labels the GPUs as
// simulated.
func (s *Sim) NVML() nvml.Interface {
	if s == nil {
		return nil
	}
	return s.lib
}

// GPUs returns the number of GPUs (0 for a nil Sim).
func (s *Sim) GPUs() int {
	if s == nil {
		return 0
	}
	return len(s.devs)
}

// Model returns the GPUs' model.
func (s *Sim) Model() Model {
	if s == nil {
		return Model{}
	}
	return s.cfg.Model
}

// UUID returns the UUID of GPU gpu ("GPU-..."), "" if there is no such GPU.
func (s *Sim) UUID(gpu int) string {
	if s == nil || gpu < 0 || gpu >= len(s.devs) {
		return ""
	}
	return s.devs[gpu].uuid
}

var errNil = errors.New("gpusim: nil Sim")

// each runs f on GPU gpu, or on every GPU for AllGPUs.
func (s *Sim) each(gpu int, f func(*device)) error {
	if s == nil {
		return errNil
	}
	if gpu == AllGPUs {
		for _, d := range s.devs {
			f(d)
		}
		return nil
	}
	if gpu < 0 || gpu >= len(s.devs) {
		return fmt.Errorf("gpusim: no gpu %d: the GPUs are 0 to %d", gpu, len(s.devs)-1)
	}
	f(s.devs[gpu])
	return nil
}

// SetLoad sets how busy GPU gpu (or AllGPUs) is from now on, from 0 (idle)
// to 1 (flat out). Utilisation, memory in use, power and clocks follow at
// once, the temperature with its time constant. A load outside [0, 1] or
// NaN is an error and changes nothing.
func (s *Sim) SetLoad(gpu int, load float64) error {
	if math.IsNaN(load) || load < 0 || load > 1 {
		return fmt.Errorf("gpusim: load %v: want 0 to 1", load)
	}
	return s.each(gpu, func(d *device) { d.setLoad(load) })
}

// Load returns GPU gpu's load.
func (s *Sim) Load(gpu int) (float64, error) {
	if gpu == AllGPUs {
		return 0, errors.New("gpusim: Load wants one GPU")
	}
	var l float64
	err := s.each(gpu, func(d *device) {
		d.mu.Lock()
		l = d.load
		d.mu.Unlock()
	})
	return l, err
}

// InjectXID makes GPU gpu (or AllGPUs) report XID error xid, as an
// nvml.EventTypeXidCriticalError event on every event set the GPU is
// registered with (nvmlDeviceRegisterEvents); with none registered the
// event is lost, as on a real GPU. XID 48 (double-bit ECC error) also counts
// one uncorrected volatile ECC error and one row remapped for an
// uncorrectable error, pending until Clear. xid must be 1 to 999.
func (s *Sim) InjectXID(gpu int, xid uint64) error {
	if xid == 0 || xid > 999 {
		return fmt.Errorf("gpusim: xid %d: want 1 to 999", xid)
	}
	return s.each(gpu, func(d *device) { d.injectXID(xid) })
}

// FallOffBus makes GPU gpu (or AllGPUs) fall off the bus: every NVML call
// on it answers ERROR_GPU_IS_LOST until Clear. (A real GPU that falls off
// the bus also reports XID 79; call InjectXID for that.)
func (s *Sim) FallOffBus(gpu int) error {
	return s.each(gpu, func(d *device) {
		d.mu.Lock()
		d.lost = true
		d.mu.Unlock()
	})
}

// Hang makes every NVML call on GPU gpu (or AllGPUs) made from now on block
// until Clear releases it, as a GPU stuck in the driver does.
func (s *Sim) Hang(gpu int) error {
	return s.each(gpu, func(d *device) {
		d.mu.Lock()
		if d.hung == nil {
			d.hung = make(chan struct{})
		}
		d.mu.Unlock()
	})
}

// Clear ends the faults of GPU gpu (or AllGPUs), as a GPU reset would: hung
// calls return, a GPU off the bus answers again, pending row remappings
// take effect and the volatile ECC counters start again from zero. The load,
// the energy counter and the remapped-row counts are kept.
func (s *Sim) Clear(gpu int) error {
	return s.each(gpu, func(d *device) { d.clear() })
}

// identity derives stable identifiers from the seed and the index.
func identity(seed uint64, i int) (uuid, serial string) {
	var in [16]byte
	binary.LittleEndian.PutUint64(in[:8], seed)
	binary.LittleEndian.PutUint64(in[8:], uint64(i))
	h := sha256.Sum256(append([]byte("modeltel/gpusim\x00"), in[:]...))
	h[6] = h[6]&0x0f | 0x40 // version 4
	h[8] = h[8]&0x3f | 0x80 // variant 10
	uuid = fmt.Sprintf("GPU-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
	serial = fmt.Sprintf("%013d", 1650000000000+binary.LittleEndian.Uint64(h[16:24])%10000000000)
	return uuid, serial
}

// pciBuses are the bus numbers of the eight GPUs of a DGX H100.
var pciBuses = [8]uint8{0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb}

// library is the nvml.Interface of a Sim.
type library struct {
	unsupportedLib
	sim *Sim
}

// Simulated reports that the GPUs are simulated; gpumon looks for it.
func (l *library) Simulated() bool { return true }

func (l *library) Init() nvml.Return {
	l.sim.mu.Lock()
	defer l.sim.mu.Unlock()
	l.sim.inits++
	return nvml.SUCCESS
}

func (l *library) InitWithFlags(uint32) nvml.Return { return l.Init() }

func (l *library) Shutdown() nvml.Return {
	l.sim.mu.Lock()
	defer l.sim.mu.Unlock()
	if l.sim.inits == 0 {
		return nvml.ERROR_UNINITIALIZED
	}
	l.sim.inits--
	return nvml.SUCCESS
}

func (l *library) initialized() bool {
	l.sim.mu.Lock()
	defer l.sim.mu.Unlock()
	return l.sim.inits > 0
}

func (l *library) ErrorString(r nvml.Return) string { return r.Error() }

// Extensions reports every symbol as present: gpusim answers each call,
// with ERROR_NOT_SUPPORTED where it does not simulate it.
func (l *library) Extensions() nvml.ExtendedInterface { return extensions{} }

type extensions struct{}

func (extensions) LookupSymbol(string) error { return nil }

func (l *library) SystemGetDriverVersion() (string, nvml.Return) {
	if !l.initialized() {
		return "", nvml.ERROR_UNINITIALIZED
	}
	return l.sim.cfg.DriverVersion, nvml.SUCCESS
}

func (l *library) SystemGetNVMLVersion() (string, nvml.Return) {
	if !l.initialized() {
		return "", nvml.ERROR_UNINITIALIZED
	}
	return "12." + l.sim.cfg.DriverVersion, nvml.SUCCESS
}

func (l *library) SystemGetCudaDriverVersion() (int, nvml.Return) {
	if !l.initialized() {
		return 0, nvml.ERROR_UNINITIALIZED
	}
	return 12040, nvml.SUCCESS
}

func (l *library) SystemGetCudaDriverVersion_v2() (int, nvml.Return) {
	return l.SystemGetCudaDriverVersion()
}

func (l *library) DeviceGetCount() (int, nvml.Return) {
	if !l.initialized() {
		return 0, nvml.ERROR_UNINITIALIZED
	}
	return len(l.sim.devs), nvml.SUCCESS
}

func (l *library) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	if !l.initialized() {
		return nil, nvml.ERROR_UNINITIALIZED
	}
	if i < 0 || i >= len(l.sim.devs) {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	return l.sim.devs[i], nvml.SUCCESS
}

func (l *library) DeviceGetHandleByUUID(uuid string) (nvml.Device, nvml.Return) {
	if !l.initialized() {
		return nil, nvml.ERROR_UNINITIALIZED
	}
	for _, d := range l.sim.devs {
		if d.uuid == uuid {
			return d, nvml.SUCCESS
		}
	}
	return nil, nvml.ERROR_NOT_FOUND
}

func (l *library) DeviceGetHandleByPciBusId(id string) (nvml.Device, nvml.Return) {
	if !l.initialized() {
		return nil, nvml.ERROR_UNINITIALIZED
	}
	for _, d := range l.sim.devs {
		if d.busID == id {
			return d, nvml.SUCCESS
		}
	}
	return nil, nvml.ERROR_NOT_FOUND
}

func (l *library) EventSetCreate() (nvml.EventSet, nvml.Return) {
	if !l.initialized() {
		return nil, nvml.ERROR_UNINITIALIZED
	}
	return newEventSet(), nvml.SUCCESS
}

func (l *library) EventSetWait(set nvml.EventSet, ms uint32) (nvml.EventData, nvml.Return) {
	if set == nil {
		return nvml.EventData{}, nvml.ERROR_INVALID_ARGUMENT
	}
	return set.Wait(ms)
}

func (l *library) EventSetFree(set nvml.EventSet) nvml.Return {
	if set == nil {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return set.Free()
}
