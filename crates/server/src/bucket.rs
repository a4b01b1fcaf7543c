//! A token bucket, the rate limit of the firewall (requests per client)
//! and of the application's sign-in (failures per client).

use std::time::{Duration, Instant};

/// A token bucket: `tokens` refill at `rate` per second up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at: Instant,
}

impl Bucket {
    pub fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    /// The tokens there at `now` (refilled, not taken).
    pub fn level(&self, rate: f64, burst: u32, now: Instant) -> f64 {
        let cap = f64::from(burst.max(1));
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(cap)
    }

    /// How long until a token is there; `None` when one is there now.
    pub fn wait(&self, rate: f64, burst: u32, now: Instant) -> Option<Duration> {
        let level = self.level(rate, burst, now);
        (level < 1.0).then(|| Duration::from_secs_f64((1.0 - level) / rate.max(f64::MIN_POSITIVE)))
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, rate: f64, burst: u32, now: Instant) -> Result<f64, Duration> {
        if let Some(wait) = self.wait(rate, burst, now) {
            self.tokens = self.level(rate, burst, now);
            self.at = now;
            return Err(wait);
        }
        self.tokens = self.level(rate, burst, now) - 1.0;
        self.at = now;
        Ok(self.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        assert!(b.take(2.0, 3, t0).is_ok());
        assert!(b.take(2.0, 3, t0).is_ok());
        assert!(b.take(2.0, 3, t0).is_ok());
        let wait = b.take(2.0, 3, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Half a second later one token is back, not more.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(2.0, 3, t1).is_ok());
        assert!(b.take(2.0, 3, t1).is_err());
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take(2.0, 3, t2).is_ok());
        }
        assert!(b.take(2.0, 3, t2).is_err());
    }
}
