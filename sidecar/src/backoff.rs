//! Retry policy for an unreachable peer: exponential backoff with jitter, reset on success.
use std::time::Duration;

pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff { base, max: max.max(base), failures: 0 }
    }

    /// The wait before the next attempt after one more failure: base * 2^failures, capped at
    /// max, then a random point in its upper half ("equal jitter"), so peers that failed
    /// together do not retry together.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.failures.min(20)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = exp / 2;
        let r = getrandom::u64().unwrap_or(0) % 1_000_000;
        half + half.mul_f64(r as f64 / 1_000_000.0)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, d) in d.iter().enumerate() {
            let cap = Duration::from_secs((1u64 << i).min(30));
            assert!(*d >= cap / 2 && *d <= cap, "attempt {i}: {d:?} not in [{:?}, {cap:?}]", cap / 2);
        }
        assert_eq!(b.failures(), 10);
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
