//! Per-message-id statistics of decoded Diablo II traffic: how many of each id went each
//! way, how many bytes, when first and last, and how often.

use crate::d2_session::{DirectionDecode, DirectionReport};
use crate::d2_tables::Tables;
use crate::flows::{AppProtocol, Direction};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts of one message id in one direction of one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct IdStat {
    pub protocol: AppProtocol,
    pub direction: Direction,
    /// Hex id ("0x59").
    pub id: String,
    pub name: String,
    pub count: u64,
    /// Bytes of these messages (decompressed sizes for the D2GS server side).
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_time: Option<f64>,
    /// Messages per second over the time its direction was active (absent without times).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
}

/// Statistics of all decoded directions.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct D2Stats {
    /// Messages in all.
    pub messages: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_time: Option<f64>,
    /// Per protocol, direction and id, in that order.
    pub ids: Vec<IdStat>,
    /// What decoding each direction found.
    pub directions: Vec<DirectionReport>,
    /// True when ids or reports were left out to keep the answer small: pass `flow_id`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[derive(Default)]
struct Acc {
    count: u64,
    bytes: u64,
    first: Option<f64>,
    last: Option<f64>,
}

fn min_opt(a: Option<f64>, b: f64) -> Option<f64> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn max_opt(a: Option<f64>, b: f64) -> Option<f64> {
    Some(a.map_or(b, |a| a.max(b)))
}

/// Builds the statistics of `decodes`.
pub fn d2_stats(decodes: &[std::sync::Arc<DirectionDecode>], t: &Tables) -> D2Stats {
    let mut per: BTreeMap<(AppProtocol, Direction, u8), (Acc, String)> = BTreeMap::new();
    // active span of each (protocol, direction)
    let mut spans: BTreeMap<(AppProtocol, Direction), (f64, f64)> = BTreeMap::new();
    let mut total = 0u64;
    let (mut first, mut last) = (None, None);
    for d in decodes {
        let key = (d.report.protocol, d.report.direction);
        for (m, time) in d.messages.iter().zip(&d.times) {
            total += 1;
            let (acc, _) = per
                .entry((key.0, key.1, m.id))
                .or_insert_with(|| (Acc::default(), d.dialect.name(t, m.id)));
            acc.count += 1;
            acc.bytes += m.len as u64;
            if let Some((_, time)) = *time {
                acc.first = min_opt(acc.first, time);
                acc.last = max_opt(acc.last, time);
                first = min_opt(first, time);
                last = max_opt(last, time);
                let span = spans.entry(key).or_insert((time, time));
                span.0 = span.0.min(time);
                span.1 = span.1.max(time);
            }
        }
    }
    let ids = per
        .into_iter()
        .map(|((protocol, direction, id), (acc, name))| {
            let rate = spans
                .get(&(protocol, direction))
                .map(|(a, b)| b - a)
                .filter(|d| *d > 0.0)
                .map(|d| acc.count as f64 / d);
            IdStat {
                protocol,
                direction,
                id: format!("0x{id:02X}"),
                name,
                count: acc.count,
                bytes: acc.bytes,
                first_time: acc.first,
                last_time: acc.last,
                rate_per_sec: rate,
            }
        })
        .collect();
    D2Stats {
        messages: total,
        first_time: first,
        last_time: last,
        ids,
        directions: decodes.iter().map(|d| d.report.clone()).collect(),
        truncated: false,
    }
}
