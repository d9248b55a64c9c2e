// SPDX-License-Identifier: BSD-3-Clause

package netcore

import "time"

// TokenBucket lets Burst events through at once and Rate a second after
// that: the shape of the kernel's icmp_ratelimit, and of any log line a
// flood must not multiply. The zero value with Rate and Burst set is
// full. It is not safe for concurrent use: the owner's lock guards it.
type TokenBucket struct {
	Rate, Burst float64

	tokens float64
	last   time.Time
}

// Allow reports whether one more event may pass at now, and takes its token.
func (b *TokenBucket) Allow(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.Burst
	} else {
		b.tokens = min(b.Burst, b.tokens+now.Sub(b.last).Seconds()*b.Rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
