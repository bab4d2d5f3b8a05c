package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// parseWithConfig parses args into fs, first applying the settings of the YAML file named
// by --config (if any). The file's keys are the flag names; a flag given on the command
// line wins over the file, so operators can keep a file and override one setting.
func parseWithConfig(fs *flag.FlagSet, args []string) error {
	configPath := fs.String("config", "", "YAML file of settings, keyed by flag name (flags on the command line win)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return nil
	}
	b, err := os.ReadFile(*configPath)
	if err != nil {
		return fmt.Errorf("reading --config: %w", err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(b, &settings); err != nil {
		return fmt.Errorf("parsing %s: %w", *configPath, err)
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fs.Lookup(k) == nil || k == "config" {
			return fmt.Errorf("%s: unknown setting %q (settings are the flags of %s)", *configPath, k, fs.Name())
		}
		if explicit[k] {
			continue
		}
		v := settings[k]
		var s string
		switch vv := v.(type) {
		case []any:
			parts := make([]string, len(vv))
			for i, p := range vv {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		case float64:
			s = fmt.Sprintf("%v", vv)
		default:
			s = fmt.Sprint(vv)
		}
		if err := fs.Set(k, s); err != nil {
			return fmt.Errorf("%s: setting %s: %w", *configPath, k, err)
		}
	}
	return nil
}
