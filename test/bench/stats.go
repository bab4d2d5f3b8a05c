package bench

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// durations summarises a sample of latencies.
type durations []time.Duration

func (d durations) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s)) + 0.5)
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func (d durations) String() string {
	return fmt.Sprintf("p50 %s  p99 %s  (n=%d)", ms(d.pct(50)), ms(d.pct(99)), len(d))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// report prints aligned lines under a heading, so `make bench` output reads as a table.
type report struct {
	title string
	lines []string
}

func (r *report) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *report) String() string {
	return "\n== " + r.title + " ==\n  " + strings.Join(r.lines, "\n  ") + "\n"
}
