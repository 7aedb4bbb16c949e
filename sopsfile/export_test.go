package sopsfile

// SetPanicHook makes Decrypt call f as if it were sops reading data.
func SetPanicHook(f func(data []byte)) func() {
	panicHook = f
	return func() { panicHook = nil }
}
