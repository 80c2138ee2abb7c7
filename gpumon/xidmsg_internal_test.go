//go:build cgo

package gpumon

import "testing"

// The err_msg values of DCGM_FI_DEV_XID_ERRORS are dcgm-exporter's
// (internal/pkg/collector/xid_errors.go), "Unknown Error" past its table.
func TestXIDMessage(t *testing.T) {
	for _, tc := range []struct {
		xid  uint64
		want string
	}{
		{0, "No Error"},
		{13, "Graphics Engine Exception"},
		{31, "GPU memory page fault"},
		{48, "Double Bit ECC Error"},
		{79, "GPU has fallen off the bus"},
		{94, "Contained ECC error"},
		{119, "GSP RPC Timeout"},
		{172, "Uncorrectable SRAM Error"},
		{173, "Unknown Error"},
		{1 << 40, "Unknown Error"},
	} {
		if got := xidMessage(tc.xid); got != tc.want {
			t.Errorf("xidMessage(%d) = %q, want %q", tc.xid, got, tc.want)
		}
	}
	for i, m := range xidMessages {
		if m == "" {
			t.Errorf("xidMessages[%d] is empty", i)
		}
	}
}
