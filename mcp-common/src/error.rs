//! Tool errors on the MCP side: argument errors of known tools as `isError` results, and every
//! error text bounded. The error type itself is `suite_core`'s (below the MCP line).

pub use suite_core::error::{
    MAX_ERROR_BYTES, QUOTED_CHARS, ToolError, bounded, exactly_one, quoted,
};

use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};

/// An argument error's `isError` result, its text [`bounded`].
fn argument_error(name: &str, detail: &str) -> CallToolResponse {
    let text = bounded(format!("invalid arguments for `{name}`: {detail}"));
    CallToolResult::error(vec![ContentBlock::text(text)]).into()
}

/// Every text of an `isError` result and every protocol error message [`bounded`]: the
/// errors rmcp writes itself (serde's, quoting the whole value) pass here too.
fn bounded_answer(
    answer: Result<CallToolResponse, rmcp::ErrorData>,
) -> Result<CallToolResponse, rmcp::ErrorData> {
    match answer {
        Ok(CallToolResponse::Complete(mut r)) if r.is_error == Some(true) => {
            for c in &mut r.content {
                if let ContentBlock::Text(t) = c
                    && t.text.len() > MAX_ERROR_BYTES
                {
                    t.text = bounded(std::mem::take(&mut t.text));
                }
            }
            Ok(CallToolResponse::Complete(r))
        }
        Err(mut e) if e.message.len() > MAX_ERROR_BYTES => {
            e.message = bounded(e.message.into_owned()).into();
            Err(e)
        }
        other => other,
    }
}

/// Runs a tool call through `router`, turning argument errors (wrong type, missing field,
/// unknown value) of a known tool into an `isError` result the model can read and correct,
/// instead of a JSON-RPC error many hosts hide. Unknown tools stay protocol errors.
pub async fn call_tool<S: Send + Sync + 'static>(
    router: &rmcp::handler::server::router::tool::ToolRouter<S>,
    server: &S,
    request: rmcp::model::CallToolRequestParams,
    context: rmcp::service::RequestContext<rmcp::RoleServer>,
) -> Result<CallToolResponse, rmcp::ErrorData> {
    let name = request.name.to_string();
    let known = router.has_route(&name);
    let arguments = request.arguments.clone();
    // serde ignores keys a struct does not name, so a misspelt optional argument would
    // silently fall back to its default: refuse it, naming the accepted ones.
    // The schema's own limits (types, enums, ranges) hold for every argument given, also
    // where the code would not check them again.
    if let Some(tool) = router.get(&name)
        && let Some(detail) =
            crate::schema::unknown_argument(&tool.input_schema, arguments.as_ref())
                .or_else(|| given_argument_error(&tool.input_schema, arguments.as_ref()))
    {
        return Ok(argument_error(&name, &detail));
    }
    let tcc = rmcp::handler::server::tool::ToolCallContext::new(server, request, context);
    // rmcp answers a value that does not deserialise with an isError result (or, in older
    // paths, an INVALID_PARAMS error) quoting serde, which names the value but not the
    // argument: find the argument through the tool's input schema, else by the value quoted.
    let named = |message: &str| {
        router
            .get(&name)
            .and_then(|tool| mistyped_argument(&tool.input_schema, arguments.as_ref()))
            .or_else(|| quoted_argument(arguments.as_ref(), message))
    };
    let answer = match router.call(tcc).await {
        Err(e) if known && e.code == rmcp::model::ErrorCode::INVALID_PARAMS => {
            let detail = named(&e.message).unwrap_or_else(|| e.message.to_string());
            Ok(argument_error(&name, &detail))
        }
        Ok(CallToolResponse::Complete(r))
            if r.is_error == Some(true) && is_deserialisation_error(&r) =>
        {
            let message = r
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone())
                .unwrap_or_default();
            match named(&message) {
                Some(detail) => Ok(argument_error(&name, &detail)),
                None => Ok(CallToolResponse::Complete(r)),
            }
        }
        other => other,
    };
    bounded_answer(answer)
}

/// Whether rmcp produced this error result because the arguments did not deserialise.
fn is_deserialisation_error(r: &CallToolResult) -> bool {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .is_some_and(|t| t.text.starts_with("failed to deserialize parameters:"))
}

/// The JSON type names a value has, as a JSON Schema `type` would name it.
fn json_types(v: &serde_json::Value) -> &'static [&'static str] {
    use serde_json::Value;
    match v {
        Value::Null => &["null"],
        Value::Bool(_) => &["boolean"],
        Value::Number(n) if n.is_u64() || n.is_i64() => &["integer", "number"],
        Value::Number(_) => &["number"],
        Value::String(_) => &["string"],
        Value::Array(_) => &["array"],
        Value::Object(_) => &["object"],
    }
}

/// The first top-level argument that cannot be what the input schema declares: a value of
/// another JSON type, a value outside the property's `enum`, or a number below its `minimum`
/// or above its `maximum` (checked first, since the model gave it), else a required one
/// missing; named with the value and what is accepted. `null` is taken for an optional
/// argument (serde reads it as absent).
fn mistyped_argument(
    schema: &serde_json::Map<String, serde_json::Value>,
    arguments: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<String> {
    use serde_json::Value;
    if let Some(e) = given_argument_error(schema, arguments) {
        return Some(e);
    }
    let props = schema.get("properties")?.as_object()?;
    let empty = serde_json::Map::new();
    let arguments = arguments.unwrap_or(&empty);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing = required.iter().find(|r| !arguments.contains_key(**r))?;
    let what = props
        .get(*missing)
        .and_then(|p| p.get("description"))
        .and_then(Value::as_str)
        .map(|d| format!(": {}", d.lines().next().unwrap_or_default()))
        .unwrap_or_default();
    Some(format!("missing argument `{missing}` (required{what})"))
}

/// The first argument given whose value its property's schema refuses: type, enum, range,
/// and inside arrays and objects their items, required and declared keys, each named by its
/// path (`calls[3].tool`), so a model can correct the exact value.
fn given_argument_error(
    schema: &serde_json::Map<String, serde_json::Value>,
    arguments: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<String> {
    use serde_json::Value;
    let props = schema.get("properties")?.as_object()?;
    let arguments = arguments?;
    let required = required_keys(schema);
    let defs = schema.get("$defs").and_then(Value::as_object);
    arguments.iter().find_map(|(key, value)| {
        let prop = props.get(key)?;
        if value.is_null() && !required.contains(&key.as_str()) {
            return None;
        }
        refusal(value, prop, defs, key, 0)
    })
}

/// How deep [`refusal`] follows nested values: deeper ones are left to the tool's own
/// deserialisation (the transport already refuses absurd nesting).
const MAX_CHECK_DEPTH: usize = 16;

/// The keys an object schema lists as `required`.
fn required_keys(schema: &serde_json::Map<String, serde_json::Value>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(serde_json::Value::as_array)
        .map(|r| r.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default()
}

/// Why `value` at `path` does not fit `prop`, or `None` when it fits as far as this check
/// reads schemas (`type`, `enum`, `minimum`/`maximum`, `anyOf`, `items`, `properties`,
/// `required`, `additionalProperties: false`; anything else is left to the tool).
fn refusal(
    value: &serde_json::Value,
    prop: &serde_json::Value,
    defs: Option<&serde_json::Map<String, serde_json::Value>>,
    path: &str,
    depth: usize,
) -> Option<String> {
    use serde_json::Value;
    if depth > MAX_CHECK_DEPTH {
        return None;
    }
    // The property as declared, following a reference or an optional's `anyOf`.
    let prop = declared(prop, defs);
    // The value as shown (its start only), for the message.
    let shown = || quoted(&value.to_string());
    if let Some(Value::Array(alternatives)) = prop.get("anyOf") {
        let reasons: Vec<String> = alternatives
            .iter()
            .map(|a| refusal(value, a, defs, path, depth + 1))
            .collect::<Option<_>>()?;
        // Refused by every alternative: the one of the value's own type says most.
        let of_its_type = alternatives.iter().zip(&reasons).find(|(a, _)| {
            declared(a, defs)
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| json_types(value).contains(&t))
        });
        if let Some((_, reason)) = of_its_type {
            return Some(reason.clone());
        }
        let kinds: Vec<&str> = alternatives
            .iter()
            .filter_map(|a| a.get("type").and_then(Value::as_str))
            .chain(
                alternatives
                    .iter()
                    .filter(|a| a.get("$ref").is_some())
                    .map(|_| "object"),
            )
            .filter(|t| *t != "null")
            .collect();
        return Some(format!(
            "invalid argument `{path}`: {} (accepted: {})",
            shown(),
            kinds.join(" or ")
        ));
    }
    if let Some(allowed) = prop.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        return Some(format!(
            "invalid argument `{path}`: {} (accepted: one of {})",
            shown(),
            list.join(", ")
        ));
    }
    let declared_types: Vec<&str> = match prop.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => return None,
    };
    let wanted = || {
        declared_types
            .iter()
            .filter(|t| **t != "null")
            .copied()
            .collect::<Vec<_>>()
            .join(" or ")
    };
    if !json_types(value).iter().any(|t| declared_types.contains(t)) {
        return Some(format!(
            "invalid argument `{path}`: {} (accepted: {})",
            shown(),
            wanted()
        ));
    }
    let bound = |k: &str| prop.get(k).and_then(Value::as_f64);
    let (min, max) = (bound("minimum"), bound("maximum"));
    let v = value.as_f64();
    if v.zip(min).is_some_and(|(v, m)| v < m) || v.zip(max).is_some_and(|(v, m)| v > m) {
        let range = match (prop.get("minimum"), prop.get("maximum")) {
            (Some(lo), Some(hi)) => format!("{lo} to {hi}"),
            (Some(lo), None) => format!(">= {lo}"),
            (None, Some(hi)) => format!("<= {hi}"),
            (None, None) => String::new(),
        };
        return Some(format!(
            "invalid argument `{path}`: {} (accepted: {} {range})",
            shown(),
            wanted()
        ));
    }
    match value {
        Value::Array(items) => {
            if let Some(most) = prop.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > most
            {
                return Some(format!(
                    "invalid argument `{path}`: {} items (accepted: at most {most})",
                    items.len()
                ));
            }
            let each = prop.get("items")?;
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| refusal(item, each, defs, &format!("{path}[{i}]"), depth + 1))
        }
        Value::Object(fields) => {
            let props = prop.get("properties").and_then(Value::as_object)?;
            let required = required_keys(&prop);
            if let Some(missing) = required.iter().find(|r| !fields.contains_key(**r)) {
                return Some(format!("missing argument `{path}.{missing}` (required)"));
            }
            let closed = prop.get("additionalProperties") == Some(&Value::Bool(false));
            fields.iter().find_map(|(key, field)| match props.get(key) {
                Some(_) if field.is_null() && !required.contains(&key.as_str()) => None,
                Some(p) => refusal(field, p, defs, &format!("{path}.{key}"), depth + 1),
                None if closed => {
                    let mut known: Vec<&str> = props.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    Some(format!(
                        "unknown argument `{path}.{}` (accepted: {})",
                        quoted(key),
                        known.join(", ")
                    ))
                }
                None => None,
            })
        }
        _ => None,
    }
}

/// After a failed deserialisation that the schema did not explain: the argument whose value
/// the deserialiser's `message` quotes (as `Address` and serde quote a bad value).
fn quoted_argument(
    arguments: Option<&serde_json::Map<String, serde_json::Value>>,
    message: &str,
) -> Option<String> {
    use serde_json::Value;
    let detail = message
        .strip_prefix("failed to deserialize parameters: ")
        .unwrap_or(message);
    arguments?.iter().find_map(|(key, value)| {
        let needle = match value {
            Value::String(s) => format!("`{}`", quoted(s)),
            Value::Number(n) => format!("`{n}`"),
            _ => return None,
        };
        detail
            .contains(&needle)
            .then(|| format!("invalid argument `{key}`: {detail}"))
    })
}

/// A property's own schema: a `$ref` followed into `defs`, an optional's
/// `anyOf [X, null]` taken as X (the property's own keys kept over X's).
fn declared(
    prop: &serde_json::Value,
    defs: Option<&serde_json::Map<String, serde_json::Value>>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut out = prop.as_object().cloned().unwrap_or_default();
    for _ in 0..8 {
        let inner = if let Some(r) = out.remove("$ref").as_ref().and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            defs.and_then(|d| d.get(name)).cloned()
        } else if let Some(Value::Array(alts)) = out.get("anyOf").cloned() {
            let non_null: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() != 1 {
                break;
            }
            out.remove("anyOf");
            Some(non_null[0].clone())
        } else {
            break;
        };
        match inner.and_then(|i| i.as_object().cloned()) {
            Some(i) => {
                for (k, v) in i {
                    out.entry(k).or_insert(v);
                }
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mistyped_argument;
    use serde_json::json;

    #[test]
    fn names_the_mistyped_argument() {
        let schema = json!({"type": "object", "properties": {
            "pid": {"type": "integer", "format": "uint32", "minimum": 0},
            "name": {"type": ["string", "null"]},
            "limit": {"type": ["integer", "null"], "minimum": 0}
        }});
        let schema = schema.as_object().cloned().unwrap_or_default();
        let args = |v: serde_json::Value| v.as_object().cloned();
        let m =
            mistyped_argument(&schema, args(json!({"pid": "many"})).as_ref()).unwrap_or_default();
        assert_eq!(m, "invalid argument `pid`: \"many\" (accepted: integer)");
        let m = mistyped_argument(&schema, args(json!({"pid": 1, "limit": -5})).as_ref())
            .unwrap_or_default();
        assert_eq!(m, "invalid argument `limit`: -5 (accepted: integer >= 0)");
        let m = mistyped_argument(&schema, args(json!({"pid": 1.5})).as_ref()).unwrap_or_default();
        assert!(m.contains("`pid`: 1.5"), "{m}");
        assert_eq!(
            mistyped_argument(&schema, args(json!({"pid": 3, "name": null})).as_ref()),
            None
        );
    }

    #[test]
    fn names_missing_enum_and_range_errors() {
        let schema = json!({"type": "object", "required": ["pid"], "properties": {
            "pid": {"type": "integer", "description": "Process id.\nMore."},
            "encoding": {"anyOf": [{"$ref": "#/$defs/Enc"}, {"type": "null"}]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000}
        }, "$defs": {"Enc": {"type": "string", "enum": ["utf8", "utf16"]}}});
        let schema = schema.as_object().cloned().unwrap_or_default();
        let args = |v: serde_json::Value| v.as_object().cloned();
        let m = mistyped_argument(&schema, args(json!({})).as_ref()).unwrap_or_default();
        assert_eq!(m, "missing argument `pid` (required: Process id.)");
        let m = mistyped_argument(
            &schema,
            args(json!({"pid": 1, "encoding": "utf-8"})).as_ref(),
        )
        .unwrap_or_default();
        assert_eq!(
            m,
            "invalid argument `encoding`: \"utf-8\" (accepted: one of \"utf8\", \"utf16\")"
        );
        let m = mistyped_argument(&schema, args(json!({"pid": 1, "limit": 5000})).as_ref())
            .unwrap_or_default();
        assert_eq!(
            m,
            "invalid argument `limit`: 5000 (accepted: integer 1 to 1000)"
        );
        assert_eq!(
            mistyped_argument(&schema, args(json!({"pid": 1, "encoding": null})).as_ref()),
            None
        );
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let schema = json!({"type": "object", "properties": {"pid": {"type": "integer"}}});
        let schema = schema.as_object().cloned().unwrap_or_default();
        let args = json!({"pid": "é".repeat(300)}).as_object().cloned();
        let m = mistyped_argument(&schema, args.as_ref()).unwrap_or_default();
        assert!(
            m.contains(&format!("\"{}… (602 bytes) (accepted", "é".repeat(199))),
            "{m}"
        );
    }

    #[test]
    fn names_nested_values_and_alternatives() {
        let schema = json!({"type": "object", "properties": {
            "calls": {"type": "array", "maxItems": 4, "items": {"type": "object",
                "required": ["tool"], "additionalProperties": false,
                "properties": {"tool": {"type": "string"}, "arguments": {"type": "object"}}}},
            "address": {"$ref": "#/$defs/Address"},
            "layout": {"anyOf": [{"type": "string"},
                                 {"type": "array", "items": {"$ref": "#/$defs/Field"}}]}
        }, "$defs": {
            "Address": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
            "Field": {"type": "object", "required": ["name"],
                      "properties": {"name": {"type": "string"}}}
        }});
        let schema = schema.as_object().cloned().unwrap_or_default();
        let m =
            |v: serde_json::Value| mistyped_argument(&schema, v.as_object()).unwrap_or_default();
        assert_eq!(
            m(json!({"calls": [{"tool": "a"}, {}]})),
            "missing argument `calls[1].tool` (required)"
        );
        assert_eq!(
            m(json!({"calls": [{"tool": 3}]})),
            "invalid argument `calls[0].tool`: 3 (accepted: string)"
        );
        assert!(
            m(json!({"calls": [{"tool": "a", "tol": 1}]}))
                .starts_with("unknown argument `calls[0].tol` (accepted: arguments, tool)")
        );
        assert_eq!(
            m(json!({"calls": [{}, {}, {}, {}, {}]})),
            "invalid argument `calls`: 5 items (accepted: at most 4)"
        );
        assert_eq!(
            m(json!({"address": -1})),
            "invalid argument `address`: -1 (accepted: integer >= 0)"
        );
        assert_eq!(
            m(json!({"address": true})),
            "invalid argument `address`: true (accepted: integer or string)"
        );
        assert_eq!(m(json!({"address": "0x10", "layout": "D2UnitAny"})), "");
        assert_eq!(
            m(json!({"layout": [{"name": "a"}, {}]})),
            "missing argument `layout[1].name` (required)"
        );
        assert_eq!(
            m(json!({"layout": 7})),
            "invalid argument `layout`: 7 (accepted: string or array)"
        );
    }

    #[test]
    fn names_the_argument_a_deserialiser_quotes() {
        let args = json!({"pid": 4, "address": "0xZZ"});
        let m = super::quoted_argument(
            args.as_object(),
            "failed to deserialize parameters: `0xZZ` is not an address (accepted: ...)",
        );
        assert_eq!(
            m.as_deref(),
            Some("invalid argument `address`: `0xZZ` is not an address (accepted: ...)")
        );
        assert_eq!(
            super::quoted_argument(args.as_object(), "something else"),
            None
        );
    }
}
