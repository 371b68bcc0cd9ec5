//! The Prometheus text exposition both darkwatch binaries write: the agent
//! (its `/metrics` and its node-exporter textfile) and the collector (its
//! `/metrics`). The format itself is prometheus-client's (text format
//! 0.0.4, its `prometheus_text` encoder); this crate only adapts it to what
//! the two sides render, which is a snapshot of values at scrape time:
//!
//! - families are written in the order they are added, and their samples in
//!   the order given (prometheus-client's `Family` is a hash map: its order
//!   would change from one render to the next, and the textfile with it);
//! - names and help are given as they appear in the output (`…_total`,
//!   a final period); prometheus-client adds both itself, so they are
//!   taken off before registering;
//! - gauges write an integral value as an integer (`1`, not `1.0`), as the
//!   hand-written renderers before did and the tests and rules expect.

use prometheus_client::encoding::{
    prometheus_text, EncodeGaugeValue, EncodeMetric, GaugeValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Exposition::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A sample's labels, in the order they are written; values are escaped
/// by the encoder.
pub type Labels = Vec<(&'static str, String)>;

/// Families of samples to render, in order.
#[derive(Debug, Default)]
pub struct Exposition(Registry);

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter family. `name` ends in `_total` and `help` in a period, as
    /// written. A family without samples still writes its HELP and TYPE.
    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, u64)>,
    ) -> &mut Self {
        self.counter_of(name, help, samples)
    }

    /// A counter family of fractional values (`process_cpu_seconds_total`),
    /// as [`Exposition::counter`].
    pub fn counter_f64(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) -> &mut Self {
        self.counter_of(name, help, samples)
    }

    fn counter_of<N>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, N)>,
    ) -> &mut Self
    where
        ConstCounter<N>: EncodeMetric + TypedMetric + Send + Sync + std::fmt::Debug + 'static,
    {
        let name = name
            .strip_suffix("_total")
            .unwrap_or_else(|| panic!("counter {name} must end in _total"));
        let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
        self.0
            .register(name, bare(help), Samples(samples.collect()));
        self
    }

    /// A gauge family; `help` ends in a period, as written.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) -> &mut Self {
        let samples = samples
            .into_iter()
            .map(|(l, v)| (l, ConstGauge::new(Number(v))));
        self.0
            .register(name, bare(help), Samples(samples.collect()));
        self
    }

    /// The text exposition of every family added.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.0).expect("writing to a String cannot fail");
        out
    }
}

/// `help` without the final period prometheus-client appends.
fn bare(help: &str) -> &str {
    help.strip_suffix('.')
        .unwrap_or_else(|| panic!("help {help:?} must end in a period"))
}

/// The samples of one family, written in the order given.
#[derive(Debug)]
struct Samples<M>(Vec<(Labels, M)>);

impl<M: EncodeMetric + TypedMetric> EncodeMetric for Samples<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        for (labels, metric) in &self.0 {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A gauge value: integral values (below 2^53, where f64 is exact) as
/// integers, others as prometheus-client writes floats.
#[derive(Debug, Clone, Copy)]
struct Number(f64);

impl EncodeGaugeValue for Number {
    fn encode(&self, encoder: &mut GaugeValueEncoder) -> std::fmt::Result {
        const EXACT: f64 = (1u64 << 53) as f64;
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < EXACT {
            (v as i64).encode(encoder)
        } else {
            v.encode(encoder)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_in_order_with_names_and_help_as_given() {
        let mut e = Exposition::new();
        e.counter(
            "x_requests_total",
            "Requests, by \"status\".",
            [
                (vec![("status", "500".to_string())], 2),
                (vec![("status", "200".to_string())], 7),
            ],
        )
        .counter("x_empty_total", "Nothing yet.", [])
        .gauge(
            "x_ratio",
            "A ratio.",
            [
                (vec![("a", "k\"p\\\n".to_string()), ("b", "1".into())], 0.75),
                (vec![("a", "one".to_string()), ("b", "2".into())], 1.0),
            ],
        )
        .gauge(
            "x_seconds",
            "Times.",
            [
                (Labels::new(), 1_700_000_000.25),
                (vec![("n", "big".into())], 2f64.powi(60)),
                (vec![("n", "neg".into())], -3.0),
                (vec![("n", "nan".into())], f64::NAN),
            ],
        );
        assert_eq!(
            e.render(),
            "# HELP x_requests_total Requests, by \"status\".\n\
             # TYPE x_requests_total counter\n\
             x_requests_total{status=\"500\"} 2\n\
             x_requests_total{status=\"200\"} 7\n\
             # HELP x_empty_total Nothing yet.\n\
             # TYPE x_empty_total counter\n\
             # HELP x_ratio A ratio.\n\
             # TYPE x_ratio gauge\n\
             x_ratio{a=\"k\\\"p\\\\\\n\",b=\"1\"} 0.75\n\
             x_ratio{a=\"one\",b=\"2\"} 1\n\
             # HELP x_seconds Times.\n\
             # TYPE x_seconds gauge\n\
             x_seconds 1700000000.25\n\
             x_seconds{n=\"big\"} 1152921504606847000.0\n\
             x_seconds{n=\"neg\"} -3\n\
             x_seconds{n=\"nan\"} NaN\n"
        );
    }

    #[test]
    #[should_panic(expected = "must end in _total")]
    fn a_counter_name_without_total_is_a_bug() {
        Exposition::new().counter("x_requests", "Requests.", []);
    }
}
