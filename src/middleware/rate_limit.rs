//! Rate limiting (限流): at most COUNT requests per UNIT, per client IP or
//! for everyone together; the rest get `429 Too Many Requests` with a
//! `Retry-After` that says when to come back.
//!
//! The article lists 限流 first among the middleware a `ReverseProxy` gains
//! (限流 熔断 降级 权限 数据统计: rate limiting, circuit breaking,
//! degradation, authorisation, statistics). It protects the upstreams from a
//! client that sends faster than they can serve, before the balancer even
//! chooses one; the middleware lab measures it.
//!
//! # Why GCRA
//!
//! The limiter is the `governor` crate's GCRA (Generic Cell Rate Algorithm,
//! from ATM networks). For every client it keeps **one timestamp**, the
//! *theoretical arrival time* (TAT): when the next request would be due if the
//! client sent at exactly the allowed rate. With `T` the interval between
//! requests (`per / count`) and `τ = (burst − 1) × T` the slack:
//!
//! ```text
//!   a request at `now` conforms  ⇔  now ≥ TAT − τ
//!   if it does:                     TAT = max(TAT, now) + T
//!   if not, it may come back in     TAT − τ − now        (the Retry-After)
//! ```
//!
//! That is a token bucket in disguise, with better manners:
//! - one number per client, updated with one compare-and-swap, so checking
//!   takes no lock and a million idle clients cost a million `u64`s;
//! - no refill timer: time itself refills the bucket;
//! - no window edges: a fixed "10 per second" counter lets 20 through in the
//!   instant around a second boundary (10 at 0.999 s, 10 at 1.000 s); GCRA
//!   never lets more than `burst` through at once;
//! - the exact wait falls out of the arithmetic, for `Retry-After`.
//!
//! # Memory
//!
//! Per-IP state must not grow without bound when many clients come and go.
//! A client whose TAT is in the past is indistinguishable from one never
//! seen, so it can be forgotten: governor's `retain_recent()` drops those.
//! [`RateLimiter::check`] sweeps by itself **every [`SWEEP_EVERY`] checks**,
//! so between two sweeps at most that many new clients are added, and the map
//! holds at most `SWEEP_EVERY` + (clients still inside their interval)
//! entries. Growth only ever comes from checks, so counting checks bounds it
//! without a timer; [`RateLimiter::housekeeping`] does the same sweep on
//! demand for anyone who wants memory back sooner (a status page, a test).

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::Quota;
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};

/// What a user is told when `--rate-limit` cannot be read.
const HOW_TO_WRITE: &str = "write COUNT/UNIT such as 10/s, 600/min or 5/100ms";

/// The largest COUNT accepted (a million requests per unit is already more
/// than the lab's proxy serves).
pub const MAX_COUNT: u32 = 1_000_000;
/// The shortest and the longest UNIT accepted.
pub const MIN_PER: Duration = Duration::from_millis(1);
pub const MAX_PER: Duration = Duration::from_secs(3600);

/// Per-IP state is swept of forgotten clients once every this many checks.
pub const SWEEP_EVERY: u64 = 4096;

/// `--rate-limit 10/s`: COUNT per UNIT, UNIT one of `s`, `sec`, `second`,
/// `m`, `min`, `minute`, `h`, `hour`, or a duration like `100ms` (`5/100ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The interval between two requests at exactly this rate (GCRA's `T`):
    /// 100 ms for `10/s`.
    pub fn interval(&self) -> Duration {
        // `max(1)` and the 1 ns floor only matter for a `Rate` built by hand
        // with a zero field; parsed rates are always within bounds.
        (self.per / self.count.max(1)).max(Duration::from_nanos(1))
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let s = s.trim();
        let Some((count, unit)) = s.split_once('/') else {
            return Err(format!("`{s}` has no unit: {HOW_TO_WRITE}"));
        };
        let (count, unit) = (count.trim(), unit.trim());
        if unit.is_empty() {
            return Err(format!("`{s}` has no unit: {HOW_TO_WRITE}"));
        }
        let count: u32 = count
            .parse()
            .map_err(|_| format!("`{count}` is not a whole number of requests: {HOW_TO_WRITE}"))?;
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(format!(
                "the count must be between 1 and {MAX_COUNT} (got {count}): {HOW_TO_WRITE}"
            ));
        }
        let per = match unit.to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(1),
            "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600),
            other => humantime::parse_duration(other)
                .map_err(|_| format!("`{unit}` is not a unit of time: {HOW_TO_WRITE}"))?,
        };
        if !(MIN_PER..=MAX_PER).contains(&per) {
            return Err(format!(
                "the unit must be between 1ms and 1h (got {}): {HOW_TO_WRITE}",
                humantime::format_duration(per)
            ));
        }
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    /// The shortest form that parses back: `10/s`, `600/min`, `1/h`,
    /// `5/100ms`, `3/2s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.count)?;
        let per = self.per;
        let unit = |f: &mut fmt::Formatter<'_>, n: u128, unit: &str| {
            if n == 1 {
                write!(f, "{unit}")
            } else {
                write!(f, "{n}{unit}")
            }
        };
        let nanos = per.as_nanos();
        const SEC: u128 = 1_000_000_000;
        if nanos == 0 {
            write!(f, "0s")
        } else if nanos.is_multiple_of(3600 * SEC) {
            unit(f, nanos / (3600 * SEC), "h")
        } else if nanos.is_multiple_of(60 * SEC) {
            unit(f, nanos / (60 * SEC), "min")
        } else if nanos.is_multiple_of(SEC) {
            unit(f, nanos / SEC, "s")
        } else if nanos.is_multiple_of(1_000_000) {
            write!(f, "{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            write!(f, "{}us", nanos / 1_000)
        } else {
            write!(f, "{nanos}ns")
        }
    }
}

/// `--rate-limit-by`: whose requests share a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LimitBy {
    /// One bucket per client IP: the TCP peer's address; X-Forwarded-For,
    /// which a client writes itself (the special-headers lab shows how easily
    /// it is spoofed), only from a `--trusted-proxy` peer.
    #[default]
    Ip,
    /// One bucket for all clients: the upstreams' total load is capped.
    Global,
}

impl LimitBy {
    /// Whose requests one bucket counts, in words: "per client IP".
    pub fn describe(self) -> &'static str {
        match self {
            LimitBy::Ip => "per client IP",
            LimitBy::Global => "for all clients together",
        }
    }
}

/// A refusal: when the next request would be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub wait: Duration,
}

type Keyed<C> = governor::RateLimiter<
    IpAddr,
    DashMapStateStore<IpAddr>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;
type Direct<C> =
    governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

enum Buckets<C: Clock> {
    /// A DashMap of GCRA states, sharded so that clients on different shards
    /// never wait for each other.
    PerIp(Keyed<C>),
    Global(Direct<C>),
}

/// The rate limiter a proxy consults once per request.
///
/// The clock is a type parameter only so tests can inject governor's
/// `FakeRelativeClock`; everyone else uses [`RateLimiter::new`] and the
/// monotonic clock.
pub struct RateLimiter<C: Clock = MonotonicClock> {
    rate: Rate,
    burst: NonZeroU32,
    by: LimitBy,
    buckets: Buckets<C>,
    /// Checks so far, to sweep every [`SWEEP_EVERY`].
    checks: AtomicU64,
}

impl RateLimiter {
    /// `burst`: how many requests may arrive back to back (GCRA's `τ/T + 1`).
    ///
    /// **Default: 1**, a smooth rate: one request every `per / count`
    /// (every 100 ms for `10/s`), never two at once. The lab measures the
    /// allowed rate over 2 s and expects it within ±10%; a client firing
    /// flat out at `10/s` gets 21 through in those 2 s with a burst of 1
    /// (10.5/s), but 30 with a burst of 10 (15/s: the full burst at once, then
    /// the rate), so a burst of `count` would teach that the limit is loose.
    /// The price of 1 is that a client sending at exactly the rate with some
    /// jitter sees a few refusals; `--burst N` absorbs that (it lets N through
    /// at once after N intervals of silence) and the lab shows both.
    /// A burst of 0 is taken as 1.
    pub fn new(rate: Rate, burst: Option<u32>, by: LimitBy) -> RateLimiter {
        RateLimiter::with_clock(rate, burst, by, MonotonicClock)
    }

    /// `Retry-After` in whole seconds, rounded up and at least 1 (RFC 9110
    /// §10.2.3 allows only whole seconds; rounding down would invite the
    /// client back too early, and `0` would invite it back at once).
    pub fn retry_after_header(wait: Duration) -> http::HeaderValue {
        let whole = wait.as_secs();
        let seconds = if wait.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        };
        http::HeaderValue::from(seconds.max(1))
    }
}

impl<C> RateLimiter<C>
where
    C: Clock,
{
    /// [`RateLimiter::new`] on a clock of the caller's choice (tests).
    pub fn with_clock(rate: Rate, burst: Option<u32>, by: LimitBy, clock: C) -> RateLimiter<C> {
        let burst = NonZeroU32::new(burst.unwrap_or(1)).unwrap_or(NonZeroU32::MIN);
        // `interval()` is never zero, so `with_period` always answers `Some`;
        // the fallback (one per second) is there only to avoid an unwrap.
        let quota = Quota::with_period(rate.interval())
            .unwrap_or(Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let buckets = match by {
            LimitBy::Ip => Buckets::PerIp(governor::RateLimiter::dashmap_with_clock(quota, clock)),
            LimitBy::Global => {
                Buckets::Global(governor::RateLimiter::direct_with_clock(quota, clock))
            }
        };
        RateLimiter {
            rate,
            burst,
            by,
            buckets,
            checks: AtomicU64::new(0),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    pub fn by(&self) -> LimitBy {
        self.by
    }

    /// Lets one request from `client` through, or says how long it must
    /// wait. `client` is the TCP peer; it is ignored with [`LimitBy::Global`].
    pub fn check(&self, client: IpAddr) -> Result<(), RetryAfter> {
        match &self.buckets {
            Buckets::Global(limiter) => limiter.check().map_err(|not_until| RetryAfter {
                wait: not_until.wait_time_from(limiter.clock().now()),
            }),
            Buckets::PerIp(limiter) => {
                // `Relaxed`: the count only decides who sweeps, nothing else
                // is ordered around it.
                let checks = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
                if checks.is_multiple_of(SWEEP_EVERY) {
                    sweep(limiter);
                }
                // `::ffff:10.0.0.1` (an IPv4 client on a dual-stack socket)
                // and `10.0.0.1` are one client, so one bucket.
                let key = client.to_canonical();
                limiter.check_key(&key).map_err(|not_until| RetryAfter {
                    wait: not_until.wait_time_from(limiter.clock().now()),
                })
            }
        }
    }

    /// Forgets the clients whose buckets are full again (they would be let
    /// through as if new) and gives the memory back. `check` does this every
    /// [`SWEEP_EVERY`] checks by itself; calling it more often is harmless.
    pub fn housekeeping(&self) {
        if let Buckets::PerIp(limiter) = &self.buckets {
            sweep(limiter);
        }
    }

    /// How many clients the limiter remembers (0 with [`LimitBy::Global`]).
    pub fn tracked_clients(&self) -> usize {
        match &self.buckets {
            Buckets::PerIp(limiter) => limiter.len(),
            Buckets::Global(_) => 0,
        }
    }
}

fn sweep<C: Clock>(limiter: &Keyed<C>) {
    limiter.retain_recent();
    limiter.shrink_to_fit();
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("by", &self.by)
            .field("tracked_clients", &self.tracked_clients())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::Ipv4Addr;

    const MS: Duration = Duration::from_millis(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    fn limiter(
        r: &str,
        burst: Option<u32>,
        by: LimitBy,
    ) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            RateLimiter::with_clock(rate(r), burst, by, clock.clone()),
            clock,
        )
    }

    #[test]
    fn parses_the_units_a_user_writes() {
        let cases = [
            ("10/s", 10, 1_000),
            ("10/sec", 10, 1_000),
            ("10/second", 10, 1_000),
            ("600/m", 600, 60_000),
            ("600/min", 600, 60_000),
            ("600/minute", 600, 60_000),
            ("1/h", 1, 3_600_000),
            ("1/hour", 1, 3_600_000),
            ("5/100ms", 5, 100),
            ("3/2s", 3, 2_000),
            (" 7 / S ", 7, 1_000),
            ("1000000/s", 1_000_000, 1_000),
        ];
        for (text, count, per_ms) in cases {
            assert_eq!(
                text.parse::<Rate>(),
                Ok(Rate {
                    count,
                    per: Duration::from_millis(per_ms)
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn displays_the_shortest_form_that_parses_back() {
        for (text, shown) in [
            ("10/s", "10/s"),
            ("10/second", "10/s"),
            ("600/m", "600/min"),
            ("1/hour", "1/h"),
            ("5/100ms", "5/100ms"),
            ("3/2s", "3/2s"),
            ("3/1500ms", "3/1500ms"),
            ("3/2min", "3/2min"),
            ("2/60s", "2/min"),
        ] {
            let parsed = rate(text);
            assert_eq!(parsed.to_string(), shown, "{text}");
            assert_eq!(rate(shown), parsed, "{shown} round-trips");
        }
    }

    #[test]
    fn errors_say_what_to_write() {
        for (text, starts) in [
            ("10", "`10` has no unit"),
            ("ten/s", "`ten` is not a whole number"),
            ("-1/s", "`-1` is not a whole number"),
            ("0/s", "the count must be between 1 and 1000000 (got 0)"),
            ("1000001/s", "the count must be between 1 and 1000000"),
            ("10/fortnight", "`fortnight` is not a unit of time"),
            ("10/", "`10/` has no unit"),
            (
                "10/500us",
                "the unit must be between 1ms and 1h (got 500us)",
            ),
            ("10/2h", "the unit must be between 1ms and 1h (got 2h)"),
        ] {
            let err = text.parse::<Rate>().unwrap_err();
            assert!(err.starts_with(starts), "{text}: {err}");
            assert!(err.ends_with(HOW_TO_WRITE), "{text}: {err}");
        }
    }

    #[test]
    fn ten_per_second_with_burst_one_allows_one_then_says_wait_100ms() {
        // t (ms):  0    0     40    100   100
        // check:   ok   wait  wait  ok    wait
        //               100   60          100
        let (limiter, clock) = limiter("10/s", None, LimitBy::Ip);
        assert_eq!(limiter.check(ip(1)), Ok(()));
        assert_eq!(limiter.check(ip(1)), Err(RetryAfter { wait: 100 * MS }));
        clock.advance(40 * MS);
        assert_eq!(limiter.check(ip(1)), Err(RetryAfter { wait: 60 * MS }));
        clock.advance(60 * MS);
        assert_eq!(limiter.check(ip(1)), Ok(()));
        assert_eq!(limiter.check(ip(1)), Err(RetryAfter { wait: 100 * MS }));
    }

    #[test]
    fn a_burst_lets_that_many_through_at_once() {
        // burst 3 at 10/s, all at t = 0:  ok ok ok wait(100 ms)
        let (limiter, clock) = limiter("10/s", Some(3), LimitBy::Ip);
        let outcomes: Vec<_> = (0..4).map(|_| limiter.check(ip(1))).collect();
        assert_eq!(
            outcomes,
            [Ok(()), Ok(()), Ok(()), Err(RetryAfter { wait: 100 * MS })]
        );
        // After 300 ms of silence the whole burst is back.
        clock.advance(300 * MS);
        let allowed = (0..4).filter(|_| limiter.check(ip(1)).is_ok()).count();
        assert_eq!(allowed, 3);
        assert_eq!(limiter.burst(), 3);
    }

    /// A client firing every 10 ms for 2 s (201 attempts, t = 0 ..= 2000 ms).
    fn allowed_in_two_seconds(burst: Option<u32>) -> usize {
        let (limiter, clock) = limiter("10/s", burst, LimitBy::Ip);
        let mut allowed = 0;
        for step in 0..=200 {
            if step > 0 {
                clock.advance(10 * MS);
            }
            allowed += usize::from(limiter.check(ip(1)).is_ok());
        }
        allowed
    }

    #[test]
    fn the_default_burst_keeps_a_two_second_measurement_within_ten_percent() {
        // burst 1:  t = 0, 100, 200, …, 2000 ms  → 21 in 2 s = 10.5/s  (+5%)
        assert_eq!(allowed_in_two_seconds(None), 21);
        // burst 10: 10 at once (0..90 ms), then one per 100 ms
        //           → 30 in 2 s = 15/s (+50%): why 1 is the default.
        assert_eq!(allowed_in_two_seconds(Some(10)), 30);
    }

    #[test]
    fn per_ip_buckets_are_independent() {
        // client:  .1   .1    .2   .2
        // check:   ok   wait  ok   wait
        let (limiter, _clock) = limiter("10/s", None, LimitBy::Ip);
        assert_eq!(limiter.check(ip(1)), Ok(()));
        assert!(limiter.check(ip(1)).is_err());
        assert_eq!(limiter.check(ip(2)), Ok(()));
        assert!(limiter.check(ip(2)).is_err());
        assert_eq!(limiter.tracked_clients(), 2);
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_same_client() {
        let (limiter, _clock) = limiter("10/s", None, LimitBy::Ip);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(limiter.check(ip(1)), Ok(()));
        assert!(limiter.check(mapped).is_err());
    }

    #[test]
    fn global_shares_one_bucket() {
        // client:  .1   .2
        // check:   ok   wait 100 ms     (.2 pays for .1's request)
        let (limiter, _clock) = limiter("10/s", None, LimitBy::Global);
        assert_eq!(limiter.check(ip(1)), Ok(()));
        assert_eq!(limiter.check(ip(2)), Err(RetryAfter { wait: 100 * MS }));
        assert_eq!(limiter.tracked_clients(), 0);
        assert_eq!(limiter.by(), LimitBy::Global);
    }

    #[test]
    fn housekeeping_forgets_clients_whose_bucket_is_full_again() {
        let (limiter, clock) = limiter("10/s", None, LimitBy::Ip);
        for last in 1..=3 {
            limiter.check(ip(last)).unwrap();
        }
        assert_eq!(limiter.tracked_clients(), 3);
        // Still inside their 100 ms: remembered.
        limiter.housekeeping();
        assert_eq!(limiter.tracked_clients(), 3);
        clock.advance(200 * MS);
        limiter.housekeeping();
        assert_eq!(limiter.tracked_clients(), 0);
        // Forgetting changes nothing for them: a fresh bucket, as before.
        assert_eq!(limiter.check(ip(1)), Ok(()));
    }

    #[test]
    fn check_sweeps_by_itself_every_so_many_checks() {
        // SWEEP_EVERY − 1 distinct clients at t = 0, then 1 s of silence:
        // the next check is the SWEEP_EVERY-th, which sweeps them all away
        // before adding itself.
        let (limiter, clock) = limiter("10/s", None, LimitBy::Ip);
        for n in 1..SWEEP_EVERY {
            let n = u32::try_from(n).unwrap();
            limiter
                .check(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
                .unwrap();
        }
        assert_eq!(limiter.tracked_clients(), (SWEEP_EVERY - 1) as usize);
        clock.advance(Duration::from_secs(1));
        limiter.check(ip(250)).unwrap();
        assert_eq!(limiter.tracked_clients(), 1);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        for (wait, header) in [
            (Duration::ZERO, "1"),
            (Duration::from_nanos(1), "1"),
            (100 * MS, "1"),
            (Duration::from_secs(1), "1"),
            (1001 * MS, "2"),
            (Duration::from_secs(59), "59"),
            (Duration::from_millis(59_500), "60"),
        ] {
            assert_eq!(RateLimiter::retry_after_header(wait), header, "{wait:?}");
        }
    }

    #[test]
    fn the_real_clock_works_too() {
        // No fake clock: one allowed, the next refused with a wait of at
        // most one interval (loose: real time passes between the checks).
        let limiter = RateLimiter::new(rate("1/h"), None, LimitBy::Ip);
        assert_eq!(limiter.check(ip(1)), Ok(()));
        let refused = limiter.check(ip(1)).unwrap_err();
        assert!(refused.wait > Duration::from_secs(3590), "{refused:?}");
        assert!(refused.wait <= Duration::from_secs(3600), "{refused:?}");
        assert_eq!(limiter.rate().to_string(), "1/h");
    }
}
