package auth

import "time"

// SetTokenFileClock gives f a clock the test moves.
func SetTokenFileClock(f *TokenFile, now func() time.Time) { f.now = now }
