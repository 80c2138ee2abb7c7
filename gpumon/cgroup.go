package gpumon

import (
	"bytes"
	"strings"
)

// podIdentity is what gpumon can tell about the Kubernetes pod and
// container of a process without asking the kubelet. Every field is ""
// where it is not known.
type podIdentity struct {
	uid         string // pod UID, with dashes (as kube_pod_info's uid label), from the cgroup
	containerID string // the runtime's 64-hex container id, from the cgroup
	pod         string // pod name: the pod's hostname (HOSTNAME in /proc/<pid>/environ)
	namespace   string // the service account namespace file in the process's root
	container   string // container name: the kubelet's /dev/termination-log mount
}

// parseCgroup finds the pod UID and the container id in the contents of a
// /proc/<pid>/cgroup file, cgroup v1 (one line per hierarchy) or v2 (one
// "0::" line). It knows the kubelet's layouts, with the cgroupfs driver
//
//	/kubepods/pod<uid>/<id>                        (Guaranteed)
//	/kubepods/burstable/pod<uid>/<id>              (Burstable; besteffort likewise)
//
// and the systemd driver
//
//	/kubepods.slice/kubepods-pod<uid_>.slice/<runtime>-<id>.scope
//	/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
//
// (uid_ is the UID with underscores for dashes; the runtime prefix is
// cri-containerd, crio or docker; CRI-O with crun under cgroup v2 adds a
// /container level), wherever they sit in the path: under a kind or k3s
// node's own cgroup, or below "/.." where the reader is in a cgroup
// namespace of its own. A static pod's UID is 32 hex digits (a hash of its
// manifest), kept as it is. Outside Kubernetes it still finds the id of a
// Docker, Podman or containerd container (/docker/<id>,
// /system.slice/docker-<id>.scope, libpod-<id>.scope). Anything else
// (a systemd service, a login session) gives "" for both.
func parseCgroup(b []byte) (podUID, containerID string) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		// hierarchy-ID:controller-list:path; the path may itself hold ':'.
		first := bytes.IndexByte(line, ':')
		if first < 0 {
			continue
		}
		second := bytes.IndexByte(line[first+1:], ':')
		if second < 0 {
			continue
		}
		uid, id := parseCgroupPath(string(line[first+1+second+1:]))
		if uid != "" {
			return uid, id // every hierarchy of a pod's process has the same path
		}
		if containerID == "" {
			containerID = id
		}
	}
	return "", containerID
}

// parseCgroupPath finds the pod UID and container id in one cgroup path.
func parseCgroupPath(path string) (podUID, containerID string) {
	segs := strings.Split(strings.TrimSpace(path), "/")
	for i, seg := range segs {
		uid := podSegment(seg, segs[:i])
		if uid == "" {
			continue
		}
		// The container is the level right below the pod (the pod's own
		// cgroup holds no process of a container).
		if i+1 < len(segs) {
			containerID = containerSegment(segs[i+1])
		}
		return uid, containerID
	}
	// Not a pod: the innermost level that names a container.
	for i := len(segs) - 1; i >= 0; i-- {
		if id := containerSegment(segs[i]); id != "" {
			return "", id
		}
	}
	return "", ""
}

// podSegment returns the pod UID if seg is a pod's level:
// kubepods-...-pod<uid_>.slice (systemd driver; kind's kubelet, with its
// cgroup root /kubelet, prefixes kubelet-), or pod<uid> below kubepods, a
// QoS level or a "..".
func podSegment(seg string, parents []string) string {
	if strings.Contains(seg, "kubepods-") && strings.HasSuffix(seg, ".slice") {
		i := strings.LastIndex(seg, "-pod")
		if i < 0 {
			return ""
		}
		return podUID(strings.ReplaceAll(seg[i+len("-pod"):len(seg)-len(".slice")], "_", "-"))
	}
	if !strings.HasPrefix(seg, "pod") || len(parents) == 0 {
		return ""
	}
	switch parents[len(parents)-1] {
	case "kubepods", "burstable", "besteffort", "..":
		return podUID(seg[len("pod"):])
	}
	return ""
}

// podUID returns s if it is a pod UID: a UUID (8-4-4-4-12 hex digits) or,
// for a static pod, 32 hex digits.
func podUID(s string) string {
	switch len(s) {
	case 36:
		for i := range len(s) {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return ""
				}
			} else if !isHex(s[i]) {
				return ""
			}
		}
		return strings.ToLower(s)
	case 32:
		if allHex(s) {
			return strings.ToLower(s)
		}
	}
	return ""
}

// containerSegment returns the container id if seg names a container: 64
// hex digits (cgroupfs driver, Docker's /docker/<id>), or
// <runtime>-<id>.scope (systemd driver: cri-containerd-, crio-, docker-,
// libpod-). CRI-O's conmon (crio-conmon-<id>.scope) is not the container.
func containerSegment(seg string) string {
	if strings.HasSuffix(seg, ".scope") {
		seg = seg[:len(seg)-len(".scope")]
		if strings.HasPrefix(seg, "crio-conmon-") {
			return ""
		}
		i := strings.LastIndexByte(seg, '-')
		if i < 0 {
			return ""
		}
		seg = seg[i+1:]
	}
	if len(seg) == 64 && allHex(seg) {
		return strings.ToLower(seg)
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func allHex(s string) bool {
	for i := range len(s) {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// parseTerminationLog returns the container name from the contents of a
// /proc/<pid>/mountinfo file: the kubelet bind-mounts each container's
// /dev/termination-log from <kubelet root>/pods/<pod uid>/containers/<container
// name>/<random>, so the mount's root (field 4) names the container. uid is
// the pod UID from the cgroup, which the path must carry too; "" where there
// is no such mount (not a Kubernetes container, or its
// terminationMessagePath moved elsewhere).
func parseTerminationLog(b []byte, uid string) string {
	if uid == "" {
		return ""
	}
	want := "/pods/" + uid + "/containers/"
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		// id parent major:minor root mountpoint options ... - type source superoptions
		f := bytes.Fields(line)
		if len(f) < 5 || string(f[4]) != "/dev/termination-log" {
			continue
		}
		root := string(f[3])
		i := strings.Index(root, want)
		if i < 0 {
			continue
		}
		name, _, ok := strings.Cut(root[i+len(want):], "/")
		if ok && isDNSLabel(name) {
			return name
		}
	}
	return ""
}

// environValue returns the value of the variable key in the contents of a
// /proc/<pid>/environ file (NUL-separated key=value), or "".
func environValue(b []byte, key string) string {
	prefix := key + "="
	for len(b) > 0 {
		kv := b
		if i := bytes.IndexByte(b, 0); i >= 0 {
			kv, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(kv, []byte(prefix)); ok {
			return string(v)
		}
	}
	return ""
}

// isDNSLabel reports whether s is a DNS-1123 label (what Kubernetes
// requires of namespace and container names): 1 to 63 lower-case letters,
// digits and '-', beginning and ending with a letter or digit.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isDNSSubdomain reports whether s is a DNS-1123 subdomain (what Kubernetes
// requires of pod names, and so of the hostname it derives from one): at
// most 253 characters of dot-separated labels.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}
