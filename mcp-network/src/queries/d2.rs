//! Decoded Diablo II messages and their statistics.

use super::*;

/// A message id: a number, or a hex string ("0x59" or "59").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IdArg {
    Number(u8),
    Text(String),
}

impl IdArg {
    fn value(&self) -> Result<u8> {
        match self {
            IdArg::Number(n) => Ok(*n),
            IdArg::Text(s) => {
                let t = s.trim();
                let h = t
                    .strip_prefix("0x")
                    .or_else(|| t.strip_prefix("0X"))
                    .unwrap_or(t);
                u8::from_str_radix(h, 16).map_err(|_| {
                    NetError::new(format!(
                        "invalid argument `ids`: {s:?} (accepted: hex strings \"0x59\" or \"59\", \
                         or numbers 0 to 255)"
                    ))
                })
            }
        }
    }
}

/// Which Diablo II messages to decode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct D2Query {
    /// One flow (default: every d2gs, realm and bncs flow).
    pub flow_id: Option<u32>,
    /// One direction (default: both).
    pub direction: Option<Direction>,
    /// Only flows of this protocol; with `flow_id`, decode that flow as this protocol.
    pub protocol: Option<AppProtocol>,
    /// Only these message ids.
    pub ids: Option<Vec<IdArg>>,
    /// Add each message's bytes in hex.
    pub include_hex: bool,
}

/// One decoded Diablo II message.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct D2Message {
    /// Message number within its flow direction.
    pub index: usize,
    /// Time of the packet that completed it (absent for raw stream files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_index: Option<u32>,
    pub flow_id: u32,
    pub protocol: AppProtocol,
    pub direction: Direction,
    /// Hex id ("0x59").
    pub id: String,
    pub name: String,
    /// Bytes, id included (decompressed, for the D2GS server side).
    pub size: usize,
    /// The compressed frame it came in (D2GS server side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// Stream offset of the message (of its frame, on the D2GS server side).
    pub offset: u64,
    /// Decoded fields, for the packets whose layout is known.
    pub fields: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

/// Decoded messages and what decoding each direction found.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct D2Decode {
    /// Matching messages in all.
    pub total: usize,
    pub offset: usize,
    pub messages: Vec<D2Message>,
    pub directions: Vec<DirectionReport>,
}

pub(super) fn id_set(ids: &Option<Vec<IdArg>>) -> Result<Option<[bool; 256]>> {
    let Some(ids) = ids else {
        return Ok(None);
    };
    let mut set = [false; 256];
    for id in ids {
        set[usize::from(id.value()?)] = true;
    }
    Ok(Some(set))
}

/// The Diablo II messages of the chosen flows, in time order, `limit` of them from the
/// `offset`-th match.
pub fn d2_decode(a: &Analysis, q: &D2Query, offset: usize, limit: usize) -> Result<D2Decode> {
    let t = tables()?;
    let ids = id_set(&q.ids)?;
    let decodes = decode_flows(a, q.flow_id, q.direction, q.protocol)?;
    // The time order of the matching messages is computed once per query and kept, so a
    // page is a slice of it (the decodes themselves are kept by `decode_flows`).
    let key = (q.flow_id, q.direction, q.protocol, ids);
    let order = a.d2_order(key, || {
        let mut order: Vec<(usize, usize)> = Vec::new();
        for (di, d) in decodes.iter().enumerate() {
            for (mi, m) in d.messages.iter().enumerate() {
                if ids.is_none_or(|set| set[usize::from(m.id)]) {
                    order.push((di, mi));
                }
            }
        }
        let key = |&(di, mi): &(usize, usize)| {
            let d: &DirectionDecode = &decodes[di];
            let time = d.times.get(mi).copied().flatten().map_or(0.0, |(_, t)| t);
            (time, d.report.flow_id, d.report.direction, mi)
        };
        order.sort_by(|x, y| {
            let (kx, ky) = (key(x), key(y));
            kx.0.total_cmp(&ky.0)
                .then(kx.1.cmp(&ky.1))
                .then(kx.2.cmp(&ky.2))
                .then(kx.3.cmp(&ky.3))
        });
        order
    });
    let messages = order
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|&(di, mi)| {
            let d = decodes.get(di)?;
            let m = d.messages.get(mi)?;
            let bytes = d.bytes(m);
            let timing = d.times.get(mi).copied().flatten();
            Some(D2Message {
                index: mi,
                time: timing.map(|(_, t)| t),
                packet_index: timing.map(|(p, _)| p),
                flow_id: d.report.flow_id,
                protocol: d.report.protocol,
                direction: d.report.direction,
                id: format!("0x{:02X}", m.id),
                name: d.dialect.name(t, m.id),
                size: m.len,
                frame: m.frame,
                offset: m.offset,
                fields: d
                    .dialect
                    .spec(t, m.id)
                    .map(|s| decode_fields(&s.fields, bytes))
                    .unwrap_or_default(),
                hex: q.include_hex.then(|| to_hex(bytes)),
            })
        })
        .collect();
    Ok(D2Decode {
        total: order.len(),
        offset,
        messages,
        directions: decodes.iter().map(|d| d.report.clone()).collect(),
    })
}

/// Per-id statistics of the chosen flows' Diablo II messages (`ids` and `include_hex` of
/// the query are ignored).
pub fn d2_stats(a: &Analysis, q: &D2Query) -> Result<D2Stats> {
    let t = tables()?;
    let decodes = decode_flows(a, q.flow_id, q.direction, q.protocol)?;
    Ok(crate::stats::d2_stats(&decodes, t))
}
