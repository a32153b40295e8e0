//! The warning for limits that look like seconds written as milliseconds.

use std::sync::{Arc, Mutex};

use tollgate::{Limiter, RateLimit};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Collects the messages of WARN events.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == Level::WARN {
            let mut visitor = MessageVisitor(String::new());
            event.record(&mut visitor);
            self.0.lock().expect("warnings lock").push(visitor.0);
        }
    }
}

fn limit(allowed: u32, interval_ms: u64) -> RateLimit {
    RateLimit::new(allowed, interval_ms, 0).expect("valid test limit")
}

#[test]
fn seconds_as_milliseconds_warns_once() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        // The public examples' 1000 per 60: 16,666 requests per second.
        let _first = Limiter::new(limit(1000, 60));
        let _second = Limiter::new(limit(1000, 60));
        let limiter = Limiter::new(limit(10, 1000));
        limiter.set_rate_limit(limit(1000, 60));
    });

    let warnings = warnings.0.lock().expect("warnings lock");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("16666 requests per second"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("milliseconds"), "{}", warnings[0]);
}

#[test]
fn plausible_limits_do_not_warn() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        // 1000 per second is the boundary; 5 per 100 ms is 50 per second.
        let _boundary = Limiter::new(limit(1000, 1000));
        let _short = Limiter::new(limit(5, 100));
        let _hourly = Limiter::new(limit(5000, 3_600_000));
    });
    assert!(warnings.0.lock().expect("warnings lock").is_empty());
}
