//go:build race

package plugins_test

func init() { raceDetector = true }
