package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

// expand replaces $(VAR) references to variables defined earlier, as Kubernetes does.
func expand(v string, env map[string]string) string {
	return os.Expand(strings.NewReplacer("$(", "${", ")", "}").Replace(v), func(k string) string {
		if val, ok := env[k]; ok {
			return val
		}
		return "$(" + k + ")"
	})
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

// writeVolume writes a ConfigMap's or Secret's keys as files (all keys, or the listed
// items under their paths).
func writeVolume(dir string, files map[string][]byte, items []corev1.KeyToPath, mode *int32) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if mode != nil {
		perm = os.FileMode(*mode)
	}
	write := func(rel string, data []byte, m *int32) error {
		if strings.Contains(rel, "..") || filepath.IsAbs(rel) {
			return configErrorf("volume item path %q escapes the volume", rel)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		fm := perm
		if m != nil {
			fm = os.FileMode(*m)
		}
		return os.WriteFile(p, data, fm)
	}
	if len(items) == 0 {
		for k, v := range files {
			if err := write(k, v, nil); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		data, ok := files[it.Key]
		if !ok {
			return configErrorf("key %q not found for volume item %q", it.Key, it.Path)
		}
		if err := write(it.Path, data, it.Mode); err != nil {
			return err
		}
	}
	return nil
}

// mounts turns a container's volumeMounts into bind mounts.
func mounts(c corev1.Container, paths map[string]string) ([]Mount, error) {
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
		out = append(out, Mount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	return out, nil
}
