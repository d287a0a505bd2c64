//go:build race

package mlsinterop

// The race detector slows our MLS code down several times over; CI runs
// this package under it (go test -race ./mlsinterop/...), so the interop
// matrix shrinks there. Races show up in a short run as well as a long one.
func init() { raceEnabled = true }
