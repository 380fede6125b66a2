//go:build race

package storage

// raceEnabled reports whether the tests run under the race detector, which
// makes hashing and compressing tens of megabytes slow.
const raceEnabled = true
