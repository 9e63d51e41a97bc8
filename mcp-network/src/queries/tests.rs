//! The queries over captures made in the tests, checked field by field.

use super::*;
use crate::capture_file::{LinkType, create_pcap};
use crate::d2gs::encode_server;
use crate::layers::build::{tcp4, udp4};
use crate::layers::{TCP_ACK, TCP_PSH, TCP_SYN};
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::PathBuf;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
/// Server segment size in the synthetic session.
const SEG: usize = 40;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mcp-network-q-{}-{name}", std::process::id()))
}

/// Game packets of a tiny session, encoded as the server would.
fn server_stream() -> Result<Vec<u8>> {
    let mut assign = vec![0x59, 1, 0, 0, 0, 1];
    let mut name = b"cheap".to_vec();
    name.resize(16, 0);
    assign.extend_from_slice(&name);
    assign.extend_from_slice(&[0xC7, 0x18, 0x0D, 0x14]);
    let load_act = [0x03, 0, 0xDA, 0x5F, 0xB5, 0x2F, 1, 0, 0, 0, 0, 0];
    let mut chat = vec![0x26, 4, 0, 2, 0, 0, 0, 0, 1, 0];
    chat.extend_from_slice(b"[admin]\0hello\0");
    let frames: Vec<Vec<u8>> = vec![
        vec![0x00],
        [&[0x01, 2, 4, 0x20, 0x10, 0, 1, 0][..], &load_act[..]].concat(),
        [&assign[..], &chat[..], &[0x04][..]].concat(),
        vec![0x02; 300], // 300 one-byte packets: a frame of more than 0xEF bytes
    ];
    encode_server(frames.iter().map(Vec::as_slice))
}

fn client_stream() -> Vec<u8> {
    let mut c = vec![0x68];
    c.extend_from_slice(&[0x11; 4]);
    c.extend_from_slice(&[0x22, 0x00, 1]);
    c.extend_from_slice(&[0x0D, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]);
    let mut name = b"cheap".to_vec();
    name.resize(16, 0);
    c.extend_from_slice(&name);
    c.push(0x6B);
    c.extend_from_slice(&[0x03, 0xC8, 0x18, 0x0E, 0x14]);
    c
}

/// A capture with a D2GS session (the server side cut into segments, one pair swapped,
/// one retransmitted), a realm exchange, a BNCS exchange and a UDP datagram.
fn write_session(path: &Path, s2c: &[u8]) -> Result<usize> {
    let c = (CLIENT, 51234);
    let s = (SERVER, 4000);
    let mut frames: Vec<Vec<u8>> = vec![
        tcp4(c, s, 1000, 0, TCP_SYN, b""),
        tcp4(s, c, 5000, 1001, TCP_SYN | TCP_ACK, b""),
        tcp4(c, s, 1001, 5001, TCP_ACK, b""),
    ];
    let up = client_stream();
    frames.push(tcp4(c, s, 1001, 5001, TCP_PSH | TCP_ACK, &up[..20]));
    frames.push(tcp4(c, s, 1021, 5001, TCP_PSH | TCP_ACK, &up[20..]));
    let mut segs: Vec<(u32, &[u8])> = s2c
        .chunks(SEG)
        .enumerate()
        .map(|(k, chunk)| (5001 + (SEG * k) as u32, chunk))
        .collect();
    if segs.len() > 4 {
        segs.swap(2, 3);
        let again = segs[1];
        segs.insert(4, again);
    }
    let ack = 1001 + up.len() as u32;
    for (seq, chunk) in segs {
        frames.push(tcp4(s, c, seq, ack, TCP_PSH | TCP_ACK, chunk));
    }
    // realm: the client opens with 0x01, then MCP_STARTUP; the server answers
    let rc = (CLIENT, 51235);
    let rs = (SERVER, 6113);
    frames.push(tcp4(rc, rs, 1, 0, TCP_SYN, b""));
    frames.push(tcp4(rs, rc, 9, 2, TCP_SYN | TCP_ACK, b""));
    frames.push(tcp4(
        rc,
        rs,
        2,
        10,
        TCP_PSH | TCP_ACK,
        &[0x01, 5, 0, 0x01, 0xAA, 0xBB],
    ));
    frames.push(tcp4(rs, rc, 10, 8, TCP_PSH | TCP_ACK, &[4, 0, 0x01, 0]));
    // BNCS
    let bc = (CLIENT, 51236);
    let bs = (SERVER, 6112);
    frames.push(tcp4(bc, bs, 1, 0, TCP_SYN, b""));
    frames.push(tcp4(
        bc,
        bs,
        2,
        0,
        TCP_PSH | TCP_ACK,
        &[0x01, 0xFF, 0x50, 4, 0],
    ));
    frames.push(udp4((CLIENT, 5353), (SERVER, 53), b"dns?"));
    let mut w = create_pcap(path, LinkType::ETHERNET)?;
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(
            1_700_000_000 + i as i64 / 4,
            (i as u32 % 4) * 250_000,
            f.len() as u32,
            f,
        )?;
    }
    w.finish()?;
    Ok(frames.len())
}

#[test]
fn a_whole_session_through_every_query() -> TestResult {
    let s2c = server_stream()?;
    let path = temp("session.pcap");
    let n = write_session(&path, &s2c)?;
    let a = Analysis::open(&path);
    std::fs::remove_file(&path)?;
    let a = a?;

    // summary
    let sum = summary(&a, 10);
    assert_eq!(sum.packets, n);
    assert_eq!(sum.flows, 4);
    assert_eq!(sum.link_type.as_deref(), Some("ethernet"));
    let protos: Vec<(AppProtocol, u64)> = sum
        .protocols
        .iter()
        .map(|p| (p.protocol, p.flows))
        .collect();
    assert_eq!(
        protos,
        [
            (AppProtocol::D2gs, 1),
            (AppProtocol::Realm, 1),
            (AppProtocol::Bncs, 1),
            (AppProtocol::Udp, 1)
        ]
    );
    assert_eq!(sum.top_conversations[0].protocol, AppProtocol::D2gs);
    assert!(sum.read_problem.is_none());

    // flows
    let flows = list_flows(&a, &FlowFilter::default(), 0, 100)?;
    assert_eq!(flows.total, 4);
    let d2 = &flows.items[0];
    assert_eq!(d2.client, "192.168.0.10:51234");
    assert_eq!(d2.server, "203.0.113.7:4000");
    assert!(d2.client_known);
    assert_eq!(d2.payload_bytes_to_server, client_stream().len() as u64);
    assert!(
        d2.payload_bytes_to_client > s2c.len() as u64,
        "retransmission counted"
    );
    let realm = list_flows(
        &a,
        &FlowFilter {
            port: Some(6113),
            ..FlowFilter::default()
        },
        0,
        10,
    )?;
    assert_eq!(realm.items.len(), 1);
    assert_eq!(realm.items[0].protocol, AppProtocol::Realm);
    assert!(
        list_flows(
            &a,
            &FlowFilter {
                host: Some("nope".into()),
                ..FlowFilter::default()
            },
            0,
            1
        )
        .is_err()
    );

    // packets
    let all = list_packets(&a, &PacketFilter::default(), 0, 5)?;
    assert_eq!(all.total, n);
    assert_eq!(all.items.len(), 5);
    assert_eq!(
        all.items[0]
            .summary
            .split(' ')
            .take(4)
            .collect::<Vec<_>>()
            .join(" "),
        "192.168.0.10:51234 -> 203.0.113.7:4000 TCP"
    );
    assert_eq!(all.items[1].direction, Some(Direction::ServerToClient));
    let down = list_packets(
        &a,
        &PacketFilter {
            flow_id: Some(0),
            direction: Some(Direction::ServerToClient),
            with_payload: Some(true),
            ..PacketFilter::default()
        },
        1,
        2,
    )?;
    assert_eq!(down.total, s2c.chunks(SEG).count() + 1);
    assert_eq!(down.offset, 1);
    assert_eq!(down.items.len(), 2);
    let udp = list_packets(
        &a,
        &PacketFilter {
            protocol: Some(AppProtocol::Udp),
            ..PacketFilter::default()
        },
        0,
        10,
    )?;
    assert_eq!(udp.total, 1);
    assert!(
        list_packets(
            &a,
            &PacketFilter {
                flow_id: Some(99),
                ..PacketFilter::default()
            },
            0,
            1
        )
        .is_err()
    );

    // detail
    let d = packet_detail(&a, 3, 16)?;
    let names: Vec<&str> = d.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["ethernet", "ipv4", "tcp"]);
    assert_eq!(d.payload_length, 20);
    assert_eq!(d.hex.len(), 32);
    assert!(d.hex_truncated);
    assert_eq!(d.flow_id, Some(0));
    assert!(packet_detail(&a, n, 16).is_err());

    // streams
    let down = follow_stream(&a, 0, Direction::ServerToClient, 0, 1 << 20)?;
    let joined: Vec<u8> = down
        .pieces
        .iter()
        .flat_map(|p| {
            (0..p.hex.len())
                .step_by(2)
                .map(|k| u8::from_str_radix(&p.hex[k..k + 2], 16).unwrap_or(0))
        })
        .collect();
    assert_eq!(joined, s2c);
    assert!(down.gaps.is_empty());
    assert_eq!(down.reassembly.retransmitted, 1);
    assert_eq!(down.reassembly.out_of_order, 1);
    assert_eq!(down.next_offset, None);
    let up = follow_stream(&a, 0, Direction::ClientToServer, 0, 4)?;
    assert_eq!(up.pieces[0].hex, "68111111");
    assert_eq!(up.next_offset, Some(4));
    assert_eq!(up.packets[0].packet_index, 3);
    assert!(follow_stream(&a, 9, Direction::ClientToServer, 0, 4).is_err());

    // D2 messages
    let all = d2_decode(&a, &D2Query::default(), 0, 1000)?;
    let d2gs_down = all
        .directions
        .iter()
        .find(|r| r.protocol == AppProtocol::D2gs && r.direction == Direction::ServerToClient)
        .ok_or("d2gs server side")?;
    assert_eq!(d2gs_down.frames, Some(4));
    assert_eq!(d2gs_down.compression.as_deref(), Some("on"));
    assert!(d2gs_down.problems.is_empty(), "{:?}", d2gs_down.problems);
    assert_eq!(d2gs_down.messages, 1 + 2 + 3 + 300);
    let up = all
        .directions
        .iter()
        .find(|r| r.protocol == AppProtocol::D2gs && r.direction == Direction::ClientToServer)
        .ok_or("d2gs client side")?;
    assert_eq!(up.messages, 3);
    assert_eq!(up.leftover_bytes, 0);
    // time order: the client's logon comes before the server's frames
    assert_eq!(all.messages[0].id, "0x68");
    assert_eq!(all.messages[0].fields.get("name"), Some(&json!("cheap")));
    assert_eq!(all.messages[0].fields.get("class"), Some(&json!(1)));
    let realm: Vec<&D2Message> = all
        .messages
        .iter()
        .filter(|m| m.protocol == AppProtocol::Realm)
        .collect();
    assert_eq!(realm.len(), 2);
    assert_eq!(realm[0].name, "MCP_STARTUP");
    let bncs: Vec<&D2Message> = all
        .messages
        .iter()
        .filter(|m| m.protocol == AppProtocol::Bncs)
        .collect();
    assert_eq!(bncs.len(), 1);
    assert_eq!(bncs[0].name, "SID_AUTH_INFO");

    let q = D2Query {
        ids: Some(vec![IdArg::Text("0x59".into()), IdArg::Number(3)]),
        direction: Some(Direction::ServerToClient),
        protocol: Some(AppProtocol::D2gs),
        include_hex: true,
        ..D2Query::default()
    };
    let some = d2_decode(&a, &q, 0, 10)?;
    assert_eq!(some.total, 2);
    let assign = some
        .messages
        .iter()
        .find(|m| m.id == "0x59")
        .ok_or("0x59")?;
    assert_eq!(assign.name, "D2GS_CREATECLIENTPLAYER");
    assert_eq!(assign.fields.get("unit_id"), Some(&json!(1)));
    assert_eq!(assign.fields.get("name"), Some(&json!("cheap")));
    assert_eq!(assign.fields.get("x"), Some(&json!(6343)));
    assert_eq!(assign.size, 26);
    assert_eq!(assign.frame, Some(2));
    assert!(assign.time.is_some() && assign.packet_index.is_some());
    assert!(
        assign
            .hex
            .as_deref()
            .is_some_and(|h| h.starts_with("5901000000"))
    );
    let act = some
        .messages
        .iter()
        .find(|m| m.id == "0x03")
        .ok_or("0x03")?;
    assert_eq!(act.fields.get("act"), Some(&json!(0)));
    assert_eq!(act.fields.get("area"), Some(&json!(1)));
    assert!(
        d2_decode(
            &a,
            &D2Query {
                ids: Some(vec![IdArg::Text("zz".into())]),
                ..D2Query::default()
            },
            0,
            1
        )
        .is_err()
    );
    assert!(
        d2_decode(
            &a,
            &D2Query {
                flow_id: Some(3),
                ..D2Query::default()
            },
            0,
            1
        )
        .is_err()
    );
    // a UDP flow can be forced... but not as a non-D2 protocol
    assert!(
        d2_decode(
            &a,
            &D2Query {
                flow_id: Some(3),
                protocol: Some(AppProtocol::Tcp),
                ..D2Query::default()
            },
            0,
            1
        )
        .is_err()
    );

    // stats
    let st = d2_stats(&a, &D2Query::default())?;
    assert_eq!(st.messages as usize, all.total);
    let twos = st
        .ids
        .iter()
        .find(|s| s.id == "0x02" && s.direction == Direction::ServerToClient)
        .ok_or("0x02")?;
    assert_eq!(twos.count, 300);
    assert_eq!(twos.name, "D2GS_LOADSUCCESSFUL");
    assert!(twos.first_time.is_some());

    // export the D2GS flow and read it back
    let out = temp("export.pcap");
    let res = export_pcap(
        &a,
        &PacketFilter {
            flow_id: Some(0),
            ..PacketFilter::default()
        },
        &out,
    )?;
    let back = Analysis::open(&out);
    std::fs::remove_file(&out)?;
    let back = back?;
    assert_eq!(res.packets, back.packet_count());
    assert_eq!(back.flow_count(), 1);
    assert_eq!(back.capture.link_type, LinkType::ETHERNET);
    assert_eq!(
        d2_decode(&back, &D2Query::default(), 0, 1)?.total,
        all.total - 3
    );
    Ok(())
}

#[test]
fn a_gap_stops_decoding_and_is_reported() -> TestResult {
    let s2c = server_stream()?;
    let c = (CLIENT, 40000);
    let s = (SERVER, 4000);
    let frames = [
        tcp4(c, s, 0, 0, TCP_SYN, b""),
        tcp4(s, c, 99, 1, TCP_SYN | TCP_ACK, b""),
        tcp4(s, c, 100, 1, TCP_ACK, &s2c[..30]),
        tcp4(s, c, 140, 1, TCP_ACK, &s2c[40..]),
    ];
    let mut cap = crate::capture_file::CaptureFile::new(SourceFormat::Pcap, LinkType::ETHERNET);
    for (i, f) in frames.iter().enumerate() {
        cap.push(10 + i as i64, 0, f.len() as u32, f);
    }
    let a = Analysis::from_capture(Path::new("mem"), cap);
    let d = d2_decode(
        &a,
        &D2Query {
            direction: Some(Direction::ServerToClient),
            ..D2Query::default()
        },
        0,
        100,
    )?;
    let r = &d.directions[0];
    assert_eq!(
        r.gaps,
        vec![Gap {
            offset: 30,
            len: 10
        }]
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.reason.contains("never captured")),
        "{:?}",
        r.problems
    );
    assert!(r.leftover_bytes >= (s2c.len() - 40) as u64);
    let win = follow_stream(&a, 0, Direction::ServerToClient, 25, 20)?;
    assert_eq!(
        win.gaps,
        vec![Gap {
            offset: 30,
            len: 10
        }]
    );
    assert_eq!(
        win.pieces
            .iter()
            .map(|p| (p.offset, p.length))
            .collect::<Vec<_>>(),
        [(25, 5), (40, 5)]
    );
    Ok(())
}

#[test]
fn raw_stream_source_is_one_pseudo_flow() -> TestResult {
    // Without the shared dump (`shared_fixtures` says so, and fails under
    // REQUIRE_SHARED_FIXTURES) a synthetic stream stands in.
    let (path, expected_messages, remove) = if let Some(d) = mcp_testkit::shared_fixtures("d2gs") {
        (d.join("d2gs_sc.dump"), 956, false)
    } else {
        let p = temp("raw.dump");
        std::fs::write(&p, server_stream()?)?;
        (p, 306, true)
    };
    let a = Analysis::open(&path);
    if remove {
        std::fs::remove_file(&path)?;
    }
    let a = a?;
    assert_eq!(a.format, SourceFormat::D2gsStream);
    let sum = summary(&a, 5);
    assert_eq!(sum.packets, 0);
    assert_eq!(sum.flows, 1);
    assert_eq!(sum.stream_bytes, a.raw_stream().map(|r| r.len() as u64));
    let flows = list_flows(&a, &FlowFilter::default(), 0, 10)?;
    assert_eq!(flows.total, 1);
    assert_eq!(flows.items[0].protocol, AppProtocol::D2gs);
    let d = d2_decode(&a, &D2Query::default(), 0, 2000)?;
    assert_eq!(d.total, expected_messages);
    assert!(
        d.messages
            .iter()
            .all(|m| m.direction == Direction::ServerToClient && m.time.is_none())
    );
    assert!(d.messages.windows(2).all(|w| w[0].index < w[1].index));
    let assign: Vec<&D2Message> = d.messages.iter().filter(|m| m.id == "0x59").collect();
    assert_eq!(assign.len(), 1);
    assert_eq!(assign[0].fields.get("name"), Some(&json!("cheap")));
    assert_eq!(assign[0].fields.get("unit_id"), Some(&json!(1)));
    assert_eq!(assign[0].fields.get("class"), Some(&json!(1)));
    let st = d2_stats(&a, &D2Query::default())?;
    assert_eq!(st.messages as usize, expected_messages);
    let down = &st.directions[1];
    if !remove {
        assert_eq!(down.frames, Some(164));
        assert_eq!(down.multi_packet_frames, Some(90));
        assert_eq!(down.leftover_bytes, 0);
    }
    let win = follow_stream(&a, 0, Direction::ServerToClient, 0, 2)?;
    assert_eq!(win.pieces[0].hex, "af01");
    assert!(export_pcap(&a, &PacketFilter::default(), &temp("never.pcap")).is_err());
    assert!(
        list_packets(&a, &PacketFilter::default(), 0, 10)?
            .items
            .is_empty()
    );
    assert!(packet_detail(&a, 0, 10).is_err());
    Ok(())
}

#[test]
fn damaged_pcap_gives_a_partial_summary() -> TestResult {
    let s2c = server_stream()?;
    let path = temp("damaged.pcap");
    let n = write_session(&path, &s2c)?;
    let bytes = std::fs::read(&path)?;
    std::fs::write(&path, &bytes[..bytes.len() - 7])?;
    let a = Analysis::open(&path);
    std::fs::remove_file(&path)?;
    let a = a?;
    let sum = summary(&a, 3);
    assert_eq!(sum.packets, n - 1);
    let problem = sum.read_problem.ok_or("read problem")?;
    assert_eq!(problem.packet_index, n - 1);
    assert!(Analysis::open(Path::new("/nonexistent/file.pcap")).is_err());
    Ok(())
}

#[test]
fn answers_serialize() -> TestResult {
    let s2c = server_stream()?;
    let path = temp("ser.pcap");
    write_session(&path, &s2c)?;
    let a = Analysis::open(&path);
    std::fs::remove_file(&path)?;
    let a = a?;
    let v = serde_json::to_value(list_flows(&a, &FlowFilter::default(), 0, 1)?)?;
    assert_eq!(v["items"][0]["protocol"], json!("d2gs"));
    let v = serde_json::to_value(d2_decode(&a, &D2Query::default(), 0, 1)?)?;
    assert_eq!(v["messages"][0]["direction"], json!("client_to_server"));
    let f: PacketFilter =
        serde_json::from_value(json!({"protocol": "d2gs", "direction": "server_to_client"}))?;
    assert_eq!(f.protocol, Some(AppProtocol::D2gs));
    let q: D2Query = serde_json::from_value(json!({"ids": ["0x59", 3]}))?;
    assert_eq!(q.ids.map(|v| v.len()), Some(2));
    let schema = schemars::schema_for!(D2Decode);
    assert!(serde_json::to_string(&schema)?.contains("messages"));
    Ok(())
}
