//go:build race

package projections

// raceEnabled scales the heavy tests down: under the race detector the transpiled SQLite
// runs an order of magnitude slower.
const raceEnabled = true
