package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"skiff/agent"
)

func runImage(args []string) error {
	if len(args) == 0 || args[0] != "import" {
		return errors.New("usage: skiff image import [flags] FILE…  (see skiff image import --help)")
	}
	fs := flag.NewFlagSet("skiff image import", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff-agent", "the agent's data dir (its own containerd runs under <data-dir>/containerd)")
	socket := fs.String("containerd", "", "containerd socket the agent uses (default: the agent's own, under --data-dir)")
	namespace := fs.String("containerd-namespace", "skiff", "the agent's containerd namespace")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff image import [flags] FILE…

Imports OCI or docker image archives (docker save, ctr export, skopeo copy oci-archive:…)
into an agent's containerd, on the agent's host, so pods with imagePullPolicy IfNotPresent
or Never run them without a registry. Prints each image name imported.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name at least one archive file")
	}
	sock := *socket
	if sock == "" {
		sock = filepath.Join(*dataDir, "containerd", "containerd.sock")
	}
	rt, err := agent.NewContainerd(sock, *namespace)
	if err != nil {
		return err
	}
	defer rt.Close()
	for _, path := range fs.Args() {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		refs, err := rt.ImportImages(ctx, f)
		cancel()
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range refs {
			fmt.Println(r)
		}
	}
	return nil
}
