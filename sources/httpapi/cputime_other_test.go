//go:build !unix

package httpapi

import "time"

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
