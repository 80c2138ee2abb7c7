//go:build cgo

package gpusim

import "encoding/binary"

// nativeEndian is the byte order of NVML's field value unions.
var nativeEndian = binary.NativeEndian
