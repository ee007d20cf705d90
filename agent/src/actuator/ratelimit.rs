//! A client-side token bucket for writes to the API server (client-go's default is 5/s, burst 10).
//! The arithmetic is a pure function of time; the async wrapper only sleeps.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pure token-bucket state.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(refill_per_sec: f64, capacity: u32, now: Instant) -> Self {
        TokenBucket { capacity: f64::from(capacity), refill_per_sec, tokens: f64::from(capacity), last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill_per_sec).min(self.capacity);
        self.last = now;
    }

    /// Takes a token now, or says how long until one is available. A caller that is told to
    /// wait has reserved its token: it must not ask again after waiting.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.refill_per_sec) }
    }
}

impl TokenBucket {
    /// How long until a token is available, without taking one.
    pub fn available_in(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.refill_per_sec)
        }
    }
}

/// Tokio's clock, so paused-time tests drive the limiter deterministically.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A shared limiter: `acquire().await` returns when the write may go.
#[derive(Debug)]
pub struct WriteLimiter {
    bucket: Mutex<TokenBucket>,
}

impl WriteLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        WriteLimiter { bucket: Mutex::new(TokenBucket::new(qps, burst, now())) }
    }

    /// How long until a write may go without waiting (nothing is reserved): a caller that must
    /// stay interruptible waits this long itself, then acquires at once.
    pub fn available_in(&self) -> Duration {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).available_in(now())
    }

    /// Waits for a token; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let wait = {
            let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            b.reserve(now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, 10, t0);
        for i in 0..10 {
            assert_eq!(b.reserve(t0), Duration::ZERO, "burst token {i}");
        }
        // The 11th waits one refill interval (200 ms at 5/s), the 12th two.
        assert_eq!(b.reserve(t0), Duration::from_millis(200));
        assert_eq!(b.reserve(t0), Duration::from_millis(400));
        // After 2 s the debt (2 tokens) is repaid and 8 more accumulated.
        let t1 = t0 + Duration::from_secs(2);
        for _ in 0..8 {
            assert_eq!(b.reserve(t1), Duration::ZERO);
        }
        assert!(b.reserve(t1) > Duration::ZERO);
    }

    #[test]
    fn asking_when_a_token_is_available_takes_none() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 1, t0);
        assert_eq!(b.available_in(t0), Duration::ZERO);
        assert_eq!(b.available_in(t0), Duration::ZERO, "asking twice takes nothing");
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.available_in(t0), Duration::from_millis(500));
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(b.available_in(t1), Duration::from_millis(300));
        let t2 = t0 + Duration::from_millis(500);
        assert_eq!(b.available_in(t2), Duration::ZERO);
        assert_eq!(b.reserve(t2), Duration::ZERO, "after waiting that long, acquiring does not wait");
        // With a debt (a reservation that must wait) the wait covers the debt too.
        assert_eq!(b.reserve(t2), Duration::from_millis(500));
        assert_eq!(b.available_in(t2), Duration::from_millis(1000));
    }

    #[test]
    fn refill_never_exceeds_capacity() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, 2, t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert_eq!(b.reserve(later), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_writes_beyond_the_burst() {
        let l = WriteLimiter::new(5.0, 10);
        let start = tokio::time::Instant::now();
        let mut waited = Vec::new();
        for _ in 0..15 {
            waited.push(l.acquire().await);
        }
        assert!(waited[..10].iter().all(Duration::is_zero));
        assert!(waited[10..].iter().all(|w| !w.is_zero()));
        // 5 writes past the burst at 5/s take ~1 s of (paused, auto-advanced) time.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(900) && elapsed <= Duration::from_millis(1100), "{elapsed:?}");
    }
}
