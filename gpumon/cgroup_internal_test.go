package gpumon

import "testing"

// Container ids and pod UIDs of the cases below, in the forms the kubelet
// and the runtimes write them.
const (
	cid1 = "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376"
	cid2 = "0a1b22ec1361a97c3511db37a4bae932d41b22264e5b97611748f8b662312574"
	uid1 = "74c13223-5a00-11e9-b385-42010a80018d"
	uid2 = "fbc202d3-da21-11e8-ab5e-42010a80014b"
	// A static pod's UID is the hex of a hash of its manifest.
	staticUID = "6ba1a6d42d0f2e1e2d5ebc5f9e2a4e3e"
)

// underscored is uid as the systemd driver writes it in a slice name.
func underscored(uid string) string {
	b := []byte(uid)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

func TestParseCgroup(t *testing.T) {
	v1 := func(path string) string {
		// The hierarchies of a cgroup v1 host, all at the same path as the
		// kubelet and runc leave them (systemd's own hierarchy last).
		return "12:hugetlb:" + path + "\n11:memory:" + path + "\n10:cpuset:" + path +
			"\n4:cpu,cpuacct:" + path + "\n3:devices:" + path + "\n2:pids:" + path +
			"\n1:name=systemd:" + path + "\n0::/\n"
	}
	v2 := func(path string) string { return "0::" + path + "\n" }
	for _, tc := range []struct {
		name, in, uid, id string
	}{
		// cgroupfs driver (kubelet --cgroup-driver=cgroupfs), cgroup v1.
		{"cgroupfs besteffort", v1("/kubepods/besteffort/pod" + uid1 + "/" + cid1), uid1, cid1},
		{"cgroupfs burstable", v1("/kubepods/burstable/pod" + uid2 + "/" + cid2), uid2, cid2},
		{"cgroupfs guaranteed", v1("/kubepods/pod" + uid1 + "/" + cid1), uid1, cid1},
		{"cgroupfs only memory line", "6:memory:/kubepods/burstable/pod" + uid2 + "/" + cid2 + "\n", uid2, cid2},
		// systemd driver, cgroup v1, each runtime.
		{"systemd burstable containerd v1", v1("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored(uid1) + ".slice/cri-containerd-" + cid1 + ".scope"), uid1, cid1},
		{"systemd guaranteed docker v1", v1("/kubepods.slice/kubepods-pod" + underscored(uid2) + ".slice/docker-" + cid2 + ".scope"), uid2, cid2},
		{"systemd guaranteed crio v1", v1("/kubepods.slice/kubepods-pod" + underscored(uid1) + ".slice/crio-" + cid1 + ".scope"), uid1, cid1},
		// systemd driver, cgroup v2 (the default of current distributions).
		{"v2 besteffort containerd", v2("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + underscored(uid1) + ".slice/cri-containerd-" + cid1 + ".scope"), uid1, cid1},
		{"v2 burstable containerd", v2("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored(uid2) + ".slice/cri-containerd-" + cid2 + ".scope"), uid2, cid2},
		{"v2 guaranteed containerd", v2("/kubepods.slice/kubepods-pod" + underscored(uid1) + ".slice/cri-containerd-" + cid1 + ".scope"), uid1, cid1},
		{"v2 burstable crio", v2("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored(uid2) + ".slice/crio-" + cid2 + ".scope"), uid2, cid2},
		// CRI-O with crun under cgroup v2 puts the processes one level lower.
		{"v2 crio crun container level", v2("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored(uid2) + ".slice/crio-" + cid2 + ".scope/container"), uid2, cid2},
		{"v2 cgroupfs", v2("/kubepods/burstable/pod" + uid1 + "/" + cid1), uid1, cid1},
		// Read from a cgroup namespace of one's own (a container without
		// hostPID's cgroupns): the path is relative to the reader's.
		{"v2 cgroupns relative systemd", v2("/../../../kubepods-besteffort.slice/kubepods-besteffort-pod" + underscored(uid1) + ".slice/cri-containerd-" + cid1 + ".scope"), uid1, cid1},
		{"v2 cgroupns relative cgroupfs", v2("/../../pod" + uid2 + "/" + cid2), uid2, cid2},
		// A kind or k3d node: the node is itself a container.
		{"kind node", v1("/docker/" + cid2 + "/kubepods/besteffort/pod" + uid1 + "/" + cid1), uid1, cid1},
		{"kind node v2", v2("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + underscored(uid1) + ".slice/cri-containerd-" + cid1 + ".scope"), uid1, cid1},
		// A static pod (kube-apiserver, a node-local GPU agent).
		{"static pod systemd", v2("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + staticUID + ".slice/cri-containerd-" + cid1 + ".scope"), staticUID, cid1},
		{"static pod cgroupfs", v1("/kubepods/burstable/pod" + staticUID + "/" + cid2), staticUID, cid2},
		// The pod's own level (the pause process under cgroupfs v1 sits in
		// its own container level; a process in the pod level has none).
		{"pod level only", v2("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored(uid1) + ".slice"), uid1, ""},
		// Not Kubernetes.
		{"docker cgroupfs v1", v1("/docker/" + cid1), "", cid1},
		{"docker systemd v1", v1("/system.slice/docker-" + cid2 + ".scope"), "", cid2},
		{"docker v2", v2("/system.slice/docker-" + cid1 + ".scope"), "", cid1},
		{"docker old Debian", "4:memory:/" + cid2 + "\n2:cpu:/" + cid2 + "\n", "", cid2},
		{"podman", v2("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid1 + ".scope/container"), "", cid1},
		{"crio conmon", v2("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored(uid2) + ".slice/crio-conmon-" + cid2 + ".scope"), uid2, ""},
		{"login session", v2("/user.slice/user-1000.slice/session-3.scope"), "", ""},
		{"systemd service", v1("/system.slice/nvidia-persistenced.service"), "", ""},
		{"root", "0::/\n", "", ""},
		{"empty", "", "", ""},
		{"garbage", "not a cgroup file\n::\n:", "", ""},
		// Look-alikes that are not pods.
		{"pod-like outside kubepods", v2("/system.slice/pod" + uid1 + "/" + cid1), "", cid1},
		{"bad uid", v2("/kubepods/burstable/pod" + uid1[:35] + "x/" + cid1), "", cid1},
		{"short id", v2("/kubepods/burstable/pod" + uid1 + "/" + cid1[:12]), uid1, ""},
		{"uppercase normalised", v2("/kubepods/besteffort/pod" + "74C13223-5A00-11E9-B385-42010A80018D" + "/" + cid1), uid1, cid1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, id := parseCgroup([]byte(tc.in))
			if uid != tc.uid || id != tc.id {
				t.Errorf("parseCgroup(%q)\n= %q, %q\nwant %q, %q", tc.in, uid, id, tc.uid, tc.id)
			}
		})
	}
}

func TestParseTerminationLog(t *testing.T) {
	line := func(root string) string {
		return "1577 1560 259:1 " + root + " /dev/termination-log rw,relatime - ext4 /dev/nvme0n1p1 rw,discard\n"
	}
	mounts := "1560 1499 0:322 / / rw,relatime master:436 - overlay overlay rw,lowerdir=/var/lib/containerd/l1\n" +
		"1561 1560 0:324 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n" +
		"1576 1560 259:1 /var/lib/kubelet/pods/" + uid1 + "/etc-hosts /etc/hosts rw,relatime - ext4 /dev/nvme0n1p1 rw\n"
	for _, tc := range []struct {
		name, in, uid, want string
	}{
		{"kubelet on the root fs", mounts + line("/var/lib/kubelet/pods/"+uid1+"/containers/trainer/4b3a2c1d"), uid1, "trainer"},
		{"kubelet root its own fs", mounts + line("/pods/"+uid1+"/containers/vllm-server/0d1e2f3a"), uid1, "vllm-server"},
		{"other pod's uid", mounts + line("/var/lib/kubelet/pods/"+uid2+"/containers/trainer/4b3a2c1d"), uid1, ""},
		{"no termination log", mounts, uid1, ""},
		{"no uid", mounts + line("/var/lib/kubelet/pods/"+uid1+"/containers/trainer/4b3a2c1d"), "", ""},
		{"not a DNS label", mounts + line("/var/lib/kubelet/pods/"+uid1+"/containers/Trainer_1/4b3a2c1d"), uid1, ""},
		{"short line", "1 2 3\n", uid1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseTerminationLog([]byte(tc.in), tc.uid); got != tc.want {
				t.Errorf("parseTerminationLog = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEnvironValue(t *testing.T) {
	env := []byte("PATH=/usr/bin\x00HOSTNAME=train-0\x00HOSTNAMEX=no\x00KUBERNETES_SERVICE_HOST=10.0.0.1\x00")
	for _, tc := range []struct{ key, want string }{
		{"HOSTNAME", "train-0"},
		{"PATH", "/usr/bin"},
		{"HOME", ""},
		{"HOSTNAMEX", "no"},
	} {
		if got := environValue(env, tc.key); got != tc.want {
			t.Errorf("environValue(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	if got := environValue([]byte("HOSTNAME=last"), "HOSTNAME"); got != "last" {
		t.Errorf("without a final NUL: %q", got)
	}
}

func TestDNSNames(t *testing.T) {
	for _, tc := range []struct {
		s             string
		label, subdom bool
	}{
		{"default", true, true},
		{"train-0", true, true},
		{"a.b-c", false, true},
		{"-a", false, false},
		{"a-", false, false},
		{"A", false, false},
		{"", false, false},
		{"x_y", false, false},
		{string(make([]byte, 64)), false, false},
	} {
		if got := isDNSLabel(tc.s); got != tc.label {
			t.Errorf("isDNSLabel(%q) = %v", tc.s, got)
		}
		if got := isDNSSubdomain(tc.s); got != tc.subdom {
			t.Errorf("isDNSSubdomain(%q) = %v", tc.s, got)
		}
	}
}
