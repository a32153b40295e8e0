//! The planner's flags, parsed by hand, and its `--help` text.

use std::num::NonZeroU32;
use std::time::Duration;

use tollgate::{Margin, Policy, RateLimit};

use crate::latency::Latency;
use crate::units::parse_duration;

pub(crate) const HELP: &str = "\
Predicts how long a batch of API requests takes under a rate limit, by running
tollgate's Limiter on tokio's paused clock, and optionally checks the prediction
against the mock provider on the real clock.

Usage: cargo run --release --example plan -- [FLAGS]

Rate limit (--limit or --rate-limit is required):
  --limit A/INTERVAL    A requests per INTERVAL, such as 100/10s or 5000/1h; the
                        interval must be a whole number of milliseconds
  --concurrency C       at most C requests in flight; 0 means no cap (default: the
                        cap in --rate-limit, or 0)
  --rate-limit JSON     the RateLimit wire object, interval in milliseconds, such as
                        '{\"allowed_requests\":100,\"interval\":10000,\"max_concurrent_requests\":5}';
                        --limit and --concurrency replace the fields they set

Workload (--latency and one of --requests or --records are required):
  --requests N          number of requests to send
  --records N           number of records to fetch; requires --page-size
  --page-size P         records per request, so requests = ceil(records / P)
  --latency SPEC        the provider's response time per request:
                          200ms                 fixed
                          uniform:100ms..300ms  uniform between the bounds
                          exp:50ms+20ms         50 ms plus an exponentially distributed
                                                extra time with mean 20 ms (mean 70 ms)
                        The simulation rounds each latency up to a whole millisecond,
                        the resolution of tokio's timer.
  --workers W           tasks sending requests, each one at a time (default: the
                        concurrency cap; without a cap, enough to keep twice the
                        rate in flight at the mean latency, at most 1000)
  --seed S              seed of the latency sampler, a whole number (default 1)

Limiter:
  --policy P            window (strict rolling window, the default) or bucket:BURST
                        (token bucket; the limiter caps BURST at A)
  --margin M            auto (default: adds interval/100, clamped to 5 ms..1 s, to
                        the interval), none, guard:DURATION (adds DURATION) or
                        share:PERCENT (uses PERCENT of A, 1 to 100)

Check:
  --verify              also run the workload against the mock provider on 127.0.0.1
                        on the real clock, print the prediction next to the result,
                        and exit with status 1 on a 429, a violation, or a duration
                        more than 5% from the prediction. The mock has one fixed
                        latency, so a random --latency is replaced by its mean.
  -h, --help            print this help

Durations need a unit: ns, us, ms, s, m or h, such as 250ms or 1.5s.
Flags take their value as the next argument or after '=' (--requests=500).
Exit status: 0 on success, 1 when the run or the --verify check fails, 2 for
invalid flags.
";

/// Maximum number of requests one plan may simulate. The simulation keeps
/// 16 bytes per request, so this bounds its memory at 160 MB.
pub(crate) const MAX_REQUESTS: u64 = 10_000_000;

/// Maximum number of workers one plan may run. Each is a task on the
/// simulated runtime.
const MAX_WORKERS: u64 = 100_000;

/// Maximum number of workers chosen when neither `--workers` nor a
/// concurrency cap sets the number.
const MAX_DEFAULT_WORKERS: u64 = 1000;

/// Each flag that takes a value, with the form its value must have.
const VALUE_FLAGS: [(&str, &str); 11] = [
    ("--limit", "A/INTERVAL, such as 100/10s or 5000/1h"),
    ("--concurrency", "a whole number, 0 for no cap"),
    (
        "--rate-limit",
        r#"a JSON object such as {"allowed_requests":100,"interval":10000,"max_concurrent_requests":5}"#,
    ),
    ("--requests", "a whole number of at least 1"),
    ("--records", "a whole number of at least 1"),
    ("--page-size", "a whole number of at least 1"),
    ("--latency", "200ms, uniform:100ms..300ms or exp:50ms+20ms"),
    ("--workers", "a whole number of at least 1"),
    ("--seed", "a whole number"),
    ("--policy", "window or bucket:BURST, such as bucket:10"),
    (
        "--margin",
        "auto, none, guard:DURATION (such as guard:10ms) or share:PERCENT (1 to 100)",
    ),
];

/// The action the command line requests.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Help,
    Plan(Options),
}

/// A complete, checked plan.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) limit: RateLimit,
    pub(crate) policy: Policy,
    pub(crate) margin: Margin,
    pub(crate) latency: Latency,
    pub(crate) requests: u64,
    /// Records per request, when the workload was given as records.
    pub(crate) page_size: Option<u64>,
    pub(crate) records: Option<u64>,
    pub(crate) workers: u32,
    /// The rule that chose `workers`, for the output.
    pub(crate) workers_source: &'static str,
    pub(crate) seed: u64,
    pub(crate) verify: bool,
}

/// The flags as given, before they are checked against each other.
#[derive(Default)]
struct Flags {
    limit: Option<(u32, u64)>,
    concurrency: Option<u32>,
    rate_limit: Option<RateLimit>,
    requests: Option<u64>,
    records: Option<u64>,
    page_size: Option<u64>,
    latency: Option<Latency>,
    workers: Option<u32>,
    seed: Option<u64>,
    policy: Option<Policy>,
    margin: Option<Margin>,
    verify: bool,
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// Returns a message that names the flag, the value and the expected form.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter();

    // Every pass consumes at least one argument, so the loop ends.
    while let Some(arg) = args.next() {
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--verify" if inline_value.is_some() => {
                return Err("--verify takes no value".into());
            }
            "--verify" => flags.verify = true,
            _ => {
                let Some(&(name, form)) = VALUE_FLAGS.iter().find(|(flag, _)| *flag == name) else {
                    return Err(format!("unknown flag {name:?}"));
                };
                let value = match inline_value {
                    Some(value) => value,
                    None => match args.next() {
                        Some(value) if !value.starts_with("--") => value,
                        _ => return Err(format!("missing value for {name}: expected {form}")),
                    },
                };
                flags.set(name, &value).map_err(|reason| {
                    format!("invalid {name} value {value:?}: {reason}; expected {form}")
                })?;
            }
        }
    }

    flags.finish().map(Command::Plan)
}

impl Flags {
    /// Parses and stores the value of one flag, or returns why it is invalid.
    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name {
            "--limit" => store(&mut self.limit, parse_limit(value)?),
            "--concurrency" => store(&mut self.concurrency, parse_u32(value, 0)?),
            "--rate-limit" => store(
                &mut self.rate_limit,
                serde_json::from_str::<RateLimit>(value).map_err(|error| error.to_string())?,
            ),
            "--requests" => store(&mut self.requests, parse_count(value, 1)?),
            "--records" => store(&mut self.records, parse_count(value, 1)?),
            "--page-size" => store(&mut self.page_size, parse_count(value, 1)?),
            "--latency" => store(&mut self.latency, Latency::parse(value)?),
            "--workers" => store(&mut self.workers, parse_u32(value, 1)?),
            "--seed" => store(&mut self.seed, parse_count(value, 0)?),
            "--policy" => store(&mut self.policy, parse_policy(value)?),
            "--margin" => store(&mut self.margin, parse_margin(value)?),
            _ => Err("this flag is not handled".into()),
        }
    }

    /// Checks the flags against each other and fills in the defaults.
    fn finish(self) -> Result<Options, String> {
        let limit = self.rate_limit()?;
        let latency = self.latency.ok_or(
            "missing --latency: give the provider's response time per request, such as \
             --latency 200ms",
        )?;

        let requests = match (self.requests, self.records, self.page_size) {
            (Some(requests), None, None) => requests,
            (None, Some(records), Some(page_size)) => records.div_ceil(page_size),
            (Some(_), Some(_), _) => {
                return Err("--requests and --records were both given; give one of them".into())
            }
            (Some(_), None, Some(_)) => {
                return Err("--page-size applies only to --records; remove it or give \
                            --records instead of --requests"
                    .into())
            }
            (None, Some(_), None) => {
                return Err("--records needs --page-size, the number of records per \
                            request, such as --page-size 100"
                    .into())
            }
            (None, None, _) => {
                return Err("missing workload: give --requests N, or --records N with \
                            --page-size P"
                    .into())
            }
        };
        if requests > MAX_REQUESTS {
            return Err(format!(
                "the workload is {requests} requests, above the simulation's maximum of \
                 {MAX_REQUESTS}; use larger pages or plan a part of the sync"
            ));
        }

        let (workers, workers_source) = match self.workers {
            Some(workers) => (workers, "set by --workers"),
            None => default_workers(&limit, &latency),
        };
        if u64::from(workers) > MAX_WORKERS {
            return Err(format!(
                "invalid --workers value \"{workers}\": expected at most {MAX_WORKERS}, \
                 because each worker is a task in the simulation"
            ));
        }
        Ok(Options {
            limit,
            policy: self.policy.unwrap_or_default(),
            margin: self.margin.unwrap_or_default(),
            latency,
            requests,
            page_size: self.page_size,
            records: self.records,
            workers,
            workers_source,
            seed: self.seed.unwrap_or(1),
            verify: self.verify,
        })
    }

    /// Combines `--rate-limit`, `--limit` and `--concurrency` into one limit.
    fn rate_limit(&self) -> Result<RateLimit, String> {
        let base_cap = self
            .rate_limit
            .map_or(0, |limit| limit.max_concurrent_requests());
        let (allowed, interval_ms) = match (self.limit, self.rate_limit) {
            (Some(limit), _) => limit,
            (None, Some(limit)) => (limit.allowed_requests(), limit.interval_ms()),
            (None, None) => {
                return Err("missing rate limit: give --limit A/INTERVAL (such as \
                            --limit 100/10s) or --rate-limit JSON"
                    .into())
            }
        };
        let cap = self.concurrency.unwrap_or(base_cap);
        RateLimit::new(allowed, interval_ms, cap)
            .map_err(|error| format!("invalid rate limit: {error}"))
    }
}

/// Stores a flag's value, rejecting a flag given twice.
fn store<T>(slot: &mut Option<T>, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err("the flag was given twice; give it once".into());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_count(text: &str, min: u64) -> Result<u64, String> {
    let value: u64 = text
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| "not a whole number".to_owned())?;
    if value < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(value)
}

fn parse_u32(text: &str, min: u64) -> Result<u32, String> {
    let value = parse_count(text, min)?;
    u32::try_from(value).map_err(|_| format!("must be at most {}", u32::MAX))
}

/// Parses `A/INTERVAL` into `allowed_requests` and the interval in whole
/// milliseconds. `100/s` means `100/1s`.
fn parse_limit(text: &str) -> Result<(u32, u64), String> {
    let (allowed, interval) = text
        .split_once('/')
        .ok_or("the '/' between the request count and the interval is missing")?;
    let allowed = parse_u32(allowed, 1)?;

    let interval = interval.trim();
    let interval = if interval.starts_with(|c: char| c.is_alphabetic()) {
        parse_duration(&format!("1{interval}"))?
    } else {
        parse_duration(interval)?
    };
    if interval < Duration::from_millis(1) || interval.subsec_nanos() % 1_000_000 != 0 {
        return Err("the interval must be a whole number of milliseconds, at least 1ms".into());
    }
    let interval_ms =
        u64::try_from(interval.as_millis()).map_err(|_| "the interval is too long")?;
    Ok((allowed, interval_ms))
}

fn parse_policy(text: &str) -> Result<Policy, String> {
    if text == "window" {
        return Ok(Policy::StrictWindow);
    }
    let burst = text.strip_prefix("bucket:").ok_or("unknown policy")?;
    let burst = NonZeroU32::new(parse_u32(burst, 1)?).ok_or("the burst must be at least 1")?;
    Ok(Policy::token_bucket(burst))
}

fn parse_margin(text: &str) -> Result<Margin, String> {
    match text {
        "auto" => return Ok(Margin::Auto),
        "none" => return Ok(Margin::None),
        _ => {}
    }
    if let Some(guard) = text.strip_prefix("guard:") {
        return parse_duration(guard).map(Margin::Guard);
    }
    if let Some(percent) = text.strip_prefix("share:") {
        let percent = parse_count(percent, 1)?;
        if percent > 100 {
            return Err("the share must be at most 100 percent".into());
        }
        return Ok(Margin::Share(percent as u8));
    }
    Err("unknown margin".into())
}

/// Chooses the worker count when `--workers` is absent: the concurrency cap,
/// or else enough workers to keep twice the rate in flight at the mean
/// latency (Little's law), so that the workers themselves rarely bind.
fn default_workers(limit: &RateLimit, latency: &Latency) -> (u32, &'static str) {
    if let Some(cap) = limit.concurrency_cap() {
        return (cap.get(), "the concurrency cap");
    }
    let in_flight = 2.0 * f64::from(limit.allowed_requests()) * latency.mean().as_secs_f64()
        / limit.interval().as_secs_f64();
    let workers = (in_flight.ceil() as u64).clamp(1, MAX_DEFAULT_WORKERS);
    (
        workers as u32,
        "no cap: twice the rate times the mean latency",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(line: &str) -> Result<Command, String> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    fn plan(line: &str) -> Options {
        match parse_words(line) {
            Ok(Command::Plan(options)) => options,
            other => panic!("{line:?} parsed to {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse_words(line) {
            Err(message) => message,
            Ok(command) => panic!("{line:?} was accepted as {command:?}"),
        }
    }

    #[test]
    fn limit_and_concurrency_flags() {
        let options = plan("--limit 100/10s --concurrency 5 --latency 200ms --requests 10");
        assert_eq!(options.limit.allowed_requests(), 100);
        assert_eq!(options.limit.interval_ms(), 10_000);
        assert_eq!(options.limit.max_concurrent_requests(), 5);
        assert_eq!(options.workers, 5);
        assert_eq!(options.requests, 10);
        assert_eq!(options.policy, Policy::StrictWindow);
        assert_eq!(options.margin, Margin::Auto);
    }

    #[test]
    fn rate_limit_json_and_overrides() {
        let json =
            r#"--rate-limit={"allowed_requests":100,"interval":10000,"max_concurrent_requests":5}"#;
        let options = plan(&format!("{json} --latency 1s --requests 1"));
        assert_eq!(
            options.limit,
            RateLimit::new(100, 10_000, 5).unwrap_or_else(|e| panic!("{e}"))
        );

        let options = plan(&format!(
            "{json} --concurrency 0 --limit 7/s --latency 1s --requests 1"
        ));
        assert_eq!(options.limit.allowed_requests(), 7);
        assert_eq!(options.limit.interval_ms(), 1000);
        assert_eq!(options.limit.max_concurrent_requests(), 0);
    }

    #[test]
    fn records_become_pages() {
        let options = plan("--limit 100/10s --latency 200ms --records 1001 --page-size 100");
        assert_eq!(options.requests, 11);
        assert_eq!(options.page_size, Some(100));
    }

    #[test]
    fn default_workers_without_cap() {
        // 50 per second at 100 ms keeps 5 in flight; twice that is 10.
        let options = plan("--limit 50/1s --latency 100ms --requests 1");
        assert_eq!(options.workers, 10);
        let options = plan("--limit 1/1h --latency 1ms --requests 1");
        assert_eq!(options.workers, 1);
    }

    #[test]
    fn policy_and_margin_forms() {
        let options =
            plan("--limit 10/s --latency 1ms --requests 1 --policy bucket:4 --margin guard:25ms");
        let burst = NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN);
        assert_eq!(options.policy, Policy::token_bucket(burst));
        assert_eq!(options.margin, Margin::Guard(Duration::from_millis(25)));

        let options = plan("--limit 10/s --latency 1ms --requests 1 --margin share:90");
        assert_eq!(options.margin, Margin::Share(90));
    }

    #[test]
    fn errors_name_flag_and_value() {
        let message = error("--limit 100/10 --latency 1ms --requests 1");
        assert!(message.contains("--limit"), "{message}");
        assert!(message.contains("\"100/10\""), "{message}");
        assert!(message.contains("unit"), "{message}");

        let message = error("--limit 100/10s --latency fast --requests 1");
        assert!(message.contains("--latency"), "{message}");
        assert!(message.contains("uniform:"), "{message}");

        let message = error("--limit 100/10s --latency 1ms --requests 0");
        assert!(message.contains("at least 1"), "{message}");
    }

    #[test]
    fn errors_for_missing_and_conflicting_flags() {
        let cases = [
            ("--latency 1ms --requests 1", "missing rate limit"),
            ("--limit 1/s --requests 1", "missing --latency"),
            ("--limit 1/s --latency 1ms", "missing workload"),
            (
                "--limit 1/s --latency 1ms --records 10",
                "needs --page-size",
            ),
            (
                "--limit 1/s --latency 1ms --requests 1 --records 1",
                "both given",
            ),
            (
                "--limit 1/s --limit 2/s --latency 1ms --requests 1",
                "given twice",
            ),
            (
                "--limit 1/s --latency 1ms --requests 1 --speed 3",
                "unknown flag",
            ),
            (
                "--limit --latency 1ms --requests 1",
                "missing value for --limit",
            ),
            (
                "--limit 1/0.5ms --latency 1ms --requests 1",
                "whole number of milliseconds",
            ),
            (
                "--limit 1/s --latency 1ms --requests 1 --margin share:101",
                "at most 100",
            ),
            (
                "--limit 1/s --latency 1ms --requests 1 --policy bucket:0",
                "at least 1",
            ),
            ("--limit 1/s --latency 1ms --requests 10000001", "maximum"),
        ];
        for (line, expected) in cases {
            let message = error(line);
            assert!(message.contains(expected), "{line:?}: {message}");
        }
    }

    #[test]
    fn help_flag_wins() {
        assert_eq!(parse_words("--limit 1/s --help"), Ok(Command::Help));
    }
}
