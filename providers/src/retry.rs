//! Retries with exponential backoff and jitter, honouring a server's `Retry-After`: one policy
//! shared by every provider that talks to a remote API.
//!
//! The policy is pure (the delay for an attempt is a function of the attempt number, the server's
//! hint and a random unit), so its bounds are unit-tested without sleeping; [`run`] is the async
//! loop that applies it.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`api.retries`): at most `retries + 1` attempts.
    pub retries: u32,
    /// The first backoff; each later one doubles, up to `max_delay`.
    pub base: Duration,
    pub max_delay: Duration,
    /// A server asking for a longer wait than this is not waited for: the call fails at once
    /// (waiting an hour inside an apply helps nobody).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// What a failed attempt says about trying again.
#[derive(Debug)]
pub enum Verdict<E> {
    /// Worth another attempt (throttled, temporarily unavailable); `after` is the server's
    /// `Retry-After` when it sent one.
    Retry { after: Option<Duration>, error: E },
    /// Retrying cannot help (bad input, authentication, not found, a timeout of a call that is
    /// not safe to repeat).
    Fail(E),
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 = the first retry), or `None` when no retry is left
    /// or the server asked for more than `max_retry_after`. `unit` is a random number in [0, 1]:
    /// without a hint the wait is "equal jitter", uniformly in [d/2, d] where
    /// d = min(base * 2^retry, max_delay), so concurrent clients spread out but still back off.
    /// A `Retry-After` hint is honoured exactly (never shortened).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Option<Duration> {
        if retry >= self.retries {
            return None;
        }
        if let Some(after) = retry_after {
            return (after <= self.max_retry_after).then_some(after);
        }
        let exp = self
            .base
            .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Some(exp / 2 + (exp / 2).mul_f64(unit))
    }
}

/// Why [`run`] gave up.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub error: E,
    /// Attempts made (1 = the first attempt failed and no retry followed).
    pub attempts: u32,
    /// True when the last failure was retryable but retries ran out (or the server's
    /// `Retry-After` exceeded the policy's limit).
    pub exhausted: bool,
}

/// Runs `attempt(n)` (n = 0, 1, ...) until it succeeds, fails for good, or the policy has no
/// retry left, sleeping between attempts on the tokio timer.
pub async fn run<T, E, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T, GaveUp<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Verdict<E>>>,
{
    let mut n = 0u32;
    loop {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(Verdict::Fail(error)) => {
                return Err(GaveUp {
                    error,
                    attempts: n + 1,
                    exhausted: false,
                })
            }
            Err(Verdict::Retry { after, error }) => match policy.delay(n, after, fastrand::f64()) {
                None => {
                    return Err(GaveUp {
                        error,
                        attempts: n + 1,
                        exhausted: true,
                    })
                }
                Some(d) => {
                    tokio::time::sleep(d).await;
                    n += 1;
                }
            },
        }
    }
}

/// Parses a `Retry-After` header: delay-seconds or an IMF-fixdate HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (the only date form HTTP/1.1 senders may use).
fn parse_http_date(v: &str) -> Option<u64> {
    // "Wed, 21 Oct 2015 07:28:00 GMT"
    let rest = v.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn jitter_stays_within_half_and_full_backoff() {
        let p = policy(10);
        for retry in 0..10 {
            let full = Duration::from_millis(100 * (1u64 << retry)).min(p.max_delay);
            let lo = p.delay(retry, None, 0.0).unwrap();
            let hi = p.delay(retry, None, 1.0).unwrap();
            assert_eq!(lo, full / 2, "retry {retry}");
            assert_eq!(hi, full, "retry {retry}");
            for _ in 0..200 {
                let d = p.delay(retry, None, fastrand::f64()).unwrap();
                assert!(d >= lo && d <= hi, "retry {retry}: {d:?}");
            }
        }
        // Nonsense units are clamped, huge retry numbers do not overflow.
        assert_eq!(p.delay(0, None, 7.0), Some(Duration::from_millis(100)));
        assert_eq!(p.delay(0, None, f64::NAN), Some(Duration::from_millis(50)));
        let big = RetryPolicy {
            retries: u32::MAX,
            ..p
        };
        assert_eq!(big.delay(200, None, 1.0), Some(p.max_delay));
    }

    #[test]
    fn retry_after_is_honoured_exactly_and_capped() {
        let p = policy(3);
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(7)), 0.0),
            Some(Duration::from_secs(7))
        );
        // Longer than any backoff, still honoured; beyond the limit: give up.
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(10)), 0.5),
            Some(Duration::from_secs(10))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(11)), 0.5), None);
    }

    #[test]
    fn attempts_are_capped_by_retries() {
        let p = policy(2);
        assert!(p.delay(1, None, 0.5).is_some());
        assert_eq!(p.delay(2, None, 0.5), None);
        assert_eq!(policy(0).delay(0, None, 0.5), None);
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_then_gives_up_and_stops_on_fatal() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = run(&policy(3), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(Verdict::Retry {
                    after: Some(Duration::from_secs(1)),
                    error: "throttled",
                })
            }
        })
        .await;
        let e = r.unwrap_err();
        assert_eq!((e.attempts, e.exhausted, e.error), (4, true, "throttled"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = run(&policy(3), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Verdict::Fail("bad")) }
        })
        .await;
        assert!(!r.unwrap_err().exhausted);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Success after two throttled answers; the waits were the server's.
        let start = tokio::time::Instant::now();
        let v = run(&policy(3), |n| async move {
            if n < 2 {
                Err(Verdict::Retry {
                    after: Some(Duration::from_secs(2)),
                    error: (),
                })
            } else {
                Ok(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 2);
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[test]
    fn retry_after_header_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Wed, 32 Oct 2015 07:28:30 GMT", now),
            None
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
