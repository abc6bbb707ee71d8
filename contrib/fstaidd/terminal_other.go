//go:build !linux

package main

// isTerminal is false off Linux: fstaidd never prompts there, as from a
// script.
func isTerminal(any) bool { return false }
