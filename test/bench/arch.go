package bench

import "runtime"

func goarch() string { return runtime.GOARCH }
