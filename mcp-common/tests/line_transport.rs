//! `LineTransport` (what every server serves stdio through) under a real rmcp server: raw
//! lines in, whole JSON lines out. Every bad line gets its JSON-RPC error, valid requests
//! keep flowing to rmcp, and with answers and errors racing for the output no line is ever
//! cut into another.

use mcp_common::jsonrpc::MAX_MESSAGE_BYTES;
use mcp_common::serve::LineTransport;
use rmcp::{ServerHandler, ServiceExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

/// A server with rmcp's defaults: answers `initialize` and `ping`.
struct Plain;
impl ServerHandler for Plain {}

struct Wire {
    input: DuplexStream,
    output: Lines<BufReader<DuplexStream>>,
}

impl Wire {
    async fn start() -> Wire {
        let (input, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, output) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            if let Ok(service) = Plain.serve(LineTransport::new(server_in, server_out)).await {
                let _ = service.waiting().await;
            }
        });
        let mut wire = Wire {
            input,
            output: BufReader::new(output).lines(),
        };
        wire.send(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .await;
        let init = wire.next().await;
        assert!(init["result"].is_object(), "{init}");
        wire.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        wire
    }

    async fn send(&mut self, line: &[u8]) {
        let written = async {
            self.input.write_all(line).await?;
            self.input.write_all(b"\n").await
        };
        if let Err(e) = written.await {
            panic!("cannot write to the server: {e}");
        }
    }

    /// The next output line, which must be JSON and come within 5 s.
    async fn next(&mut self) -> Value {
        match tokio::time::timeout(Duration::from_secs(5), self.output.next_line()).await {
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("output line is not JSON ({e}): {line:.200}")),
            other => panic!("no answer within 5 s: {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_bad_line_is_answered_and_the_server_goes_on() {
    let mut wire = Wire::start().await;
    let cases: [(&[u8], i64, Value); 5] = [
        (b"{\"jsonrpc\":", -32700, Value::Null),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", -32700, Value::Null),
        (b"[]", -32600, Value::Null),
        (
            br#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#,
            -32600,
            json!("a"),
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":"s"}}"#,
            -32602,
            json!(7),
        ),
    ];
    for (line, code, id) in cases {
        wire.send(line).await;
        let answer = wire.next().await;
        assert_eq!(answer["error"]["code"], json!(code), "{answer}");
        assert_eq!(answer.get("id"), Some(&id), "{answer}");
    }
    // A line over the cap is refused while it is still being read, then skipped to its end.
    let mut big = br#"{"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":""#.to_vec();
    big.resize(MAX_MESSAGE_BYTES + 1024, b'a');
    big.extend_from_slice(br#""}}"#);
    wire.send(&big).await;
    let answer = wire.next().await;
    assert_eq!(answer["error"]["code"], json!(-32600), "{answer}");
    assert_eq!(answer["id"], Value::Null);
    // Blank lines are skipped; the server still answers.
    wire.send(b"").await;
    wire.send(br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#)
        .await;
    let pong = wire.next().await;
    assert_eq!(
        (pong["id"].clone(), pong["result"].clone()),
        (json!(9), json!({}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_errors_never_share_a_line() {
    let wire = Wire::start().await;
    // Requests and bad lines pipelined without waiting: rmcp's answers (written as its
    // handlers finish) and the transport's errors race for the output.
    let rounds = 300;
    let mut batch = Vec::new();
    for i in 0..rounds {
        batch.extend_from_slice(
            format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#).as_bytes(),
        );
        batch.extend_from_slice(b"\n{not json\n");
    }
    let (mut input, mut output) = (wire.input, wire.output);
    let writer = tokio::spawn(async move { input.write_all(&batch).await.map(|()| input) });
    let (mut pongs, mut errors) = (0, 0);
    while pongs + errors < 2 * rounds {
        let line = match tokio::time::timeout(Duration::from_secs(10), output.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!("answers stopped after {pongs} pongs and {errors} errors: {other:?}"),
        };
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a mangled line ({e}): {line:.200}"));
        if answer["result"] == json!({}) {
            pongs += 1;
        } else if answer["error"]["code"] == json!(-32700) {
            errors += 1;
        } else {
            panic!("unexpected answer: {answer}");
        }
    }
    assert_eq!((pongs, errors), (rounds, rounds));
    assert!(matches!(writer.await, Ok(Ok(_))));
}
