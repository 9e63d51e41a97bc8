//! What the gateway's `GET /metrics` shows, in the Prometheus text format (version 0.0.4)
//! as `prometheus-client` encodes it: HTTP requests by client and status, tool calls, errors
//! and latency by tool (counted here), and the children's and lanes' state (read when
//! scraped, through the crate's collectors).
//!
//! One part is written here by hand: `mcp_lane_wait_seconds`, a summary (sum and count,
//! no quantiles). prometheus-client has no summary type (`MetricType` is counter, gauge,
//! histogram, info or unknown, and its `MetricEncoder` has no summary method), so it cannot
//! print `# TYPE … summary` or a `_sum`/`_count` pair without `_bucket` lines.

use crate::child::{Child, State};
use crate::gateway::{Outcome, ToolCounts};
use crate::lanes::{LaneStatus, Lanes};
use hyper::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

/// The `Content-Type` of the text this module writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the call latency histogram.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Tool names kept apart in the metrics; more are counted as `tool="other"`.
const MAX_TOOLS: usize = 1000;

struct ToolStats {
    calls: u64,
    is_error: u64,
    protocol_error: u64,
    /// The latency histogram (`BUCKETS`).
    duration: Histogram,
    /// The seconds of every call, for the dashboard's mean (the histogram's own sum is not
    /// readable outside prometheus-client's `test-util` feature).
    seconds: f64,
}

impl Default for ToolStats {
    fn default() -> Self {
        Self {
            calls: 0,
            is_error: 0,
            protocol_error: 0,
            duration: Histogram::new(BUCKETS),
            seconds: 0.0,
        }
    }
}

/// What the gateway counts as requests and calls end.
#[derive(Default)]
struct Counts {
    requests: BTreeMap<(String, StatusCode), u64>,
    tools: BTreeMap<String, ToolStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The gateway's metrics: its counts and the registry that encodes them with the children's
/// and lanes' state.
pub struct Metrics {
    counts: Arc<Mutex<Counts>>,
    registry: Registry,
    lanes: Option<Arc<Lanes>>,
}

impl Metrics {
    pub fn new(children: Arc<Vec<Arc<Child>>>) -> Self {
        let counts = Arc::default();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(CountsCollector(Arc::clone(&counts))));
        registry.register_collector(Box::new(ChildCollector(children)));
        Self {
            counts,
            registry,
            lanes: None,
        }
    }

    /// Shows these lanes' limits, queues and waits too.
    pub fn with_lanes(&mut self, lanes: Arc<Lanes>) {
        self.registry
            .register_collector(Box::new(LaneCollector(Arc::clone(&lanes))));
        self.lanes = Some(lanes);
    }

    /// Counts an HTTP request the gateway answered.
    pub fn request(&self, client: &str, status: StatusCode) {
        *lock(&self.counts)
            .requests
            .entry((client.to_string(), status))
            .or_default() += 1;
    }

    /// Counts a tool call that ended after `seconds`.
    pub fn call(&self, tool: &str, outcome: Outcome, seconds: f64) {
        let mut c = lock(&self.counts);
        let key = if c.tools.contains_key(tool) || c.tools.len() < MAX_TOOLS {
            tool
        } else {
            "other"
        };
        let s = c.tools.entry(key.to_string()).or_default();
        s.calls += 1;
        match outcome {
            Outcome::Ok => {}
            Outcome::IsError => s.is_error += 1,
            Outcome::ProtocolError => s.protocol_error += 1,
        }
        s.duration.observe(seconds);
        s.seconds += seconds;
    }

    /// Calls, errors and mean latency per tool, most called first.
    pub fn tool_counts(&self) -> Vec<ToolCounts> {
        let c = lock(&self.counts);
        let mut out: Vec<ToolCounts> = c
            .tools
            .iter()
            .map(|(tool, s)| ToolCounts {
                tool: tool.clone(),
                calls: s.calls,
                errors: s.is_error + s.protocol_error,
                mean_ms: if s.calls > 0 {
                    s.seconds * 1000.0 / s.calls as f64
                } else {
                    0.0
                },
            })
            .collect();
        out.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.tool.cmp(&b.tool)));
        out
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail, nor do the collectors of their own.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding /metrics failed");
        }
        if let Some(lanes) = &self.lanes {
            wait_summary(&mut out, &lanes.status());
        }
        out
    }
}

/// Requests, tool calls, errors and latency.
struct CountsCollector(Arc<Mutex<Counts>>);

impl std::fmt::Debug for CountsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountsCollector")
    }
}

impl Collector for CountsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let c = lock(&self.0);
        if !c.requests.is_empty() {
            let mut family = encoder.encode_descriptor(
                "mcp_gateway_http_requests",
                "HTTP requests by client and status.",
                None,
                MetricType::Counter,
            )?;
            for ((client, status), n) in &c.requests {
                let labels = [("client", client.as_str()), ("status", status.as_str())];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        if c.tools.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "mcp_tool_calls",
            "tools/call requests over HTTP by tool.",
            None,
            MetricType::Counter,
        )?;
        for (tool, s) in &c.tools {
            ConstCounter::new(s.calls).encode(family.encode_family(&[("tool", tool.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "mcp_tool_call_errors",
            "Failed tool calls by tool and outcome (is_error: an error result; \
             protocol_error: a JSON-RPC error).",
            None,
            MetricType::Counter,
        )?;
        for (tool, s) in &c.tools {
            for (outcome, n) in [
                (Outcome::IsError, s.is_error),
                (Outcome::ProtocolError, s.protocol_error),
            ] {
                let labels = [("tool", tool.as_str()), ("outcome", outcome.as_str())];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "mcp_tool_call_duration_seconds",
            "Tool call latency by tool.",
            None,
            MetricType::Histogram,
        )?;
        for (tool, s) in &c.tools {
            s.duration
                .encode(family.encode_family(&[("tool", tool.as_str())])?)?;
        }
        Ok(())
    }
}

/// Each child's restarts and state, read when scraped.
struct ChildCollector(Arc<Vec<Arc<Child>>>);

impl std::fmt::Debug for ChildCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildCollector")
    }
}

impl Collector for ChildCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let statuses: Vec<_> = self.0.iter().map(|c| c.status()).collect();
        if statuses.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "mcp_child_restarts",
            "Restarts of each child server.",
            None,
            MetricType::Counter,
        )?;
        for s in &statuses {
            ConstCounter::new(s.restarts)
                .encode(family.encode_family(&[("server", s.name.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "mcp_child_state",
            "Each child server's state (1 for the current one).",
            None,
            MetricType::Gauge,
        )?;
        for s in &statuses {
            for state in [
                State::Starting,
                State::Running,
                State::Unresponsive,
                State::Restarting,
                State::Failed,
            ] {
                let name = serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let labels = [("server", s.name.as_str()), ("state", name.as_str())];
                ConstGauge::new(i64::from(s.state == state))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A gauge of each lane: its name, help text and value.
type LaneGauge = (&'static str, &'static str, fn(&LaneStatus) -> usize);

/// The lanes' gauges, read when scraped.
struct LaneCollector(Arc<Lanes>);

impl std::fmt::Debug for LaneCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LaneCollector")
    }
}

impl Collector for LaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let lanes = self.0.status();
        if lanes.is_empty() {
            return Ok(());
        }
        let gauges: [LaneGauge; 3] = [
            (
                "mcp_lane_limit",
                "Calls each priority lane runs at once.",
                |l| l.limit,
            ),
            (
                "mcp_lane_running",
                "Calls running in each priority lane.",
                |l| l.running,
            ),
            (
                "mcp_lane_queued",
                "Calls waiting for a place in each priority lane.",
                |l| l.queued,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for l in &lanes {
                let labels = [("server", l.server.as_str()), ("lane", l.lane.name())];
                ConstGauge::new(value(l)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// `mcp_lane_wait_seconds`, a summary without quantiles, by hand: prometheus-client has no
/// summary type (see the module's documentation).
fn wait_summary(out: &mut String, lanes: &[LaneStatus]) {
    if lanes.is_empty() {
        return;
    }
    out.push_str(
        "# HELP mcp_lane_wait_seconds Time calls waited for a place, by lane (count: calls \
         that got one).\n# TYPE mcp_lane_wait_seconds summary\n",
    );
    for l in lanes {
        let labels = format!(
            "server=\"{}\",lane=\"{}\"",
            label_value(&l.server),
            l.lane.name()
        );
        let _ = writeln!(
            out,
            "mcp_lane_wait_seconds_sum{{{labels}}} {}\nmcp_lane_wait_seconds_count{{{labels}}} {}",
            l.wait_s_total, l.started
        );
    }
}

/// A label value of the hand-written summary, escaped as the text format requires
/// (backslash, quote, newline); the crate escapes every other one.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::Lane;
    use std::collections::HashMap;

    /// One sample of the text format: name, labels, value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// Parses the Prometheus text format (0.0.4) strictly: `# HELP` and `# TYPE` lines,
    /// samples with quoted, escaped label values and a number; every sample after its
    /// family's `# TYPE`. Returns the types by family and the samples in order.
    fn parse(text: &str) -> Result<(HashMap<String, String>, Vec<Sample>), String> {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        if !text.ends_with('\n') {
            return Err("the text does not end with a newline".into());
        }
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or(format!("HELP: {line}"))?;
                if !valid_metric_name(name) || help.is_empty() {
                    return Err(format!("HELP: {line}"));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(format!("TYPE: {line}"))?;
                let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                if !valid_metric_name(name) || !known.contains(&kind) {
                    return Err(format!("TYPE: {line}"));
                }
                if types.insert(name.to_string(), kind.to_string()).is_some() {
                    return Err(format!("a second TYPE: {line}"));
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return Err(format!("unexpected line: {line:?}"));
            }
            let name_end = line.find(['{', ' ']).ok_or(format!("sample: {line}"))?;
            let name = &line[..name_end];
            if !valid_metric_name(name) {
                return Err(format!("metric name: {line}"));
            }
            let mut rest = &line[name_end..];
            let mut labels = Vec::new();
            if let Some(mut r) = rest.strip_prefix('{') {
                loop {
                    if let Some(after) = r.strip_prefix('}') {
                        r = after;
                        break;
                    }
                    let (key, after) = r.split_once("=\"").ok_or(format!("label: {line}"))?;
                    if !valid_metric_name(key) || key.contains(':') {
                        return Err(format!("label name {key:?}: {line}"));
                    }
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next() {
                            Some((i, '"')) => break i,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, '\\')) => value.push('\\'),
                                Some((_, '"')) => value.push('"'),
                                Some((_, 'n')) => value.push('\n'),
                                _ => return Err(format!("escape: {line}")),
                            },
                            Some((_, '\n')) | None => return Err(format!("value: {line}")),
                            Some((_, c)) => value.push(c),
                        }
                    };
                    labels.push((key.to_string(), value));
                    r = &after[end + 1..];
                    r = r.strip_prefix(',').unwrap_or(r);
                }
                rest = r;
            }
            let value = rest.strip_prefix(' ').ok_or(format!("no value: {line}"))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| format!("value {v:?}: {line}"))?,
            };
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|f| types.contains_key(*f))
                .unwrap_or(name);
            let typed = types.contains_key(family) || types.contains_key(name);
            if !typed {
                return Err(format!("a sample before its TYPE: {line}"));
            }
            samples.push((name.to_string(), labels, value));
        }
        Ok((types, samples))
    }

    fn valid_metric_name(n: &str) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// The value of the sample with this name and exactly these labels.
    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && l.iter()
                        .zip(labels)
                        .all(|((k, v), (lk, lv))| k == lk && v == lv)
            })
            .map(|s| s.2)
    }

    #[test]
    fn the_text_parses_with_counters_and_histogram_buckets() -> Result<(), String> {
        let m = Metrics::new(Arc::new(Vec::new()));
        m.request("alice", StatusCode::OK);
        m.request("alice", StatusCode::OK);
        let odd = "odd \"name\" \\ with\na newline";
        m.request(odd, StatusCode::UNAUTHORIZED);
        for (outcome, seconds) in [
            (Outcome::Ok, 0.003),
            (Outcome::Ok, 0.2),
            (Outcome::IsError, 0.25),
            (Outcome::ProtocolError, 7.0),
        ] {
            m.call("child__echo", outcome, seconds);
        }
        m.call(odd, Outcome::Ok, 400.0);

        let text = m.text();
        let (types, samples) = parse(&text).map_err(|e| format!("{e}\n{text}"))?;
        let t = |name: &str| types.get(name).map(String::as_str);
        assert_eq!(t("mcp_gateway_http_requests_total"), Some("counter"));
        assert_eq!(t("mcp_tool_calls_total"), Some("counter"));
        assert_eq!(t("mcp_tool_call_errors_total"), Some("counter"));
        assert_eq!(t("mcp_tool_call_duration_seconds"), Some("histogram"));

        // Counters, with label values that needed escaping read back as they were.
        let requests = "mcp_gateway_http_requests_total";
        let labels = [("client", "alice"), ("status", "200")];
        assert_eq!(value(&samples, requests, &labels), Some(2.0), "{text}");
        let labels = [("client", odd), ("status", "401")];
        assert_eq!(value(&samples, requests, &labels), Some(1.0), "{text}");
        let calls = "mcp_tool_calls_total";
        assert_eq!(
            value(&samples, calls, &[("tool", "child__echo")]),
            Some(4.0)
        );
        assert_eq!(value(&samples, calls, &[("tool", odd)]), Some(1.0));
        let errors = "mcp_tool_call_errors_total";
        for (tool, outcome, n) in [
            ("child__echo", "is_error", 1.0),
            ("child__echo", "protocol_error", 1.0),
            (odd, "is_error", 0.0),
            (odd, "protocol_error", 0.0),
        ] {
            let labels = [("tool", tool), ("outcome", outcome)];
            assert_eq!(
                value(&samples, errors, &labels),
                Some(n),
                "{tool} {outcome}"
            );
        }

        // The histogram: every bucket, cumulative, in order, then +Inf, sum and count.
        let buckets: Vec<(String, f64)> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == "mcp_tool_call_duration_seconds_bucket"
                    && l.first()
                        .is_some_and(|(k, v)| k == "tool" && v == "child__echo")
            })
            .map(|(_, l, v)| {
                let le = l.iter().find(|(k, _)| k == "le").map(|(_, v)| v.clone());
                (le.unwrap_or_default(), *v)
            })
            .collect();
        let expected: Vec<(String, f64)> = [
            ("0.005", 1.0),
            ("0.01", 1.0),
            ("0.025", 1.0),
            ("0.05", 1.0),
            ("0.1", 1.0),
            ("0.25", 3.0),
            ("0.5", 3.0),
            ("1", 3.0),
            ("2.5", 3.0),
            ("5", 3.0),
            ("10", 4.0),
            ("30", 4.0),
            ("60", 4.0),
            ("300", 4.0),
            ("+Inf", 4.0),
        ]
        .iter()
        .map(|(le, n)| (le.to_string(), *n))
        .collect();
        assert_eq!(buckets, expected, "{text}");
        let duration = |suffix: &str, tool: &str| {
            value(
                &samples,
                &format!("mcp_tool_call_duration_seconds{suffix}"),
                &[("tool", tool)],
            )
        };
        assert_eq!(duration("_count", "child__echo"), Some(4.0));
        assert!(
            duration("_sum", "child__echo").is_some_and(|s| (s - 7.453).abs() < 1e-9),
            "{text}"
        );
        let odd_inf = [("tool", odd), ("le", "+Inf")];
        let name = "mcp_tool_call_duration_seconds_bucket";
        assert_eq!(value(&samples, name, &odd_inf), Some(1.0));
        assert_eq!(
            value(&samples, name, &[("tool", odd), ("le", "300")]),
            Some(0.0)
        );

        // The dashboard's view of the same counts.
        let counts = m.tool_counts();
        assert_eq!(counts.len(), 2);
        assert_eq!(
            (counts[0].tool.as_str(), counts[0].calls, counts[0].errors),
            ("child__echo", 4, 2)
        );
        assert!((counts[0].mean_ms - 1863.25).abs() < 1e-6, "{counts:?}");
        Ok(())
    }

    #[test]
    fn nothing_counted_yet_is_empty_text() {
        assert_eq!(Metrics::new(Arc::new(Vec::new())).text(), "");
    }

    #[test]
    fn the_lane_summary_parses() -> Result<(), String> {
        let lane = |server: &str, lane, started, wait| LaneStatus {
            server: server.into(),
            lane,
            limit: 8,
            running: 0,
            queued: 0,
            started,
            waited: 0,
            wait_s_total: wait,
            wait_s_max: 0.0,
        };
        let mut text = String::new();
        let odd = "a \"quoted\\\" server\n";
        wait_summary(
            &mut text,
            &[
                lane("child", Lane::Medium, 3, 0.5),
                lane(odd, Lane::Low, 1, 0.0),
            ],
        );
        let (types, samples) = parse(&text).map_err(|e| format!("{e}\n{text}"))?;
        assert_eq!(
            types.get("mcp_lane_wait_seconds").map(String::as_str),
            Some("summary")
        );
        let name = "mcp_lane_wait_seconds_count";
        let labels = [("server", "child"), ("lane", "medium")];
        assert_eq!(value(&samples, name, &labels), Some(3.0), "{text}");
        let labels = [("server", odd), ("lane", "low")];
        assert_eq!(value(&samples, name, &labels), Some(1.0), "{text}");
        let labels = [("server", "child"), ("lane", "medium")];
        assert_eq!(
            value(&samples, "mcp_lane_wait_seconds_sum", &labels),
            Some(0.5)
        );
        Ok(())
    }
}
