//! Realm (MCP, port 6113) and Battle.net chat (BNCS, port 6112) message framing.
//!
//! Realm: u16 length (little-endian, header included) then u8 id. BNCS: 0xFF, u8 id, u16
//! length (header included). On both, the client opens the connection with one protocol
//! selector byte (0x01), which is not a message. Only ids, names and lengths are reported.

use crate::d2gs::{DecodeProblem, MessageSpan};

/// Which framing to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Realm,
    Bncs,
}

/// The messages delimited in one direction.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub messages: Vec<MessageSpan>,
    pub problems: Vec<DecodeProblem>,
    /// Bytes not delimited (an incomplete last message, or everything after a bad header).
    pub leftover_bytes: u64,
    /// The client's protocol selector byte, when it was there.
    pub selector: Option<u8>,
}

/// Delimits the messages of `stream` (spans index into `stream`).
pub fn split(stream: &[u8], framing: Framing, from_client: bool) -> Split {
    let mut out = Split::default();
    let mut pos = 0usize;
    if from_client && stream.first() == Some(&0x01) {
        out.selector = Some(0x01);
        pos = 1;
    }
    let header = match framing {
        Framing::Realm => 3,
        Framing::Bncs => 4,
    };
    while pos < stream.len() {
        let Some(h) = stream.get(pos..pos + header) else {
            out.problems.push(DecodeProblem {
                frame: None,
                offset: pos as u64,
                reason: format!(
                    "the stream ends inside a {header}-byte message header ({} bytes remain)",
                    stream.len() - pos
                ),
            });
            break;
        };
        let (id, len) = match framing {
            Framing::Realm => (h[2], usize::from(u16::from_le_bytes([h[0], h[1]]))),
            Framing::Bncs => {
                if h[0] != 0xFF {
                    out.problems.push(DecodeProblem {
                        frame: None,
                        offset: pos as u64,
                        reason: format!(
                            "expected 0xFF at the start of a BNCS message, found 0x{:02X}; \
                             decoding stopped",
                            h[0]
                        ),
                    });
                    break;
                }
                (h[1], usize::from(u16::from_le_bytes([h[2], h[3]])))
            }
        };
        if len < header {
            out.problems.push(DecodeProblem {
                frame: None,
                offset: pos as u64,
                reason: format!(
                    "message 0x{id:02X} declares length {len}, shorter than its {header}-byte \
                     header; decoding stopped"
                ),
            });
            break;
        }
        if pos + len > stream.len() {
            out.problems.push(DecodeProblem {
                frame: None,
                offset: pos as u64,
                reason: format!(
                    "the stream ends inside message 0x{id:02X}: it needs {len} bytes, {} remain",
                    stream.len() - pos
                ),
            });
            break;
        }
        out.messages.push(MessageSpan {
            id,
            start: pos,
            len,
            frame: None,
            offset: pos as u64,
            end_offset: (pos + len) as u64,
        });
        pos += len;
    }
    out.leftover_bytes = (stream.len() - pos.min(stream.len())) as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_messages() {
        let mut c = vec![0x01];
        c.extend_from_slice(&[5, 0, 0x01, 0xAA, 0xBB]);
        c.extend_from_slice(&[3, 0, 0x19]);
        c.extend_from_slice(&[9, 0, 0x07, 1]);
        let s = split(&c, Framing::Realm, true);
        assert_eq!(s.selector, Some(1));
        let ids: Vec<(u8, usize)> = s.messages.iter().map(|m| (m.id, m.len)).collect();
        assert_eq!(ids, [(0x01, 5), (0x19, 3)]);
        assert_eq!(s.leftover_bytes, 4);
        assert!(s.problems[0].reason.contains("needs 9 bytes"));
        // the server side has no selector
        let s = split(&[3, 0, 0x12], Framing::Realm, false);
        assert_eq!(s.messages.len(), 1);
        assert_eq!(s.selector, None);
    }

    #[test]
    fn bncs_messages() {
        let mut c = vec![0x01];
        c.extend_from_slice(&[0xFF, 0x50, 6, 0, 1, 2]);
        c.extend_from_slice(&[0xFF, 0x25, 8, 0, 1, 2, 3, 4]);
        c.extend_from_slice(&[0xFE, 0x25, 8, 0]);
        let s = split(&c, Framing::Bncs, true);
        let ids: Vec<u8> = s.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [0x50, 0x25]);
        assert!(s.problems[0].reason.contains("0xFE"));
        assert_eq!(s.leftover_bytes, 4);
        let s = split(&[0xFF, 0x00, 2, 0], Framing::Bncs, false);
        assert!(s.problems[0].reason.contains("shorter"));
        for n in 0..8 {
            let _ = split(&[0xFF; 8][..n], Framing::Bncs, false);
            let _ = split(&[0x00; 8][..n], Framing::Realm, true);
        }
    }
}
