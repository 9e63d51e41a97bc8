//! Gateway JWTs (mcp-coordinator's jwt module) with a fixed test key. First byte even: the
//! input is the token as a client sends it. Odd: the input is `header NUL claims` (JSON),
//! signed here with the test key, so that the claim checks behind the signature are reached.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use mcp_coordinator::jwt::Verifier;
use std::sync::OnceLock;

/// The fixed test key (32 bytes, the least the verifier accepts).
const KEY: &[u8; 32] = b"fuzz-test-key-0123456789abcdefgh";
/// The time tokens are checked at: 2026-01-01.
const NOW: i64 = 1_767_225_600;

fn verifier() -> Option<&'static Verifier> {
    static V: OnceLock<Option<Verifier>> = OnceLock::new();
    V.get_or_init(|| {
        Verifier::new(
            KEY.to_vec(),
            Some("fuzz-iss".into()),
            Some("fuzz-aud".into()),
        )
        .ok()
    })
    .as_ref()
}

fn signed(header: &[u8], claims: &[u8]) -> Option<String> {
    let body = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY).ok()?;
    mac.update(body.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Some(format!("{body}.{sig}"))
}

fuzz_target!(|data: &[u8]| {
    let Some(v) = verifier() else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        let split = rest.iter().position(|&b| b == 0).unwrap_or(0);
        let (header, claims) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
        let header: &[u8] = if header.is_empty() {
            br#"{"alg":"HS256","typ":"JWT"}"#
        } else {
            header
        };
        match signed(header, claims) {
            Some(t) => t,
            None => return,
        }
    };
    let _ = Verifier::looks_like_jwt(&token);
    let _ = v.verify(&token, NOW);
});
