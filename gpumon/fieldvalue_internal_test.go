//go:build cgo

package gpumon

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// TestFieldUint decodes an NVML field value of each value type; negative,
// fractional-overflow and unknown types are not a value.
func TestFieldUint(t *testing.T) {
	fv := func(typ nvml.ValueType, put func(b []byte)) *nvml.FieldValue {
		v := &nvml.FieldValue{ValueType: uint32(typ)}
		put(v.Value[:])
		return v
	}
	u16 := func(x uint16) func([]byte) { return func(b []byte) { binary.NativeEndian.PutUint16(b, x) } }
	u32 := func(x uint32) func([]byte) { return func(b []byte) { binary.NativeEndian.PutUint32(b, x) } }
	u64 := func(x uint64) func([]byte) { return func(b []byte) { binary.NativeEndian.PutUint64(b, x) } }
	for _, tc := range []struct {
		name   string
		v      *nvml.FieldValue
		want   uint64
		wantOK bool
	}{
		{"unsigned int", fv(nvml.VALUE_TYPE_UNSIGNED_INT, u32(85)), 85, true},
		{"unsigned long", fv(nvml.VALUE_TYPE_UNSIGNED_LONG, u64(1<<40)), 1 << 40, true},
		{"unsigned long long", fv(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG, u64(7)), 7, true},
		{"unsigned short", fv(nvml.VALUE_TYPE_UNSIGNED_SHORT, u16(300)), 300, true},
		{"signed int", fv(nvml.VALUE_TYPE_SIGNED_INT, u32(42)), 42, true},
		{"negative signed int", fv(nvml.VALUE_TYPE_SIGNED_INT, u32(math.MaxUint32)), 0, false},
		{"signed long long", fv(nvml.VALUE_TYPE_SIGNED_LONG_LONG, u64(9)), 9, true},
		{"negative signed long long", fv(nvml.VALUE_TYPE_SIGNED_LONG_LONG, u64(math.MaxUint64)), 0, false},
		{"double", fv(nvml.VALUE_TYPE_DOUBLE, u64(math.Float64bits(71.9))), 71, true},
		{"negative double", fv(nvml.VALUE_TYPE_DOUBLE, u64(math.Float64bits(-1))), 0, false},
		{"NaN", fv(nvml.VALUE_TYPE_DOUBLE, u64(math.Float64bits(math.NaN()))), 0, false},
		{"unknown type", fv(nvml.VALUE_TYPE_COUNT, u32(1)), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := fieldUint(tc.v)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("fieldUint = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
