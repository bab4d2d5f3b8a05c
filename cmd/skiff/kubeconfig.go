package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func runKubeconfig(args []string) error {
	fs := flag.NewFlagSet("skiff kubeconfig", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff", "a master's data dir (or a `skiff dev` data dir)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff kubeconfig [--data-dir DIR] > kubeconfig\n\nPrints the admin kubeconfig a master wrote (cluster CA, its API address, the admin token).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	b, err := os.ReadFile(filepath.Join(*dataDir, "kubeconfig"))
	if err != nil {
		return fmt.Errorf("%w (the master writes it once its API serves)", err)
	}
	_, err = os.Stdout.Write(b)
	return err
}
