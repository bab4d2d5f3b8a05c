package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"HOME": "/root", "A": "a", "B": "b", "EMPTY": "", "D": "$(A)"}
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"f(1)", "f(1)"},
		{"(x) and )", "(x) and )"},
		{"$(HOME)/bin", "/root/bin"},
		{"$HOME/bin", "$HOME/bin"},
		{"${HOME}", "${HOME}"},
		{"pa$$word", "pa$word"},
		{"$$", "$"},
		{"$$$$", "$$"},
		{"$$(HOME)", "$(HOME)"},
		{"$$$(HOME)", "$/root"},
		{"$(A)$(B)", "ab"},
		{"$(A)-$(B)-$(A)", "a-b-a"},
		{"$(UNDEFINED)", "$(UNDEFINED)"},
		{"x$(UNDEFINED)y$(A)", "x$(UNDEFINED)ya"},
		{"$(EMPTY)", ""},
		{"$(D)", "$(A)"}, // a value is not expanded again
		{"$()", "$()"},
		{"$(A", "$(A"},
		{"$(A $$", "$(A $"}, // unterminated: later escapes still apply
		{"$(", "$("},
		{"$", "$"},
		{"a$", "a$"},
		{"$a", "$a"},
		{"$)", "$)"},
		{"$-$(A)", "$-a"},
		{"$é", "$é"},
		{"$(A(B))", "$(A(B))"}, // the reference ends at the first ')': name "A(B" is undefined
		{"$((A))", "$((A))"},
		{"($(A))", "(a)"},
		{"f($(A), $(B))", "f(a, b)"},
		{"echo $(A) && echo $((1+2))", "echo a && echo $((1+2))"},
	} {
		if got := expand(tc.in, env); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExpandArgs(t *testing.T) {
	env := []string{"GREETING=hello", "EQ=a=b", "EMPTY="}
	got := expandArgs([]string{"sh", "-c", "echo $(GREETING) $(EQ)$(EMPTY) $(NOPE) $$(GREETING)"}, env)
	want := []string{"sh", "-c", "echo hello a=b $(NOPE) $(GREETING)"}
	if !slices.Equal(got, want) {
		t.Fatalf("expandArgs = %q, want %q", got, want)
	}
	if expandArgs(nil, env) != nil {
		t.Fatal("nil args must stay nil (the image's entrypoint is used)")
	}
}

// TestExpandEnvValues checks resolveEnv's use of expand: a value sees only the variables
// defined before it.
func TestExpandEnvValues(t *testing.T) {
	s := &sources{a: &Agent{}, ns: "ns"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	c := corev1.Container{Env: []corev1.EnvVar{
		{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "BEFORE", Value: "$(LATER)"},
		{Name: "LATER", Value: "l"},
		{Name: "URL", Value: "http://$(NAME):80/f(1)?pw=pa$$word&home=$HOME"},
		{Name: "RAW", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
	}}
	got, err := s.resolveEnv(context.Background(), pod, c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"NAME=p", "BEFORE=$(LATER)", "LATER=l", "URL=http://p:80/f(1)?pw=pa$word&home=$HOME", "RAW=ns"}
	if !slices.Equal(got, want) {
		t.Fatalf("resolveEnv = %q, want %q", got, want)
	}
}

// volumeState is what the tests look at in a volume directory.
type volumeState struct {
	dirIno  uint64 // the volume directory's inode: it must never change
	version string // the ..data link's target
	linkIno uint64 // the ..data link's own inode: unchanged when nothing was written
}

func volumeStateOf(t *testing.T, dir string) volumeState {
	t.Helper()
	var st volumeState
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.dirIno = fi.Sys().(*syscall.Stat_t).Ino
	if st.version, err = os.Readlink(filepath.Join(dir, volumeDataLink)); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Lstat(filepath.Join(dir, volumeDataLink)); err != nil {
		t.Fatal(err)
	}
	st.linkIno = fi.Sys().(*syscall.Stat_t).Ino
	return st
}

// entries lists a directory's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func readVolumeFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustWriteVolume(t *testing.T, dir string, files map[string][]byte, items []corev1.KeyToPath, mode *int32) {
	t.Helper()
	if err := writeVolume(dir, files, items, mode); err != nil {
		t.Fatal(err)
	}
}

func TestWriteVolumeInitial(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	mustWriteVolume(t, dir, map[string][]byte{"a.conf": []byte("A"), "b": []byte("B")}, nil, nil)

	st := volumeStateOf(t, dir)
	if !isVolumeVersion(st.version) {
		t.Fatalf("..data -> %q, want a version directory", st.version)
	}
	if got, want := entries(t, dir), []string{st.version, volumeDataLink, "a.conf", "b"}; !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for name, want := range map[string]string{"a.conf": "A", "b": "B"} {
		if l, err := os.Readlink(filepath.Join(dir, name)); err != nil || l != filepath.Join(volumeDataLink, name) {
			t.Fatalf("%s is not a link to ..data/%s: %q %v", name, name, l, err)
		}
		if got := readVolumeFile(t, filepath.Join(dir, name)); got != want {
			t.Fatalf("%s = %q, want %q", name, got, want)
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode() != 0o644 {
			t.Fatalf("%s: mode %v %v, want 0644", name, fi.Mode(), err)
		}
	}
	// All links are relative: they resolve within a root opened at the directory, as they
	// must inside a container that bind-mounts it elsewhere.
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if b, err := root.ReadFile("a.conf"); err != nil || string(b) != "A" {
		t.Fatalf("reading through the root: %q %v", b, err)
	}
}

func TestWriteVolumeUnchangedWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string][]byte{"a": []byte("A"), "b": []byte("B")}
	items := []corev1.KeyToPath{{Key: "a", Path: "x/a"}, {Key: "b", Path: "b"}}
	mustWriteVolume(t, dir, files, items, nil)
	before := volumeStateOf(t, dir)
	names := entries(t, dir)
	fi, err := os.Stat(filepath.Join(dir, "x", "a"))
	if err != nil {
		t.Fatal(err)
	}
	fileIno := fi.Sys().(*syscall.Stat_t).Ino

	// Starting another container of the pod writes the same payload (a fresh copy of it).
	mustWriteVolume(t, dir, map[string][]byte{"a": []byte("A"), "b": []byte("B")}, items, nil)
	if after := volumeStateOf(t, dir); after != before {
		t.Fatalf("an unchanged payload rewrote the volume: %+v, was %+v", after, before)
	}
	if got := entries(t, dir); !slices.Equal(got, names) {
		t.Fatalf("entries %q, were %q", got, names)
	}
	if fi, err = os.Stat(filepath.Join(dir, "x", "a")); err != nil || fi.Sys().(*syscall.Stat_t).Ino != fileIno {
		t.Fatalf("x/a was rewritten: %v", err)
	}
}

func TestWriteVolumeChangeSwapsAtomically(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	mustWriteVolume(t, dir, map[string][]byte{"a": []byte("A1"), "b": []byte("B1"), "gone": []byte("G")}, nil, nil)
	before := volumeStateOf(t, dir)
	// A running container holds the directory itself (its bind mount); keep a handle on it.
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	mustWriteVolume(t, dir, map[string][]byte{"a": []byte("A2"), "b": []byte("B1"), "new": []byte("N")}, nil, nil)
	after := volumeStateOf(t, dir)
	if after.dirIno != before.dirIno {
		t.Fatal("the volume directory was replaced")
	}
	if after.version == before.version {
		t.Fatal("a changed payload kept the old version")
	}
	if _, err := os.Lstat(filepath.Join(dir, before.version)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old version is still there: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a removed key is still visible: %v", err)
	}
	if got, want := entries(t, dir), []string{after.version, volumeDataLink, "a", "b", "new"}; !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for name, want := range map[string]string{"a": "A2", "b": "B1", "new": "N"} {
		if b, err := root.ReadFile(name); err != nil || string(b) != want {
			t.Fatalf("%s through the held directory = %q %v, want %q", name, b, err, want)
		}
	}
}

func TestWriteVolumeNestedItems(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string][]byte{"a": []byte("A"), "b": []byte("B"), "unused": []byte("U")}
	items := []corev1.KeyToPath{
		{Key: "a", Path: "conf/deep/a.yaml"},
		{Key: "b", Path: "conf/b"},
		{Key: "b", Path: "./top"},
	}
	mustWriteVolume(t, dir, files, items, nil)
	st := volumeStateOf(t, dir)
	if got, want := entries(t, dir), []string{st.version, volumeDataLink, "conf", "top"}; !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	if l, err := os.Readlink(filepath.Join(dir, "conf")); err != nil || l != filepath.Join(volumeDataLink, "conf") {
		t.Fatalf("conf -> %q %v, want ..data/conf", l, err)
	}
	for p, want := range map[string]string{"conf/deep/a.yaml": "A", "conf/b": "B", "top": "B"} {
		if got := readVolumeFile(t, filepath.Join(dir, p)); got != want {
			t.Fatalf("%s = %q, want %q", p, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "conf", "deep")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("conf/deep: %v %v, want mode 0755", fi.Mode(), err)
	}

	// Dropping the nested items leaves only the top-level file.
	mustWriteVolume(t, dir, files, []corev1.KeyToPath{{Key: "b", Path: "top"}}, nil)
	st = volumeStateOf(t, dir)
	if got, want := entries(t, dir), []string{st.version, volumeDataLink, "top"}; !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
}

func TestWriteVolumeModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string][]byte{"a": []byte("A"), "b": []byte("B")}
	def, own := int32(0o600), int32(0o400)
	items := []corev1.KeyToPath{{Key: "a", Path: "a"}, {Key: "b", Path: "b", Mode: &own}}
	mustWriteVolume(t, dir, files, items, &def)
	mode := func(name string) os.FileMode {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	if mode("a") != 0o600 || mode("b") != 0o400 {
		t.Fatalf("modes a %v b %v, want 0600 and 0400", mode("a"), mode("b"))
	}

	// A mode change alone is an update.
	before := volumeStateOf(t, dir)
	def = 0o640
	mustWriteVolume(t, dir, files, items, &def)
	if volumeStateOf(t, dir).version == before.version {
		t.Fatal("a changed mode kept the old version")
	}
	if mode("a") != 0o640 || mode("b") != 0o400 {
		t.Fatalf("modes a %v b %v, want 0640 and 0400", mode("a"), mode("b"))
	}
}

// TestWriteVolumeConvertsOldLayout checks a volume directory written by the agent before
// versions existed (plain files and directories) is converted in place.
func TestWriteVolumeConvertsOldLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	for p, data := range map[string]string{"a": "old a", "sub/f": "old f", "gone": "old gone", "olddir/x": "x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino

	files := map[string][]byte{"a": []byte("new a"), "f": []byte("new f")}
	items := []corev1.KeyToPath{{Key: "a", Path: "a"}, {Key: "f", Path: "sub/f"}}
	mustWriteVolume(t, dir, files, items, nil)
	st := volumeStateOf(t, dir)
	if st.dirIno != ino {
		t.Fatal("the volume directory was replaced")
	}
	if got, want := entries(t, dir), []string{st.version, volumeDataLink, "a", "sub"}; !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for name := range map[string]bool{"a": true, "sub": true} {
		if l, err := os.Readlink(filepath.Join(dir, name)); err != nil || l != filepath.Join(volumeDataLink, name) {
			t.Fatalf("%s -> %q %v, want a link into ..data", name, l, err)
		}
	}
	if got := readVolumeFile(t, filepath.Join(dir, "a")); got != "new a" {
		t.Fatalf("a = %q", got)
	}
	if got := readVolumeFile(t, filepath.Join(dir, "sub", "f")); got != "new f" {
		t.Fatalf("sub/f = %q", got)
	}

	// Once converted, the same payload writes nothing.
	mustWriteVolume(t, dir, files, items, nil)
	if after := volumeStateOf(t, dir); after != st {
		t.Fatalf("a converted volume was rewritten: %+v, was %+v", after, st)
	}
}

// TestWriteVolumeCleansLeftovers checks names a crash can leave (a version never switched
// to, a temporary link) and a missing visible link are repaired without a new version.
func TestWriteVolumeCleansLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string][]byte{"a": []byte("A")}
	mustWriteVolume(t, dir, files, nil, nil)
	st := volumeStateOf(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "..2000_01_01_00_00_00.1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..2000_01_01_00_00_00.1", filepath.Join(dir, volumeDataLinkTmp)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	mustWriteVolume(t, dir, files, nil, nil)
	if after := volumeStateOf(t, dir); after != st {
		t.Fatalf("the version changed: %+v, was %+v", after, st)
	}
	if got, want := entries(t, dir), []string{st.version, volumeDataLink, "a"}; !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	if got := readVolumeFile(t, filepath.Join(dir, "a")); got != "A" {
		t.Fatalf("a = %q", got)
	}
}

func TestWriteVolumeRefusesBadPaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string][]byte{"a": []byte("A"), "..data": []byte("X")}
	mustWriteVolume(t, dir, files, []corev1.KeyToPath{{Key: "a", Path: "a"}}, nil)
	st := volumeStateOf(t, dir)
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		items []corev1.KeyToPath
	}{
		{"parent", files, []corev1.KeyToPath{{Key: "a", Path: "../a"}}},
		{"nested parent", files, []corev1.KeyToPath{{Key: "a", Path: "x/../../a"}}},
		{"absolute", files, []corev1.KeyToPath{{Key: "a", Path: "/etc/a"}}},
		{"reserved name", files, []corev1.KeyToPath{{Key: "a", Path: "..data"}}},
		{"reserved key", files, nil},
		{"empty", files, []corev1.KeyToPath{{Key: "a", Path: ""}}},
		{"the volume itself", files, []corev1.KeyToPath{{Key: "a", Path: "./"}}},
		{"missing key", files, []corev1.KeyToPath{{Key: "nope", Path: "a"}}},
		{"file and directory", files, []corev1.KeyToPath{{Key: "a", Path: "x"}, {Key: "a", Path: "x/y"}}},
	} {
		err := writeVolume(dir, tc.files, tc.items, nil)
		var cfgErr *configError
		if !errors.As(err, &cfgErr) {
			t.Errorf("%s: got %v, want a configError", tc.name, err)
		}
	}
	// A refused payload leaves the volume as it was.
	if after := volumeStateOf(t, dir); after != st {
		t.Fatalf("a refused payload changed the volume: %+v, was %+v", after, st)
	}
	if got := readVolumeFile(t, filepath.Join(dir, "a")); got != "A" {
		t.Fatalf("a = %q", got)
	}
}
