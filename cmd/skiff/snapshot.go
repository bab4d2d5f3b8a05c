package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"skiff/fsm"
	"skiff/master"
	"skiff/raft"
)

const snapshotUsage = `Usage: skiff snapshot <command> [flags] FILE

Backups of the whole cluster state (every object the cluster stores):

  save FILE      stream a consistent snapshot from a master into FILE
  inspect FILE   verify FILE and show what it holds, without contacting any cluster
  restore FILE   replace a running cluster's state with FILE, through Raft (needs --yes)

A snapshot file ends with a SHA-256 of its content: a truncated or damaged file is refused
by inspect and restore. Run 'skiff snapshot <command> --help' for its flags.
`

func runSnapshot(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, snapshotUsage)
		if len(args) == 0 {
			return errors.New("missing command: save, inspect or restore")
		}
		return nil
	}
	switch args[0] {
	case "save":
		return runSnapshotSave(args[1:])
	case "inspect":
		return runSnapshotInspect(args[1:])
	case "restore":
		return runSnapshotRestore(args[1:])
	}
	fmt.Fprint(os.Stderr, snapshotUsage)
	return fmt.Errorf("unknown command %q: want save, inspect or restore", args[0])
}

// parseFileArgs parses fs and returns its single FILE argument; ok is false after --help.
func parseFileArgs(fs *flag.FlagSet, args []string) (file string, ok bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", false, nil
		}
		return "", false, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return "", false, fmt.Errorf("want exactly one FILE argument, got %d", fs.NArg())
	}
	return fs.Arg(0), true, nil
}

func runSnapshotSave(args []string) error {
	fs := flag.NewFlagSet("skiff snapshot save", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster")
	server := fs.String("server", "", "API URL of the master to ask (default: the kubeconfig's server); any master will do")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff snapshot save [flags] FILE

Streams a snapshot of the whole cluster state from a master into FILE. The master takes
it after a linearizable read, so every write acknowledged before the command started is in
it; writes go on meanwhile. The download goes to FILE.tmp, is verified (checksum, header,
state hash), and only then renamed to FILE: FILE is never a partial snapshot.

Flags:
`)
		fs.PrintDefaults()
	}
	file, ok, err := parseFileArgs(fs, args)
	if !ok {
		return err
	}
	c, err := loadClient(*kubeconfig)
	if err != nil {
		return err
	}
	if *server == "" {
		*server = c.server
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *server+"/skiff/v1/snapshot", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.streaming().Do(req)
	if err != nil {
		return fmt.Errorf("asking %s for a snapshot: %w", *server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asking %s for a snapshot: %w", *server, snapResponseError(resp))
	}
	fmt.Fprintf(os.Stderr, "Saving a snapshot of revision %s (%s objects) from %s\n",
		resp.Header.Get("X-Skiff-Revision"), resp.Header.Get("X-Skiff-Objects"), *server)

	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(tmp)
		}
	}()
	sum := sha256.New()
	prog := newTransferProgress("received", 0)
	n, err := io.Copy(io.MultiWriter(f, sum, prog), resp.Body)
	prog.done()
	if err != nil {
		return fmt.Errorf("downloading the snapshot after %d bytes: %w", n, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	b, err := readBackupFile(tmp, nil)
	if err != nil {
		return fmt.Errorf("the downloaded snapshot does not verify (was the connection cut?): %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	keep = true
	// The rename is durable only once its directory is synced.
	d, err := os.Open(filepath.Dir(file))
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return fmt.Errorf("%s is written and verified, but syncing its directory failed, so it may not survive a crash: %w", file, err)
	}
	fmt.Printf("Saved %s\n", file)
	fmt.Printf("  revision  %d (Raft term %d, index %d, taken by %s)\n", b.Info.Revision, b.Info.Term, b.Info.Index, b.Info.Node)
	fmt.Printf("  objects   %d\n", b.Info.Objects)
	fmt.Printf("  bytes     %d (%s)\n", n, snapBytes(n))
	fmt.Printf("  sha256    %s\n", hex.EncodeToString(sum.Sum(nil)))
	return nil
}

func runSnapshotInspect(args []string) error {
	fs := flag.NewFlagSet("skiff snapshot inspect", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff snapshot inspect FILE

Verifies FILE (its checksum, that it is complete, that its content matches its header) and
shows what it holds: when and where it was taken, its revision, its objects per resource,
and its state hash, which equals the 'hash' of /skiff/v1/raft/state-hash of a cluster in
exactly that state. It never contacts a cluster.
`)
	}
	file, ok, err := parseFileArgs(fs, args)
	if !ok {
		return err
	}
	sum := sha256.New()
	b, err := readBackupFile(file, sum)
	if err != nil {
		return err
	}
	s := master.SummarizeState(b.State)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "File\t%s\n", file)
	fmt.Fprintf(tw, "Size\t%d bytes (%s)\n", b.Size, snapBytes(b.Size))
	fmt.Fprintf(tw, "SHA-256\t%s\n", hex.EncodeToString(sum.Sum(nil)))
	fmt.Fprintf(tw, "Format\tversion %d, checksum verified\n", b.Info.FormatVersion)
	fmt.Fprintf(tw, "Taken\t%s by master %s (skiff %s)\n", b.Info.CreatedAt.Format(time.RFC3339), snapDash(b.Info.Node), snapDash(b.Info.Version))
	fmt.Fprintf(tw, "Revision\t%d (Raft term %d, applied index %d)\n", b.Info.Revision, b.Info.Term, b.Info.Index)
	fmt.Fprintf(tw, "Objects\t%d\n", s.Objects)
	fmt.Fprintf(tw, "State hash\t%s (matches the header)\n", s.Hash)
	tw.Flush()
	fmt.Println()
	snapPrintResources(os.Stdout, []string{"OBJECTS"}, s.Resources)
	return nil
}

func runSnapshotRestore(args []string) error {
	fs := flag.NewFlagSet("skiff snapshot restore", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster")
	yes := fs.Bool("yes", false, "really replace the cluster's state (without it, only show what would be replaced)")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff snapshot restore [--yes] [flags] FILE

Replaces the whole state of a running cluster with the snapshot in FILE, through Raft: the
leader commits it in log entries of a few MiB and the last one swaps the state on every
master at once. Objects keep the resourceVersions they have in the snapshot; the cluster's
revision moves past every revision it handed out before, every watch ends (clients relist),
and writes made while the restore runs are replaced by it. The running cluster keeps its
identity: its CA, admin token and master addresses stay, so kubeconfigs and agents keep
working. The snapshot may come from another cluster.

FILE is verified first; a damaged file is refused and nothing changes. Without --yes the
command only shows what would be replaced.

Flags:
`)
		fs.PrintDefaults()
	}
	file, ok, err := parseFileArgs(fs, args)
	if !ok {
		return err
	}
	if _, err := readBackupFile(file, nil); err != nil {
		return fmt.Errorf("%w (nothing was sent to the cluster)", err)
	}
	c, err := loadClient(*kubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	target, err := restoreTarget(c)
	if err != nil {
		return err
	}
	if !*yes {
		var plan master.RestorePlan
		resp, err := uploadSnapshot(ctx, c, target+"/skiff/v1/snapshot/restore?dryRun=true", file)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return snapResponseError(resp)
		}
		if err := json.NewDecoder(resp.Body).Decode(&plan); err != nil {
			return fmt.Errorf("reading the plan: %w", err)
		}
		printRestorePlan(file, &plan)
		return errors.New("nothing was changed: rerun with --yes to replace the cluster's state")
	}
	for attempt := 0; ; attempt++ {
		resp, err := uploadSnapshot(ctx, c, target+"/skiff/v1/snapshot/restore", file)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusMisdirectedRequest && attempt < 3 {
			// Leadership moved since we looked: follow the master's pointer.
			var nl master.NotLeaderError
			_ = json.NewDecoder(resp.Body).Decode(&nl)
			resp.Body.Close()
			if nl.LeaderAPI == "" {
				return fmt.Errorf("the cluster has no leader to restore through: %s", nl.Message)
			}
			target = "https://" + nl.LeaderAPI
			fmt.Fprintf(os.Stderr, "Leadership moved; sending the restore to %s\n", nl.Leader)
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return snapResponseError(resp)
		}
		return followRestore(file, resp.Body)
	}
}

// followRestore prints a restore's progress stream and returns its outcome.
func followRestore(file string, body io.Reader) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev master.RestoreEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("reading the restore's progress: %w", err)
		}
		switch {
		case ev.Plan != nil:
			printRestorePlan(file, ev.Plan)
			fmt.Println()
		case ev.Progress != nil:
			printRestoreProgress(ev.Progress)
		case ev.Error != "" && ev.OutcomeUnknown:
			return fmt.Errorf("restore interrupted; its outcome is unknown: %s\n"+
				"The new leader either completes it or drops it. Running the same restore again is safe: "+
				"it ends in the snapshot's state either way (replacing whatever was written since, as any restore does)", ev.Error)
		case ev.Error != "":
			return fmt.Errorf("restore failed, the cluster's state is unchanged: %s", ev.Error)
		case ev.Result != nil:
			fmt.Printf("Restored: the cluster holds the snapshot's %d objects at revision %d", ev.Result.Objects, ev.Result.Revision)
			if ev.Result.Hash != "" {
				fmt.Printf(" (state hash %s)", ev.Result.Hash)
			}
			fmt.Println(".")
			fmt.Println("Every watch ended; controllers and clients relist from the restored state.")
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("lost the connection during the restore (it may or may not have completed; check with skiff status and kubectl): %w", err)
	}
	return errors.New("the master ended the restore without an outcome (it may or may not have completed; check with skiff status and kubectl)")
}

func printRestoreProgress(p *raft.RestoreProgress) {
	switch {
	case p.Message != "":
		fmt.Printf("%s\n", p.Message)
	case p.Total > 0:
		fmt.Printf("  committed %d of %d restore entries\n", p.Done, p.Total)
	}
}

// printRestorePlan shows what a restore replaces with what.
func printRestorePlan(file string, p *master.RestorePlan) {
	fmt.Printf("Restoring %s: revision %d, %d objects, taken %s by master %s.\n", file,
		p.Snapshot.Revision, p.SnapshotState.Objects, p.Snapshot.CreatedAt.Format(time.RFC3339), snapDash(p.Snapshot.Node))
	fmt.Printf("It replaces the whole state of the cluster led by %s (now at revision %d, %d objects):\n\n",
		snapDash(p.Leader), p.Current.Revision, p.Current.Objects)
	merged := map[string][2]int{}
	for r, n := range p.Current.Resources {
		v := merged[r]
		v[0] = n
		merged[r] = v
	}
	for r, n := range p.SnapshotState.Resources {
		v := merged[r]
		v[1] = n
		merged[r] = v
	}
	names := make([]string, 0, len(merged))
	for r := range merged {
		names = append(names, r)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tNOW\tAFTER\t")
	for _, r := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", r, merged[r][0], merged[r][1])
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\n", p.Current.Objects, p.SnapshotState.Objects)
	tw.Flush()
	if len(p.Kept) > 0 {
		fmt.Printf("\nKept from the running cluster instead (its identity): %s\n", strings.Join(p.Kept, ", "))
	}
	fmt.Println("Every watch ends and clients relist; writes made while the restore runs are lost.")
}

func snapPrintResources(w io.Writer, heads []string, counts map[string]int) {
	names := make([]string, 0, len(counts))
	for r := range counts {
		names = append(names, r)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "RESOURCE\t%s\t\n", strings.Join(heads, "\t"))
	for _, r := range names {
		fmt.Fprintf(tw, "%s\t%d\t\n", r, counts[r])
	}
	tw.Flush()
}

// restoreTarget finds the leader's API URL through the kubeconfig's master; it falls back to
// that master when the leader's address is unknown (it then answers with a pointer).
func restoreTarget(c *apiClient) (string, error) {
	var st raft.Stats
	if err := c.getJSON("", "/skiff/v1/raft", &st); err != nil {
		return "", err
	}
	if st.LeaderID == "" {
		return "", errors.New("the cluster has no leader right now; restore needs one (see skiff status)")
	}
	var masters []masterInfo
	if err := c.getJSON("", "/skiff/v1/masters", &masters); err == nil {
		for _, m := range masters {
			if m.ID == st.LeaderID && m.API != "" {
				return "https://" + m.API, nil
			}
		}
	}
	return c.server, nil
}

// uploadSnapshot POSTs file to url with progress on stderr.
func uploadSnapshot(ctx context.Context, c *apiClient, url, file string) (*http.Response, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	prog := newTransferProgress("uploaded", fi.Size())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, io.TeeReader(f, prog))
	if err != nil {
		return nil, err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/vnd.skiff.snapshot")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.streaming().Do(req)
	prog.done()
	if err != nil {
		return nil, fmt.Errorf("sending the snapshot to %s: %w", url, err)
	}
	return resp, nil
}

// readBackupFile opens and verifies a snapshot file, feeding every byte to sum if set.
func readBackupFile(path string, sum hash.Hash) (*fsm.Backup, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Checksum first: decoding a damaged file could allocate what its damaged lengths say.
	if err := fsm.VerifyBackup(bufio.NewReaderSize(f, 1<<20)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if sum != nil {
		r = io.TeeReader(r, sum)
	}
	b, err := fsm.ReadBackup(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// streaming is the client's HTTP client without an overall timeout, for transfers whose
// length depends on the cluster's size; callers bound them with a context instead.
func (c *apiClient) streaming() *http.Client {
	return &http.Client{Transport: c.http.Transport}
}

// snapResponseError turns a non-2xx answer into an error with the server's message.
func snapResponseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		return fmt.Errorf("%s: %s", resp.Status, m.Message)
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
}

// transferProgress prints how many bytes went by, at most once a second, on stderr.
type transferProgress struct {
	verb  string
	total int64
	n     int64
	last  time.Time
}

func newTransferProgress(verb string, total int64) *transferProgress {
	return &transferProgress{verb: verb, total: total, last: time.Now()}
}

func (p *transferProgress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if time.Since(p.last) >= time.Second {
		p.last = time.Now()
		p.print()
	}
	return len(b), nil
}

func (p *transferProgress) print() {
	if p.total > 0 {
		fmt.Fprintf(os.Stderr, "  %s %s of %s\n", p.verb, snapBytes(p.n), snapBytes(p.total))
	} else {
		fmt.Fprintf(os.Stderr, "  %s %s\n", p.verb, snapBytes(p.n))
	}
}

func (p *transferProgress) done() { p.print() }

func snapBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func snapDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
