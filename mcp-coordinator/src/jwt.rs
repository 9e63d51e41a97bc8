//! JSON Web Tokens (RFC 7519) signed with HS256, for the gateway (`--jwt-secret`): an
//! identity provider or a script mints short-lived tokens with a shared secret, and the
//! coordinator checks them without a tokens file. Only HS256 is accepted: a token naming
//! any other `alg` (`none` above all) is refused before its signature is looked at.
//!
//! The client's name is the `sub` claim. `exp` is required; `nbf`, and `iss`/`aud` when
//! configured, are checked; 30 s of clock skew are allowed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde_json::Value;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_S: i64 = 30;

/// What makes a token acceptable.
pub struct Verifier {
    /// Keyed once: each token's check starts from a copy.
    mac: HmacSha256,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Why a token was refused: the `error` of the 401 answer and a message for people.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub error: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Refused {
    Refused {
        error: "invalid_token",
        message: message.into(),
    }
}

impl Verifier {
    /// `secret`: the shared HS256 key (at least 32 bytes, as RFC 7518 asks of HS256 keys).
    pub fn new(
        secret: Vec<u8>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err(format!(
                "the JWT secret has {} bytes: accepted: 32 bytes or more (HS256 keys must be at \
                 least as long as the hash)",
                secret.len()
            ));
        }
        let mac = HmacSha256::new_from_slice(&secret)
            .map_err(|e| format!("the JWT secret cannot key HMAC-SHA256: {e}"))?;
        Ok(Self {
            mac,
            issuer,
            audience,
        })
    }

    /// Whether `token` looks like a JWT at all (three dot-separated parts), so that a
    /// gateway with both static tokens and JWTs knows which check applies.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// The client's name (`sub`) when `token` is valid at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<String, Refused> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(
                "not a JWT: expected three base64url parts joined by dots",
            ));
        };
        let header = decode_json(header, "header")?;
        match header.get("alg").and_then(Value::as_str) {
            Some("HS256") => {}
            other => {
                return Err(invalid(format!(
                    "alg {}: accepted: HS256",
                    other.map_or("(missing)".into(), |a| format!("{a:?}"))
                )));
            }
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| invalid("the signature is not base64url"))?;
        let mut mac = self.mac.clone();
        let signed = token.rsplit_once('.').map_or("", |(signed, _)| signed);
        mac.update(signed.as_bytes());
        // Constant-time comparison inside `hmac`.
        mac.verify_slice(&signature)
            .map_err(|_| invalid("the signature does not match (another secret, or altered)"))?;

        let claims = decode_json(claims, "claims")?;
        // NumericDate (RFC 7519 section 2): seconds, possibly fractional, compared as such;
        // f64 keeps every magnitude a token may carry without overflow.
        let now_f = now as f64;
        let leeway = LEEWAY_S as f64;
        let exp = match claims.get("exp") {
            None => return Err(invalid("no `exp` claim: tokens must expire")),
            Some(v) => numeric_date(v, "exp")?,
        };
        if now_f > exp + leeway {
            return Err(Refused {
                error: "token_expired",
                message: format!("the token expired {:.0} s ago", now_f - exp),
            });
        }
        if let Some(v) = claims.get("nbf") {
            let nbf = numeric_date(v, "nbf")?;
            if now_f + leeway < nbf {
                return Err(invalid(format!(
                    "the token is not valid for {:.0} s yet",
                    nbf - now_f
                )));
            }
        }
        if let Some(want) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(want)
        {
            return Err(invalid(format!(
                "iss {}: accepted: {want:?}",
                claims.get("iss").unwrap_or(&Value::Null)
            )));
        }
        if let Some(want) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => a == want,
                Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(want)),
                _ => false,
            };
            if !ok {
                return Err(invalid(format!(
                    "aud {}: accepted: one naming {want:?}",
                    claims.get("aud").unwrap_or(&Value::Null)
                )));
            }
        }
        match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.trim().is_empty() => Ok(sub.to_string()),
            _ => Err(invalid("no `sub` claim: it names the client")),
        }
    }
}

/// A NumericDate claim's seconds; anything but a JSON number is refused, naming the claim.
fn numeric_date(v: &Value, claim: &str) -> Result<f64, Refused> {
    v.as_f64().ok_or_else(|| {
        invalid(format!(
            "`{claim}` is {v}: accepted: a NumericDate (seconds since 1970, a JSON number)"
        ))
    })
}

fn decode_json(part: &str, what: &str) -> Result<Value, Refused> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid(format!("the {what} is not base64url")))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid(format!("the {what} is not JSON")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(invalid(format!("the {what} is not a JSON object")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token made by PyJWT 2.15 (`jwt.encode({"sub": "agent-7", "exp": 2000000000, "iss":
    /// "idp", "aud": ["mcp"]}, SECRET, algorithm="HS256")`), not by this module.
    const PYJWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudC03IiwiZXhwIjoyMDAwMDAwMDAwLCJpc3MiOiJpZHAiLCJhdWQiOlsibWNwIl19.ie-DCgQJ5cqbiYDcXW5dbC92_PT4T5zQk0Zsu3Zn0pw";
    const SECRET: &[u8] = b"a-secret-of-at-least-thirty-two-bytes!!";

    fn verifier(iss: Option<&str>, aud: Option<&str>) -> Result<Verifier, String> {
        Verifier::new(SECRET.to_vec(), iss.map(Into::into), aud.map(Into::into))
    }

    #[test]
    fn a_pyjwt_token_is_accepted_and_names_its_subject() -> Result<(), String> {
        let v = verifier(Some("idp"), Some("mcp"))?;
        assert_eq!(v.verify(PYJWT, 1_900_000_000), Ok("agent-7".into()));
        Ok(())
    }

    #[test]
    fn expiry_issuer_audience_and_secret_are_checked() -> Result<(), String> {
        let v = verifier(None, None)?;
        let e = v.verify(PYJWT, 2_000_000_031).err().map(|r| r.error);
        assert_eq!(e, Some("token_expired"));
        assert!(v.verify(PYJWT, 2_000_000_030).is_ok(), "within the leeway");
        let e = verifier(Some("other"), None)?.verify(PYJWT, 0).err();
        assert!(e.is_some_and(|r| r.message.contains("iss")));
        let e = verifier(None, Some("api"))?.verify(PYJWT, 0).err();
        assert!(e.is_some_and(|r| r.message.contains("aud")));
        let other = Verifier::new(vec![b'x'; 32], None, None)?;
        let e = other.verify(PYJWT, 0).err();
        assert!(e.is_some_and(|r| r.message.contains("signature")));
        Ok(())
    }

    /// Found by fuzz/ (coordinator_jwt): `exp` at the ends of i64 overflowed the expiry
    /// check (a panic in debug builds, a wrong answer in release).
    #[test]
    fn extreme_times_are_refused_or_accepted_without_overflow() -> Result<(), String> {
        let v = verifier(None, None)?;
        let sign = |claims: &str| -> Result<String, String> {
            let body = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let mut mac = HmacSha256::new_from_slice(SECRET).map_err(|e| e.to_string())?;
            mac.update(body.as_bytes());
            Ok(format!(
                "{body}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            ))
        };
        let max = sign(r#"{"sub":"a","exp":9223372036854775807}"#)?;
        assert_eq!(v.verify(&max, 1_900_000_000), Ok("a".into()));
        let min = sign(r#"{"sub":"a","exp":-9223372036854775808}"#)?;
        let e = v.verify(&min, 1_900_000_000).err();
        assert!(e.is_some_and(|r| r.error == "token_expired"));
        let nbf = sign(r#"{"sub":"a","exp":9223372036854775807,"nbf":9223372036854775807}"#)?;
        let e = v.verify(&nbf, i64::MAX).err();
        assert!(e.is_none(), "valid from i64::MAX, checked at i64::MAX");
        let e = v.verify(&nbf, -5).err();
        assert!(e.is_some_and(|r| r.message.contains("not valid")));
        // NumericDate may be fractional (RFC 7519 section 2); a string is not one.
        let frac = sign(r#"{"sub":"a","exp":2000000000.5}"#)?;
        assert_eq!(v.verify(&frac, 2_000_000_030), Ok("a".into()));
        let e = v.verify(&frac, 2_000_000_031).err();
        assert!(e.is_some_and(|r| r.error == "token_expired"));
        let text = sign(r#"{"sub":"a","exp":"2000000000"}"#)?;
        let e = v.verify(&text, 0).err().map(|r| r.message);
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("`exp` is \"2000000000\"")),
            "{e:?}"
        );
        let huge = sign(r#"{"sub":"a","exp":1e300,"nbf":-1e300}"#)?;
        assert_eq!(v.verify(&huge, i64::MAX), Ok("a".into()));
        Ok(())
    }

    #[test]
    fn alg_none_and_altered_tokens_are_refused() -> Result<(), String> {
        let v = verifier(None, None)?;
        let [_, claims, sig] = PYJWT.split('.').collect::<Vec<_>>()[..] else {
            return Err("three parts".into());
        };
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let e = v.verify(&format!("{none}.{claims}."), 0).err();
        assert!(e.is_some_and(|r| r.message.contains("\"none\"")));
        let altered = URL_SAFE_NO_PAD.encode(br#"{"sub":"root","exp":2000000000}"#);
        let header = PYJWT.split('.').next().unwrap_or_default();
        let e = v.verify(&format!("{header}.{altered}.{sig}"), 0).err();
        assert!(e.is_some_and(|r| r.message.contains("signature")));
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(v.verify(junk, 0).is_err(), "{junk}");
        }
        assert!(Verifier::new(b"short".to_vec(), None, None).is_err());
        Ok(())
    }
}
