//go:build unix && race

package examples_test

func init() { raceEnabled = true }
