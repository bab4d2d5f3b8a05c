package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// configError is a pod's configuration the agent cannot satisfy (a missing ConfigMap key,
// an unsupported volume): the container waits with CreateContainerConfigError.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{fmt.Sprintf(format, args...)}
}

// sources caches the ConfigMaps and Secrets one pass reads.
type sources struct {
	a          *Agent
	ns         string
	podIP      string // the pod's address, known before its status says so
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func (s *sources) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := s.configMaps[name]; ok {
		return cm, nil
	}
	cm, err := s.a.cfg.Client.GetConfigMap(ctx, s.ns, name)
	if IsNotFound(err) {
		cm, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.configMaps[name] = cm
	return cm, nil
}

func (s *sources) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if sec, ok := s.secrets[name]; ok {
		return sec, nil
	}
	sec, err := s.a.cfg.Client.GetSecret(ctx, s.ns, name)
	if IsNotFound(err) {
		sec, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.secrets[name] = sec
	return sec, nil
}

func (a *Agent) sources(pod *corev1.Pod) *sources {
	return &sources{a: a, ns: pod.Namespace, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
}

// resolveEnv computes a container's environment: envFrom first, then env, later entries
// winning, as the kubelet does.
func (s *sources) resolveEnv(ctx context.Context, pod *corev1.Pod, c corev1.Container) ([]string, error) {
	env := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, from := range c.EnvFrom {
		optional := func(p *bool) bool { return p != nil && *p }
		switch {
		case from.ConfigMapRef != nil:
			cm, err := s.configMap(ctx, from.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				if optional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, configErrorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v)
			}
		case from.SecretRef != nil:
			sec, err := s.secret(ctx, from.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if sec == nil {
				if optional(from.SecretRef.Optional) {
					continue
				}
				return nil, configErrorf("secret %q not found", from.SecretRef.Name)
			}
			for k, v := range sec.Data {
				set(from.Prefix+k, string(v))
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, env))
			continue
		}
		v, ok, err := s.valueFrom(ctx, pod, e.ValueFrom)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

// expand replaces $(VAR) references in an env value, command or argument with the
// variables defined before it, following Kubernetes' rules rather than a shell's, since
// manifests are written for the kubelet: a reference to an undefined variable stays as
// written, $$ is an escape for a single $ (so $$(VAR) is the literal text $(VAR)), and any
// other $ — bare, followed by another character, or opening a reference that is never
// closed — is kept as it is. A reference ends at the first ')', as in Kubernetes.
func expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				// Unterminated: keep "$(" and go on after it, so later $$ escapes still apply.
				b.WriteString("$(")
				i++
				continue
			}
			ref := s[i : i+2+end+1]
			if v, ok := env[s[i+2:i+2+end]]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(ref)
			}
			i += len(ref) - 1
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// expandArgs expands a container's command or args against its resolved environment
// (KEY=value entries, as resolveEnv returns them), as the kubelet does before it starts
// the container: `command: ["sh", "-c", "echo $(GREETING)"]` must see the value.
func expandArgs(args, env []string) []string {
	if args == nil {
		return nil
	}
	vars := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, vars)
	}
	return out
}

func (s *sources) valueFrom(ctx context.Context, pod *corev1.Pod, from *corev1.EnvVarSource) (string, bool, error) {
	optional := func(p *bool) bool { return p != nil && *p }
	switch {
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := s.configMap(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		if cm != nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, true, nil
			}
		}
		if optional(ref.Optional) {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, s.ns, ref.Name)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		sec, err := s.secret(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		if sec != nil {
			if v, ok := sec.Data[ref.Key]; ok {
				return string(v), true, nil
			}
		}
		if optional(ref.Optional) {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in Secret %s/%s", ref.Key, s.ns, ref.Name)
	case from.FieldRef != nil:
		switch p := from.FieldRef.FieldPath; {
		case p == "metadata.name":
			return pod.Name, true, nil
		case p == "metadata.namespace":
			return pod.Namespace, true, nil
		case p == "metadata.uid":
			return string(pod.UID), true, nil
		case p == "spec.nodeName":
			return pod.Spec.NodeName, true, nil
		case p == "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, true, nil
		case p == "status.hostIP":
			return s.a.cfg.Address, true, nil
		case p == "status.podIP":
			if pod.Spec.HostNetwork {
				return s.a.cfg.Address, true, nil
			}
			if s.podIP != "" {
				return s.podIP, true, nil
			}
			return pod.Status.PodIP, true, nil
		case strings.HasPrefix(p, "metadata.labels['"):
			return pod.Labels[strings.TrimSuffix(strings.TrimPrefix(p, "metadata.labels['"), "']")], true, nil
		case strings.HasPrefix(p, "metadata.annotations['"):
			return pod.Annotations[strings.TrimSuffix(strings.TrimPrefix(p, "metadata.annotations['"), "']")], true, nil
		}
		return "", false, configErrorf("unsupported fieldRef %q", from.FieldRef.FieldPath)
	}
	return "", false, configErrorf("unsupported env value source")
}

// prepareVolumes materialises the pod's volumes under its directory and returns each
// volume's host path.
func (s *sources) prepareVolumes(ctx context.Context, pod *corev1.Pod) (map[string]string, error) {
	base := filepath.Join(s.a.cfg.DataDir, "pods", string(pod.UID), "volumes")
	paths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(base, v.Name)
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return nil, err
			}
			_ = os.Chmod(dir, 0o777)
		case v.HostPath != nil:
			dir = v.HostPath.Path
			if t := v.HostPath.Type; t != nil && *t == corev1.HostPathDirectoryOrCreate {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, err
				}
			} else if _, err := os.Stat(dir); err != nil && (v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathUnset) {
				return nil, configErrorf("hostPath %s: %v", dir, err)
			}
		case v.ConfigMap != nil:
			cm, err := s.configMap(ctx, v.ConfigMap.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil && !(v.ConfigMap.Optional != nil && *v.ConfigMap.Optional) {
				return nil, configErrorf("configmap %q not found", v.ConfigMap.Name)
			}
			files := map[string][]byte{}
			if cm != nil {
				for k, val := range cm.Data {
					files[k] = []byte(val)
				}
				for k, val := range cm.BinaryData {
					files[k] = val
				}
			}
			if err := writeVolume(dir, files, v.ConfigMap.Items, v.ConfigMap.DefaultMode); err != nil {
				return nil, err
			}
		case v.Secret != nil:
			sec, err := s.secret(ctx, v.Secret.SecretName)
			if err != nil {
				return nil, err
			}
			if sec == nil && !(v.Secret.Optional != nil && *v.Secret.Optional) {
				return nil, configErrorf("secret %q not found", v.Secret.SecretName)
			}
			files := map[string][]byte{}
			if sec != nil {
				files = sec.Data
			}
			if err := writeVolume(dir, files, v.Secret.Items, v.Secret.DefaultMode); err != nil {
				return nil, err
			}
		default:
			return nil, configErrorf("volume %q: only emptyDir, hostPath, configMap and secret volumes are supported", v.Name)
		}
		paths[v.Name] = dir
	}
	return paths, nil
}

// A configMap or secret volume's directory is bind-mounted into every container of the pod
// that mounts the volume, and each container start rewrites it, so the directory itself is
// never removed or replaced and its contents change only atomically, the way the kubelet's
// AtomicWriter does it:
//
//	<dir>/..data        -> ..2026_01_02_15_04_05.123456789   (the current version)
//	<dir>/..2026_01_…   the real files, in a directory of their own per version
//	<dir>/<name>        -> ..data/<name>   (one per top-level path component)
//
// An update writes a new version directory, points a temporary link at it and renames that
// over ..data (one atomic step: a reader sees the old files or the new ones, never a mix or
// none), adds and removes the top-level links, then deletes the old version. All links are
// relative, so they resolve inside a container that mounts <dir> anywhere. Names starting
// with ".." are reserved for this scheme; item paths cannot contain "..".
const (
	volumeDataLink    = "..data"
	volumeDataLinkTmp = "..data_tmp"
	volumeLinkTmp     = "..link_tmp"
	volumeOldTmp      = "..old_tmp"
)

// volumeWriteMu serialises volume writes: two writers in one directory would race for the
// temporary link names and each delete the other's version. Writes are small and rare
// (once per container start), so one lock for all volumes costs nothing.
var volumeWriteMu sync.Mutex

// volumeFile is one file of a volume's payload.
type volumeFile struct {
	data []byte
	mode os.FileMode
}

// writeVolume makes dir hold a ConfigMap's or Secret's keys as files (all keys, or the
// listed items under their paths), leaving it untouched when it already does, so starting
// one container of a pod never disturbs the files another has mounted.
func writeVolume(dir string, files map[string][]byte, items []corev1.KeyToPath, mode *int32) error {
	payload, err := volumePayload(files, items, mode)
	if err != nil {
		return err
	}
	volumeWriteMu.Lock()
	defer volumeWriteMu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating volume directory: %w", err)
	}
	current, err := os.Readlink(filepath.Join(dir, volumeDataLink))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A new volume, or one the agent wrote before versions existed (plain files):
		// the links below replace those files one by one, each in a single step.
		current = ""
	case err != nil:
		return fmt.Errorf("volume %s: reading %s: %w", dir, volumeDataLink, err)
	case !isVolumeVersion(current):
		return fmt.Errorf("volume %s: %s points at %q, not a version directory", dir, volumeDataLink, current)
	}
	if current == "" || !volumeHolds(filepath.Join(dir, current), payload) {
		ver, err := writeVolumeVersion(dir, payload)
		if err != nil {
			return err
		}
		if err := switchVolumeVersion(dir, ver); err != nil {
			_ = os.RemoveAll(filepath.Join(dir, ver))
			return err
		}
		current = ver
	}
	return syncVolumeLinks(dir, payload, current)
}

// volumePayload computes the files a volume holds, refusing item paths that would leave
// the volume or collide with the writer's reserved ".." names.
func volumePayload(files map[string][]byte, items []corev1.KeyToPath, mode *int32) (map[string]volumeFile, error) {
	perm := os.FileMode(0o644)
	if mode != nil {
		perm = os.FileMode(*mode) & os.ModePerm
	}
	payload := map[string]volumeFile{}
	add := func(rel string, data []byte, m *int32) error {
		if strings.Contains(rel, "..") || filepath.IsAbs(rel) {
			return configErrorf("volume item path %q escapes the volume", rel)
		}
		clean := filepath.Clean(rel)
		if rel == "" || clean == "." {
			return configErrorf("volume item path %q names no file", rel)
		}
		fm := perm
		if m != nil {
			fm = os.FileMode(*m) & os.ModePerm
		}
		payload[clean] = volumeFile{data: data, mode: fm}
		return nil
	}
	if len(items) == 0 {
		for k, v := range files {
			if err := add(k, v, nil); err != nil {
				return nil, err
			}
		}
	} else {
		for _, it := range items {
			data, ok := files[it.Key]
			if !ok {
				return nil, configErrorf("key %q not found for volume item %q", it.Key, it.Path)
			}
			if err := add(it.Path, data, it.Mode); err != nil {
				return nil, err
			}
		}
	}
	// A path cannot be both a file and a directory holding another item ("a" and "a/b").
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			if _, ok := payload[d]; ok {
				return nil, configErrorf("volume item paths %q and %q conflict", d, p)
			}
		}
	}
	return payload, nil
}

// isVolumeVersion reports whether name is one of the writer's version directories, so a
// ..data link pointing anywhere else is never followed or deleted.
func isVolumeVersion(name string) bool {
	return len(name) > 2 && strings.HasPrefix(name, "..") && !strings.ContainsRune(name, filepath.Separator) &&
		name != volumeDataLink && name != volumeDataLinkTmp && name != volumeLinkTmp && name != volumeOldTmp
}

// volumeHolds reports whether the version directory root holds exactly the payload: the
// same paths, bytes and permissions. Anything unreadable counts as different, so the
// caller writes a fresh version rather than keep a doubtful one.
func volumeHolds(root string, payload map[string]volumeFile) bool {
	errDiffers := errors.New("differs")
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		want, ok := payload[rel]
		if !ok || !d.Type().IsRegular() {
			return errDiffers
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want.mode {
			return errDiffers
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want.data) {
			return errDiffers
		}
		n++
		return nil
	})
	return err == nil && n == len(payload)
}

// writeVolumeVersion writes the payload into a new version directory of dir and returns
// its name. Modes are set explicitly, since the agent's umask must not decide what a
// container's user can read.
func writeVolumeVersion(dir string, payload map[string]volumeFile) (string, error) {
	tmp, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return "", fmt.Errorf("volume %s: creating a version directory: %w", dir, err)
	}
	err = os.Chmod(tmp, 0o755)
	for rel, f := range payload {
		if err != nil {
			break
		}
		p := filepath.Join(tmp, rel)
		if err = mkdirAllMode(tmp, filepath.Dir(rel)); err != nil {
			break
		}
		if err = os.WriteFile(p, f.data, f.mode); err == nil {
			err = os.Chmod(p, f.mode)
		}
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("volume %s: writing a version: %w", dir, err)
	}
	return filepath.Base(tmp), nil
}

// mkdirAllMode creates the directories of rel under root with mode 0755 whatever the
// umask, so every user in the container can reach the files below them.
func mkdirAllMode(root, rel string) error {
	if rel == "." {
		return nil
	}
	p := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		err := os.Mkdir(p, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err == nil {
			err = os.Chmod(p, 0o755)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// switchVolumeVersion points ..data at version ver by renaming a new link over it, which
// replaces the link in one step.
func switchVolumeVersion(dir, ver string) error {
	tmp := filepath.Join(dir, volumeDataLinkTmp)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("volume %s: removing a stale %s: %w", dir, volumeDataLinkTmp, err)
	}
	if err := os.Symlink(ver, tmp); err != nil {
		return fmt.Errorf("volume %s: linking the new version: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, volumeDataLink)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("volume %s: switching to the new version: %w", dir, err)
	}
	return nil
}

// syncVolumeLinks makes dir's visible entries exactly one link ..data/<name> per top-level
// name of the payload, and deletes every other entry: stale links, files left by the agent
// before versions existed, old versions and temporary names a crash left behind. It
// changes nothing when the entries are already right.
func syncVolumeLinks(dir string, payload map[string]volumeFile, current string) error {
	top := map[string]bool{}
	for rel := range payload {
		name, _, _ := strings.Cut(rel, string(filepath.Separator))
		top[name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(top)) {
		target := volumeDataLink + string(filepath.Separator) + name
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Symlink(target, p); err != nil {
				return fmt.Errorf("volume %s: linking %s: %w", dir, name, err)
			}
			continue
		case err != nil:
			return fmt.Errorf("volume %s: %w", dir, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			if t, err := os.Readlink(p); err == nil && t == target {
				continue
			}
		}
		if err := replaceWithLink(dir, name, target, fi.IsDir()); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	for _, e := range entries {
		if name := e.Name(); !top[name] && name != volumeDataLink && name != current {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("volume %s: removing %s: %w", dir, name, err)
			}
		}
	}
	return nil
}

// replaceWithLink replaces the entry name of dir (a file or directory the agent wrote
// before versions existed, or a wrong link) with a link to target without a moment in
// which the name is missing: a rename replaces a file or link in one step, and a
// directory is exchanged with the link (renameat2 RENAME_EXCHANGE) and then deleted.
func replaceWithLink(dir, name, target string, isDir bool) error {
	p := filepath.Join(dir, name)
	tmp := filepath.Join(dir, volumeLinkTmp)
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("volume %s: linking %s: %w", dir, name, err)
	}
	if !isDir {
		if err := os.Rename(tmp, p); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("volume %s: replacing %s: %w", dir, name, err)
		}
		return nil
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, p, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// The filesystem cannot exchange: move the directory aside, then put the link in
		// its place (the name is briefly missing).
		old := filepath.Join(dir, volumeOldTmp)
		if err = os.RemoveAll(old); err == nil {
			if err = os.Rename(p, old); err == nil {
				err = os.Rename(tmp, p)
			}
		}
		tmp = old
	}
	if err != nil {
		_ = os.Remove(filepath.Join(dir, volumeLinkTmp))
		return fmt.Errorf("volume %s: replacing directory %s: %w", dir, name, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("volume %s: removing the old %s: %w", dir, name, err)
	}
	return nil
}

// mounts turns c's volumeMounts into bind mounts of the prepared volumes. ConfigMap and
// Secret volumes are always read-only, as kubelet mounts them: the agent swaps their
// content atomically on update and would delete what a container wrote there.
func mounts(pod *corev1.Pod, c corev1.Container, paths map[string]string) ([]Mount, error) {
	apiData := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil || v.Secret != nil {
			apiData[v.Name] = true
		}
	}
	var out []Mount
	for _, vm := range c.VolumeMounts {
		src, ok := paths[vm.Name]
		if !ok {
			return nil, configErrorf("volumeMount %q names no volume of the pod", vm.Name)
		}
		if vm.SubPath != "" {
			if strings.Contains(vm.SubPath, "..") {
				return nil, configErrorf("subPath %q escapes the volume", vm.SubPath)
			}
			src = filepath.Join(src, vm.SubPath)
		}
		out = append(out, Mount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly || apiData[vm.Name]})
	}
	return out, nil
}
