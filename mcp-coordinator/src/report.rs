//! Reports a person reads: a set of findings and their links rendered as one self-contained
//! Markdown or HTML file. What was analysed (files with SHA-256, processes, captures), the
//! character sheet and items when a character was read, the findings and how they link (the
//! graph drawn as SVG), charts of traffic (message counts per id) and watched values; every
//! figure names the finding it came from. Text that came from a game, a file or a packet is
//! escaped, and nothing is fetched: no script, no stylesheet or image from elsewhere.

use crate::findings::{Finding, Link};
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The two forms a report takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Markdown,
    Html,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown",
            Format::Html => "text/html",
        }
    }
}

/// What a report is made of; `findings` in the order they are shown (oldest first).
pub struct Input<'a> {
    pub title: &'a str,
    pub generated: &'a str,
    pub findings: &'a [Finding],
    pub links: &'a [Link],
}

/// A bar or line chart's points: (label or x, value).
struct Series {
    title: String,
    from: String,
    points: Vec<(String, f64)>,
    /// Bars (counts per id) or a step line (a value over time).
    bars: bool,
}

/// Something analysed: its SHA-256 when it is a file, and the findings about it.
type Cited<'a> = (Option<String>, Vec<&'a str>);

/// The parts of a report, found in the findings' data.
struct Model<'a> {
    /// By (kind, what): a file's path, a process id, a capture.
    targets: BTreeMap<(String, String), Cited<'a>>,
    character: Option<(&'a Value, &'a str)>,
    items: Option<(&'a Value, &'a str)>,
    charts: Vec<Series>,
}

/// The tool a finding records, without its server's prefix.
fn tool_of(f: &Finding) -> &str {
    f.tool.as_deref().unwrap_or("")
}

fn model(findings: &[Finding]) -> Model<'_> {
    let mut m = Model {
        targets: BTreeMap::new(),
        character: None,
        items: None,
        charts: Vec::new(),
    };
    for f in findings {
        if let Some(Value::Object(t)) = &f.target {
            for (kind, key, hash) in [
                ("file", "binary", "sha256"),
                ("file", "binary_b", "sha256_b"),
                ("process", "process", ""),
                ("capture", "capture", ""),
            ] {
                let Some(v) = t.get(key) else { continue };
                let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                let sha = t.get(hash).and_then(Value::as_str).map(str::to_string);
                let e = m
                    .targets
                    .entry((kind.to_string(), shown))
                    .or_insert((None, Vec::new()));
                e.0 = e.0.take().or(sha);
                e.1.push(&f.id);
            }
        }
        let Some(data) = &f.data else { continue };
        let tool = tool_of(f);
        if tool == "character" && data.get("resistances").is_some() {
            m.character = Some((data, &f.id));
        }
        if tool == "inventory" && data.get("items").is_some() {
            m.items = Some((data, &f.id));
        }
        if let Some(ids) = data.get("ids").and_then(Value::as_array) {
            let points: Vec<(String, f64)> = ids
                .iter()
                .filter_map(|i| {
                    let label = format!(
                        "{} {} {}",
                        i["direction"].as_str().unwrap_or(""),
                        i["id"].as_str().unwrap_or("?"),
                        i["name"].as_str().unwrap_or("")
                    );
                    Some((label.trim().to_string(), i["count"].as_f64()?))
                })
                .collect();
            if !points.is_empty() {
                m.charts.push(Series {
                    title: "Messages per id".into(),
                    from: f.id.clone(),
                    points,
                    bars: true,
                });
            }
        }
        // Decoded messages (d2_decode) with times: how many in each second.
        if let Some(items) = data.get("items").and_then(Value::as_array) {
            let times: Vec<f64> = items
                .iter()
                .filter_map(|i| {
                    i.get("id")?;
                    i["time"].as_f64()
                })
                .collect();
            if let Some(first) = times.iter().copied().reduce(f64::min) {
                let mut per_second: BTreeMap<u64, f64> = BTreeMap::new();
                for t in &times {
                    *per_second.entry((t - first) as u64).or_default() += 1.0;
                }
                let last = per_second.keys().next_back().copied().unwrap_or(0);
                m.charts.push(Series {
                    title: "Messages per second".into(),
                    from: f.id.clone(),
                    points: (0..=last.min(600))
                        .map(|s| (format!("{s} s"), per_second.get(&s).copied().unwrap_or(0.0)))
                        .collect(),
                    bars: true,
                });
            }
        }
        if let Some(changes) = data.get("changes").and_then(Value::as_array) {
            let points: Vec<(String, f64)> = changes
                .iter()
                .filter_map(|c| Some((c["t_ms"].as_u64()?.to_string(), c["value"].as_f64()?)))
                .collect();
            if !points.is_empty() {
                m.charts.push(Series {
                    title: format!(
                        "{} at {} over time (ms)",
                        data["value_type"].as_str().unwrap_or("value"),
                        data["address"].as_str().unwrap_or("?")
                    ),
                    from: f.id.clone(),
                    points,
                    bars: false,
                });
            }
        }
    }
    m
}

/// Text for XML and HTML: `<`, `>`, `&` and quotes escaped.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Markdown table cell: HTML escaped (Markdown passes HTML through), and the
/// characters that would end the cell or start markup escaped.
fn escape_md(s: &str) -> String {
    let mut out = String::new();
    for c in escape_html(s).chars() {
        match c {
            '|' | '`' | '*' | '_' | '[' | ']' | '\\' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The character sheet's rows: (label, value).
fn sheet(c: &Value) -> Vec<(String, String)> {
    let named = |v: &Value| {
        v["name"]
            .as_str()
            .map_or_else(|| num(&v["id"]), str::to_string)
    };
    let mut rows = vec![
        ("Name".to_string(), num(&c["name"])),
        ("Class".into(), named(&c["class"])),
        ("Level".into(), num(&c["level"])),
        ("Experience".into(), num(&c["experience"])),
        (
            "Life".into(),
            format!("{} / {}", num(&c["life"]), num(&c["max_life"])),
        ),
        (
            "Mana".into(),
            format!("{} / {}", num(&c["mana"]), num(&c["max_mana"])),
        ),
        (
            "Gold".into(),
            format!("{} (stash {})", num(&c["gold"]), num(&c["stash_gold"])),
        ),
        (
            "Area".into(),
            format!("act {}, {}", num(&c["act"]), named(&c["area"])),
        ),
    ];
    for stat in ["strength", "dexterity", "vitality", "energy"] {
        rows.push((stat.to_string(), num(&c["stats"][stat]["value"])));
    }
    for res in ["fire", "cold", "lightning", "poison"] {
        let r = &c["resistances"][res];
        rows.push((
            format!("{res} resistance"),
            format!("{} (cap {})", num(&r["value"]), num(&r["max"])),
        ));
    }
    rows
}

/// The items' rows: unit id, item (txt row), quality, item level, where.
fn item_rows(inv: &Value) -> Vec<[String; 5]> {
    inv["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            [
                num(&i["unit_id"]),
                num(&i["txt_file_no"]),
                i["quality"]["name"]
                    .as_str()
                    .map_or_else(|| num(&i["quality"]["id"]), str::to_string),
                num(&i["item_level"]),
                num(&i["location"]),
            ]
        })
        .collect()
}

/// The findings and their links drawn as a circle of labelled nodes with labelled arrows;
/// with `href`, each node links to `href` followed by its id.
pub fn graph_svg(findings: &[Finding], links: &[Link], href: Option<&str>) -> String {
    let n = findings.len().max(1);
    let r = 60.0 + 18.0 * n as f64;
    let (w, h) = (2.0 * r + 340.0, 2.0 * r + 120.0);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let at: BTreeMap<&str, (f64, f64)> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let a = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
            (f.id.as_str(), (cx + r * a.cos(), cy + r * a.sin()))
        })
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" \
         fill=\"#555\"/></marker></defs><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>"
    );
    for l in links {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (at.get(l.from.as_str()), at.get(l.to.as_str()))
        else {
            continue;
        };
        // Stop the arrow at the target's circle.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ex, ey) = (x2 - dx / len * 9.0, y2 - dy / len * 9.0);
        let _ = write!(
            s,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{ex:.1}\" y2=\"{ey:.1}\" stroke=\"#555\" \
             marker-end=\"url(#arrow)\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#a33\" \
             text-anchor=\"middle\">{}</text>",
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 3.0,
            escape_html(&l.relation)
        );
    }
    for f in findings {
        let Some(&(x, y)) = at.get(f.id.as_str()) else {
            continue;
        };
        let label: String = f.title.chars().take(40).collect();
        if let Some(prefix) = href {
            let _ = write!(
                s,
                "<a href=\"{}{}\">",
                escape_html(prefix),
                escape_html(&f.id)
            );
        }
        let _ = write!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"8\" fill=\"#4a7ab5\"><title>{}</title></circle>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\">{}</text>",
            escape_html(&f.id),
            y + 22.0,
            escape_html(&label),
            y + 35.0,
            escape_html(&f.id)
        );
        if href.is_some() {
            s.push_str("</a>");
        }
    }
    s.push_str("</svg>");
    s
}

/// A bar chart (counts per label) or a step line (values over time) as SVG.
fn chart_svg(c: &Series) -> String {
    let (w, h, left, bottom) = (640.0, 260.0, 60.0, 40.0);
    let max = c.points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let min = if c.bars {
        0.0
    } else {
        c.points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min)
    };
    let span = if max > min { max - min } else { 1.0 };
    let y_of = |v: f64| (h - bottom) - (v - min) / span * (h - bottom - 20.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"10\"><rect width=\"100%\" height=\"100%\" \
         fill=\"#fff\"/><line x1=\"{left}\" y1=\"{0}\" x2=\"{w}\" y2=\"{0}\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"{1:.0}\">{2}</text><text x=\"4\" y=\"{0}\">{3}</text>",
        h - bottom,
        y_of(max) + 4.0,
        escape_html(&trim_num(max)),
        escape_html(&trim_num(min))
    );
    let n = c.points.len().max(1) as f64;
    let step = (w - left) / n;
    if c.bars {
        for (i, (label, v)) in c.points.iter().enumerate() {
            let x = left + step * i as f64;
            let y = y_of(*v);
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4a7ab5\">\
                 <title>{}: {}</title></rect><text transform=\"translate({:.1},{:.1}) rotate(30)\">{}</text>",
                x + step * 0.1,
                step * 0.8,
                (h - bottom) - y,
                escape_html(label),
                trim_num(*v),
                x + step * 0.3,
                h - bottom + 10.0,
                escape_html(&label.chars().take(18).collect::<String>())
            );
        }
    } else {
        let t_max = c
            .points
            .iter()
            .filter_map(|p| p.0.parse::<f64>().ok())
            .fold(1.0_f64, f64::max);
        let x_of = |t: f64| left + t / t_max * (w - left - 10.0);
        let mut path = String::new();
        let mut last_y = None;
        for (t, v) in &c.points {
            let x = x_of(t.parse::<f64>().unwrap_or(0.0));
            let y = y_of(*v);
            match last_y {
                None => {
                    let _ = write!(path, "M{x:.1},{y:.1}");
                }
                Some(ly) => {
                    let _ = write!(path, " L{x:.1},{ly:.1} L{x:.1},{y:.1}");
                }
            }
            last_y = Some(y);
        }
        let _ = write!(
            s,
            "<path d=\"{path}\" fill=\"none\" stroke=\"#4a7ab5\" stroke-width=\"2\"/>\
             <text x=\"{w}\" y=\"{}\" text-anchor=\"end\">{} ms</text>",
            h - bottom + 14.0,
            trim_num(t_max)
        );
    }
    s.push_str("</svg>");
    s
}

fn trim_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// An SVG as a Markdown image (a data URI: the report stays one file).
fn md_image(alt: &str, svg: &str) -> String {
    format!(
        "![{}](data:image/svg+xml;base64,{})",
        escape_md(alt),
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// The report as Markdown.
pub fn markdown(input: &Input) -> String {
    let m = model(input.findings);
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", escape_md(input.title));
    let _ = writeln!(
        s,
        "Generated {} from {} findings and {} links. Each figure names the finding it came from.\n",
        escape_md(input.generated),
        input.findings.len(),
        input.links.len()
    );
    s.push_str("## What was analysed\n\n| kind | what | SHA-256 | findings |\n|---|---|---|---|\n");
    for ((kind, what), (sha, ids)) in &m.targets {
        let _ = writeln!(
            s,
            "| {kind} | {} | {} | {} |",
            escape_md(what),
            sha.as_deref().map_or_else(|| "-".to_string(), escape_md),
            cite_md(ids)
        );
    }
    if let Some((c, id)) = m.character {
        let _ = writeln!(
            s,
            "\n## Character sheet\n\nFrom {}.\n\n| | |\n|---|---|",
            cite_md(&[id])
        );
        for (k, v) in sheet(c) {
            let _ = writeln!(s, "| {} | {} |", escape_md(&k), escape_md(&v));
        }
    }
    if let Some((inv, id)) = m.items {
        let _ = writeln!(
            s,
            "\n## Items\n\nFrom {}.\n\n| unit id | item (txt row) | quality | item level | where |\n|---|---|---|---|---|",
            cite_md(&[id])
        );
        for row in item_rows(inv) {
            let cells: Vec<String> = row.iter().map(|c| escape_md(c)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
    }
    for c in &m.charts {
        let _ = writeln!(
            s,
            "\n## {}\n\nFrom {}.\n\n{}",
            escape_md(&c.title),
            cite_md(&[c.from.as_str()]),
            md_image(&c.title, &chart_svg(c))
        );
    }
    let _ = writeln!(
        s,
        "\n## How the findings link\n\n{}\n",
        md_image(
            "findings graph",
            &graph_svg(input.findings, input.links, None)
        )
    );
    for l in input.links {
        let _ = writeln!(
            s,
            "- {} {} {}",
            cite_md(&[l.from.as_str()]),
            escape_md(&l.relation),
            cite_md(&[l.to.as_str()])
        );
    }
    s.push_str("\n## Findings\n\n| id | time | kind | title | summary |\n|---|---|---|---|---|\n");
    for f in input.findings {
        let _ = writeln!(
            s,
            "| <a id=\"{0}\"></a>{0} | {1} | {2} | {3} | {4} |",
            escape_md(&f.id),
            time(f.time),
            escape_md(&f.kind),
            escape_md(&f.title),
            escape_md(f.summary.as_deref().unwrap_or(""))
        );
    }
    s
}

fn cite_md(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("[{0}](#{0})", escape_md(id)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cite_html(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("<a href=\"#{0}\">{0}</a>", escape_html(id)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A finding's time (seconds since the epoch) as a person reads it, in UTC.
pub fn time(t: f64) -> String {
    chrono::DateTime::from_timestamp_millis((t * 1000.0) as i64).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// The report's look: also the dashboard's stylesheet (served as /ui/style.css there, where
/// the Content-Security-Policy allows no inline style).
pub const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
    table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
    th{background:#f3f3f3}.from{color:#666;font-size:90%}";

/// The report as one HTML page (inline style and SVG; no script).
pub fn html(input: &Input) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{STYLE}</style></head><body>{}</body></html>\n",
        escape_html(input.title),
        html_body(input)
    )
}

/// The report's sections as HTML, without the page around them (the dashboard's pages
/// embed them).
pub fn html_body(input: &Input) -> String {
    let m = model(input.findings);
    let mut s = String::new();
    let _ = write!(
        s,
        "<h1>{}</h1><p>Generated {} from {} findings and {} links. Each figure names the \
         finding it came from.</p>",
        escape_html(input.title),
        escape_html(input.generated),
        input.findings.len(),
        input.links.len()
    );
    s.push_str("<h2>What was analysed</h2><table><tr><th>kind</th><th>what</th><th>SHA-256</th><th>findings</th></tr>");
    for ((kind, what), (sha, ids)) in &m.targets {
        let _ = write!(
            s,
            "<tr><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_html(what),
            sha.as_deref().map_or_else(|| "-".to_string(), escape_html),
            cite_html(ids)
        );
    }
    s.push_str("</table>");
    if let Some((c, id)) = m.character {
        let _ = write!(
            s,
            "<h2>Character sheet</h2><p class=\"from\">From {}.</p><table id=\"sheet\">",
            cite_html(&[id])
        );
        for (k, v) in sheet(c) {
            let _ = write!(
                s,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape_html(&k),
                escape_html(&v)
            );
        }
        s.push_str("</table>");
    }
    if let Some((inv, id)) = m.items {
        let _ = write!(
            s,
            "<h2>Items</h2><p class=\"from\">From {}.</p><table id=\"items\"><tr><th>unit id</th>\
             <th>item (txt row)</th><th>quality</th><th>item level</th><th>where</th></tr>",
            cite_html(&[id])
        );
        for row in item_rows(inv) {
            s.push_str("<tr>");
            for c in row {
                let _ = write!(s, "<td>{}</td>", escape_html(&c));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }
    for c in &m.charts {
        let _ = write!(
            s,
            "<h2>{}</h2><p class=\"from\">From {}.</p>{}",
            escape_html(&c.title),
            cite_html(&[c.from.as_str()]),
            chart_svg(c)
        );
    }
    let _ = write!(
        s,
        "<h2>How the findings link</h2>{}<ul>",
        graph_svg(input.findings, input.links, None)
    );
    for l in input.links {
        let _ = write!(
            s,
            "<li>{} {} {}</li>",
            cite_html(&[l.from.as_str()]),
            escape_html(&l.relation),
            cite_html(&[l.to.as_str()])
        );
    }
    s.push_str("</ul><h2>Findings</h2><table><tr><th>id</th><th>time</th><th>kind</th><th>title</th><th>summary</th></tr>");
    for f in input.findings {
        let _ = write!(
            s,
            "<tr id=\"{0}\"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
            escape_html(&f.id),
            time(f.time),
            escape_html(&f.kind),
            escape_html(&f.title),
            escape_html(f.summary.as_deref().unwrap_or(""))
        );
    }
    s.push_str("</table>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(id: &str, tool: Option<&str>, title: &str, data: Value) -> Finding {
        Finding {
            id: id.into(),
            session: "s".into(),
            time: 1_764_000_000.0,
            kind: "tool_call".into(),
            title: title.into(),
            server: None,
            tool: tool.map(str::to_string),
            arguments: None,
            target: Some(json!({"process": 42})),
            summary: Some("a <b>summary</b>".into()),
            data: Some(data),
        }
    }

    #[test]
    fn game_text_is_escaped_and_every_part_cites_its_finding() {
        let evil = "<script>alert(1)</script>";
        let character = finding(
            "f-1",
            Some("character"),
            "d2__character",
            json!({"name": evil, "class": {"id": 1, "name": "Sorceress"}, "level": 30,
                   "resistances": {"fire": {"value": 40, "max": 75}}}),
        );
        let stats = finding(
            "f-2",
            Some("d2_stats"),
            "network__d2_stats",
            json!({"ids": [{"direction": "server", "id": "0x59", "name": evil, "count": 3}]}),
        );
        let links = [Link {
            from: "f-2".into(),
            to: "f-1".into(),
            relation: evil.into(),
        }];
        let watch = finding(
            "f-3",
            Some("watch"),
            "memory__watch",
            json!({"address": "0x1000", "value_type": "u32",
                   "changes": [{"t_ms": 0, "value": 300}, {"t_ms": 500, "value": 250}]}),
        );
        let decoded = finding(
            "f-4",
            Some("d2_decode"),
            "network__d2_decode",
            json!({"items": [{"id": "0x95", "time": 100.2}, {"id": "0x95", "time": 100.7},
                             {"id": "0x15", "time": 102.1}]}),
        );
        let findings = [character, stats, watch, decoded];
        let input = Input {
            title: "Report <x>",
            generated: "now",
            findings: &findings,
            links: &links,
        };
        for text in [html(&input), markdown(&input)] {
            assert!(!text.contains("<script>"), "{text}");
            assert!(text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        }
        let h = html(&input);
        assert!(
            h.contains("<h2>Character sheet</h2><p class=\"from\">From <a href=\"#f-1\">f-1</a>")
        );
        assert!(h.contains("40 (cap 75)") && h.contains("Sorceress"));
        assert!(
            h.contains("<h2>Messages per id</h2><p class=\"from\">From <a href=\"#f-2\">f-2</a>")
        );
        assert!(h.contains("<tr id=\"f-1\">") && h.contains("process"));
        // The traffic charts (per id, per second), the watched value's line and the graph.
        assert_eq!(h.matches("<svg").count(), 4);
        assert!(
            h.contains("<title>0 s: 2</title>") && h.contains("<title>1 s: 1</title>"),
            "{h}"
        );
        assert!(h.contains(
            "<h2>u32 at 0x1000 over time (ms)</h2><p class=\"from\">From <a href=\"#f-3\">f-3</a>"
        ));
        assert!(h.contains("<path d=\"M60.0,"), "the watch line is drawn");
        let md = markdown(&input);
        assert!(md.contains("From [f-1](#f-1)") && md.contains("data:image/svg+xml;base64,"));
    }
}
