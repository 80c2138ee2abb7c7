// Package simctl is the simulate mode of examples/gpu-exporter: the HTTP
// control API over a gpusim.Sim (load, faults, clear) and the optional load
// pattern (--simulate-load). It needs cgo, as gpusim does.
package simctl

// Usage is the control API, for the flag help and the docs.
const Usage = `POST /simulate/load?gpu=N&value=0.8 (gpu omitted: every GPU; stops --simulate-load for those GPUs),
POST /simulate/fault?gpu=N&type=xid&code=79 | type=nvlink&link=L[&count=N] | type=fall-off-bus | type=hang (gpu omitted: every GPU),
POST /simulate/clear?gpu=N (gpu omitted: every GPU; ends the faults, as a GPU reset would).
Bad input answers 400 with the reason.`
