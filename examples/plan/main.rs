//! Predicts how long a sync takes under a rate limit by running tollgate's
//! `Limiter` on tokio's paused clock. Run
//! `cargo run --release --example plan -- --help` for the flags.
//!
//! The planner builds the same `Limiter` a program would use and starts
//! `--workers` tasks. Each acquires a permit, waits for a latency drawn from
//! `--latency` and drops the permit, until every request has finished, while
//! tokio's paused clock jumps from timer to timer. It prints the
//! predicted duration and rate, which limit binds, how long requests queued
//! and for what, and the real time the simulation took. With `--verify` it
//! sends the same workload over HTTP to the strict mock provider on
//! 127.0.0.1 on the real clock and compares.
//!
//! # A prediction checked on the real clock
//!
//! ```text
//! $ cargo run --release --example plan -- --limit 50/1s --concurrency 5 \
//!       --latency 40ms --requests 500 --verify
//! workload: 500 requests, 5 workers (the concurrency cap)
//! limit:    50 per 1000 ms, at most 5 in flight
//! limiter:  strict window, margin auto: paces 50 per 1.010 s
//! latency:  40.0 ms fixed (seed 1)
//!
//! prediction (simulated in 0.297 ms of real time)
//!   duration          9.490 s
//!   rate              52.69 requests/s
//!   binding limit     rate, 2.3 times the other bound
//!   rate bound        9.130 s: 10 windows of 1.010 s, plus one mean latency after the last start
//!   concurrency bound 4.000 s: 500 requests x 40.0 ms mean latency / 5 in flight
//!   queued for rate   27.450 s of request-time, 100.0% of all queueing, mean 54.9 ms per request
//!   queued for slot   0.000 ms of request-time, 0.0% of all queueing, mean 0.000 ms per request
//!   queue wait        p50 0.000 ms, p90 0.000 ms, p99 610.0 ms, max 610.0 ms
//!   worst window      50 of 50 allowed in any 1000 ms
//!   peak in flight    5 of 5
//!
//! verify: sending 500 requests to the mock provider on the real clock...
//!
//! verify: 500 requests to the mock provider at 127.0.0.1:35075, latency 40.0 ms on the real clock
//!                          predicted      measured  difference
//!   duration                 9.490 s       9.529 s      +0.41%
//!   rate                     52.69/s       52.47/s      -0.41%
//!   429s                           0             0
//!   worst window                  50            50
//!   peak in flight                 5             5
//! verify passed: no 429, no violation, duration within 5% of the prediction
//! ```
//!
//! It takes about 10 seconds. The prediction is the same on every run; the
//! compute time, the port and the measured column vary. Each window's 50
//! requests go out 5 at a time in 400 ms, so the run ends 400 ms after the
//! last window opens at 9.09 s. Six runs on a 2-core machine measured
//! +0.40% to +0.57%, because the loopback HTTP round trip adds a little to
//! each request.
//!
//! # A million records at 100 requests per 10 seconds, 5 in flight
//!
//! ```text
//! $ cargo run --release --example plan -- --latency 200ms \
//!       --rate-limit '{"allowed_requests":100,"interval":10000,"max_concurrent_requests":5}' \
//!       --records 1000000 --page-size 100
//! workload: 10000 requests (1000000 records, 100 per page), 5 workers (the concurrency cap)
//! ...
//! prediction (simulated in 8.9 ms of real time)
//!   duration          1003.9 s (16 min 44 s)
//!   rate              9.96 requests/s
//!   binding limit     rate, 2.5 times the other bound
//! ```
//!
//! With `--page-size 10` the same million records take 100,000 requests and
//! 10093.9 s (2 h 48 min); that simulation took about 100 ms of real time on
//! the same machine. Only the page size helps here: the rate binds, so more
//! concurrency would not shorten the sync.

mod args;
mod bounds;
mod latency;
mod simulate;
mod units;
mod verify;

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use tollgate::{Margin, Policy};
use tracing_subscriber::EnvFilter;

use crate::args::{Command, Options};
use crate::bounds::Bounds;
use crate::latency::Latency;
use crate::simulate::Prediction;
use crate::units::format_duration;
use crate::verify::Measurement;

/// Maximum predicted duration that `--verify` runs on the real clock.
const MAX_VERIFY_DURATION: Duration = Duration::from_secs(600);

/// Maximum difference between the predicted and the measured duration that
/// `--verify` accepts, in percent of the prediction.
const MAX_DURATION_DIFFERENCE: f64 = 5.0;

fn main() -> ExitCode {
    // The limiter logs through tracing, for example when a limit looks like
    // seconds written as milliseconds.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();

    let options = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Plan(options)) => options,
        Ok(Command::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("run with --help to list the flags");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the prediction and, with `--verify`, the comparison. Returns
/// whether the check passed, which is always true without `--verify`.
fn run(options: &Options) -> Result<bool, Box<dyn Error>> {
    print_workload(options);
    let prediction = simulate::simulate(options, options.latency)?;
    print_prediction(options, &prediction);
    if !options.verify {
        return Ok(true);
    }

    let latency = options.latency.mean();
    let baseline = if options.latency.is_fixed() {
        prediction
    } else {
        println!(
            "\nnote: the mock provider has one fixed latency, so --verify uses the mean, {}, \
             and compares with a second simulation at that fixed latency",
            format_duration(latency)
        );
        simulate::simulate(options, Latency::Fixed(latency))?
    };
    if baseline.duration > MAX_VERIFY_DURATION {
        return Err(format!(
            "--verify runs on the real clock, and the predicted duration of {} is above its \
             maximum of {}; lower --requests or --records",
            format_duration(baseline.duration),
            format_duration(MAX_VERIFY_DURATION)
        )
        .into());
    }

    println!(
        "\nverify: sending {} requests to the mock provider on the real clock...",
        options.requests
    );
    let measurement = verify::verify(options, latency)?;
    Ok(print_comparison(options, &baseline, &measurement))
}

fn print_workload(options: &Options) {
    let limit = options.limit;
    let pages = match (options.records, options.page_size) {
        (Some(records), Some(page_size)) => {
            format!(" ({records} records, {page_size} per page)")
        }
        _ => String::new(),
    };
    println!(
        "workload: {} requests{pages}, {} workers ({})",
        options.requests, options.workers, options.workers_source
    );
    println!("limit:    {limit}");

    let bounds = Bounds::new(options, options.latency.mean());
    println!(
        "limiter:  {}, margin {}: paces {} per {}",
        describe_policy(options.policy),
        describe_margin(options.margin),
        bounds.allowed,
        format_duration(bounds.interval)
    );
    println!("latency:  {} (seed {})", options.latency, options.seed);
}

fn print_prediction(options: &Options, prediction: &Prediction) {
    let bounds = Bounds::new(options, options.latency.mean());
    let mean_latency = format_duration(options.latency.mean());
    println!(
        "\nprediction (simulated in {} of real time)",
        format_duration(prediction.compute_time)
    );
    print_row("duration", format_duration(prediction.duration));
    print_row("rate", format!("{:.2} requests/s", prediction.rate()));
    print_row("binding limit", bounds.binding());
    print_row(
        "rate bound",
        format!(
            "{}: {}, plus one mean latency after the last start",
            format_duration(bounds.rate),
            bounds.rate_reason,
        ),
    );
    print_row(
        "concurrency bound",
        format!(
            "{}: {} requests x {mean_latency} mean latency / {} in flight",
            format_duration(bounds.concurrency),
            options.requests,
            bounds.parallel,
        ),
    );

    let queued = prediction.slot_wait + prediction.rate_wait;
    for (label, wait) in [
        ("queued for rate", prediction.rate_wait),
        ("queued for slot", prediction.slot_wait),
    ] {
        print_row(
            label,
            format!(
                "{} of request-time, {:.1}% of all queueing, mean {} per request",
                format_duration(wait),
                100.0 * wait.as_secs_f64() / queued.as_secs_f64().max(1e-12),
                format_duration(wait / u32::try_from(options.requests).unwrap_or(u32::MAX)),
            ),
        );
    }
    print_row(
        "queue wait",
        format!(
            "p50 {}, p90 {}, p99 {}, max {}",
            format_duration(prediction.wait_percentile(50.0)),
            format_duration(prediction.wait_percentile(90.0)),
            format_duration(prediction.wait_percentile(99.0)),
            format_duration(prediction.wait_percentile(100.0)),
        ),
    );
    let allowed = options.limit.allowed_requests();
    let excess = if prediction.worst_window > u64::from(allowed) {
        "; a provider that counts a rolling window rejects the excess"
    } else {
        ""
    };
    print_row(
        "worst window",
        format!(
            "{} of {allowed} allowed in any {} ms{excess}",
            prediction.worst_window,
            options.limit.interval_ms()
        ),
    );
    print_row(
        "peak in flight",
        match options.limit.max_concurrent_requests() {
            0 => format!("{} (no cap)", prediction.peak_in_flight),
            cap => format!("{} of {cap}", prediction.peak_in_flight),
        },
    );
}

/// Prints the prediction next to the measurement and returns whether the
/// check passed.
fn print_comparison(options: &Options, predicted: &Prediction, measured: &Measurement) -> bool {
    let report = &measured.report;
    let duration_difference = difference(predicted.duration, measured.duration);
    println!(
        "\nverify: {} requests to the mock provider at {}, latency {} on the real clock",
        report.requests,
        measured.address,
        format_duration(options.latency.mean())
    );
    println!(
        "  {:<18}{:>14}{:>14}{:>12}",
        "", "predicted", "measured", "difference"
    );
    println!(
        "  {:<18}{:>14}{:>14}{:>+11.2}%",
        "duration",
        format_duration(predicted.duration),
        format_duration(measured.duration),
        duration_difference
    );
    println!(
        "  {:<18}{:>14}{:>14}{:>+11.2}%",
        "rate",
        format!("{:.2}/s", predicted.rate()),
        format!("{:.2}/s", measured.rate()),
        100.0 * (measured.rate() - predicted.rate()) / predicted.rate().max(1e-12)
    );
    // The simulation has no provider, but a window above the limit means a
    // strict provider rejects some requests.
    let predicted_429 = if predicted.worst_window > u64::from(options.limit.allowed_requests()) {
        "some"
    } else {
        "0"
    };
    println!(
        "  {:<18}{:>14}{:>14}",
        "429s", predicted_429, report.rejected_429
    );
    println!(
        "  {:<18}{:>14}{:>14}",
        "worst window", predicted.worst_window, report.worst_window
    );
    println!(
        "  {:<18}{:>14}{:>14}",
        "peak in flight", predicted.peak_in_flight, report.peak_in_flight
    );

    let mut problems = report.violations();
    if measured.client_429 > report.rejected_429 {
        problems.push(format!(
            "the client saw {} responses with status 429",
            measured.client_429
        ));
    }
    if measured.failures > 0 {
        problems.push(format!(
            "{} requests failed; see the errors above",
            measured.failures
        ));
    }
    if report.requests != options.requests {
        problems.push(format!(
            "the provider saw {} requests, expected {}",
            report.requests, options.requests
        ));
    }
    if duration_difference.abs() > MAX_DURATION_DIFFERENCE {
        problems.push(format!(
            "the duration differs from the prediction by {duration_difference:+.2}%, more than \
             {MAX_DURATION_DIFFERENCE}%"
        ));
    }

    if problems.is_empty() {
        println!(
            "verify passed: no 429, no violation, duration within {MAX_DURATION_DIFFERENCE}% of \
             the prediction"
        );
        return true;
    }
    for problem in &problems {
        eprintln!("verify failed: {problem}");
    }
    false
}

fn print_row(label: &str, value: String) {
    println!("  {label:<18}{value}");
}

/// Returns how much `measured` differs from `predicted`, in percent of
/// `predicted`.
fn difference(predicted: Duration, measured: Duration) -> f64 {
    let predicted = predicted.as_secs_f64();
    100.0 * (measured.as_secs_f64() - predicted) / predicted.max(1e-12)
}

fn describe_policy(policy: Policy) -> String {
    match policy {
        Policy::TokenBucket { burst } => format!("token bucket with burst {burst}"),
        _ => "strict window".into(),
    }
}

fn describe_margin(margin: Margin) -> String {
    match margin {
        Margin::None => "none".into(),
        Margin::Guard(guard) => format!("guard {}", format_duration(guard)),
        Margin::Share(percent) => format!("share {percent}%"),
        _ => "auto".into(),
    }
}
