//! Tool schemas as a host lists them: the model pays for every token of `tools/list`, so the
//! schemas schemars derives are cut to what a model or a validating client uses.
//!
//! Input schemas keep every property, description, enum and real limit; they lose noise
//! (`$schema`, `format`, the `minimum: 0` and type-maximum that `format: uint*` implies,
//! `null` in the types of optional properties, definitions used once) and say
//! `additionalProperties: false`, since unknown arguments are refused ([`unknown_argument`]).
//! Output schemas keep the top-level properties and their JSON types: enough for a client to
//! validate `structuredContent` and for a model to know the fields (each answer's summary
//! line and JSON show the nested shapes; the full derived schemas stay in the tool router).

use serde_json::{Map, Value};

type Object = Map<String, Value>;

/// The tool as listed: compact input and output schemas.
pub fn for_listing(mut tool: rmcp::model::Tool) -> rmcp::model::Tool {
    tool.input_schema = std::sync::Arc::new(compact_input(&tool.input_schema));
    if let Some(out) = &tool.output_schema {
        tool.output_schema = Some(std::sync::Arc::new(compact_output(out)));
    }
    tool
}

/// The input schema without noise, with `additionalProperties: false`.
pub fn compact_input(schema: &Object) -> Object {
    let mut root = Value::Object(schema.clone());
    inline_single_use(&mut root);
    let mut out = match strip(&root) {
        Value::Object(o) => o,
        _ => Object::new(),
    };
    out.entry("type").or_insert_with(|| "object".into());
    out.entry("additionalProperties")
        .or_insert(Value::Bool(false));
    out
}

/// The output schema as top-level property names and JSON types.
pub fn compact_output(schema: &Object) -> Object {
    let defs = schema.get("$defs").and_then(Value::as_object);
    let root = resolve(&Value::Object(schema.clone()), defs);
    let mut out = Object::new();
    out.insert("type".into(), "object".into());
    if let Some(props) = root.get("properties").and_then(Value::as_object) {
        let shallow = props
            .iter()
            .map(|(k, v)| (k.clone(), Value::Object(type_only(v, defs))))
            .collect();
        out.insert("properties".into(), Value::Object(shallow));
    }
    out
}

/// The JSON type(s) a property may have, following references and `anyOf`; `{}` (anything)
/// where the shape has no single type list.
fn type_only(v: &Value, defs: Option<&Object>) -> Object {
    let v = resolve(v, defs);
    let mut out = Object::new();
    if let Some(t) = v.get("type") {
        out.insert("type".into(), t.clone());
        return out;
    }
    let alternatives = v
        .get("anyOf")
        .or_else(|| v.get("oneOf"))
        .and_then(Value::as_array);
    if let Some(alts) = alternatives {
        let mut types: Vec<Value> = Vec::new();
        for alt in alts {
            let a = type_only(alt, defs);
            match a.get("type") {
                Some(Value::String(s)) => types.push(s.as_str().into()),
                Some(Value::Array(ts)) => types.extend(ts.iter().cloned()),
                _ => return Object::new(),
            }
        }
        types.dedup();
        let mut seen = Vec::new();
        types.retain(|t| {
            let new = !seen.contains(t);
            seen.push(t.clone());
            new
        });
        out.insert(
            "type".into(),
            if types.len() == 1 {
                types.remove(0)
            } else {
                Value::Array(types)
            },
        );
    } else if let Some(values) = v.get("enum").and_then(Value::as_array)
        && values.iter().all(Value::is_string)
    {
        out.insert("type".into(), "string".into());
    } else if v.get("const").is_some_and(Value::is_string) {
        out.insert("type".into(), "string".into());
    }
    out
}

/// Follows `$ref`s into `defs`; anything else as it is.
fn resolve(v: &Value, defs: Option<&Object>) -> Object {
    let mut v = v;
    for _ in 0..32 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = r.rsplit('/').next().unwrap_or_default();
        match defs.and_then(|d| d.get(name)) {
            Some(d) => v = d,
            None => break,
        }
    }
    match v {
        Value::Object(o) => o.clone(),
        _ => Object::new(),
    }
}

/// Replaces each `$ref` to a definition referenced only once by the definition itself, and
/// drops the definitions no longer referenced.
fn inline_single_use(root: &mut Value) {
    let Some(defs) = root.get("$defs").and_then(Value::as_object).cloned() else {
        return;
    };
    let mut counts = std::collections::HashMap::new();
    count_refs(root, &mut counts);
    // A definition that refers to itself is never inlined (it would never end).
    let once: Object = defs
        .iter()
        .filter(|(k, v)| {
            let me = format!("#/$defs/{k}");
            let mut own = std::collections::HashMap::new();
            count_refs(v, &mut own);
            counts.get(&me) == Some(&1) && !own.contains_key(&me)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    replace_refs(root, &once);
    if let Some(obj) = root.as_object_mut() {
        // The definitions as the walk left them (their own single-use references inlined).
        let mut left = match obj.remove("$defs") {
            Some(Value::Object(d)) => d,
            _ => Object::new(),
        };
        left.retain(|k, _| !once.contains_key(k));
        if left.is_empty() {
            obj.remove("$defs");
        } else {
            obj.insert("$defs".into(), Value::Object(left));
        }
    }
}

fn count_refs(v: &Value, counts: &mut std::collections::HashMap<String, usize>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                *counts.entry(r.clone()).or_default() += 1;
            }
            o.values().for_each(|c| count_refs(c, counts));
        }
        Value::Array(a) => a.iter().for_each(|c| count_refs(c, counts)),
        _ => {}
    }
}

fn replace_refs(v: &mut Value, once: &Object) {
    match v {
        Value::Object(o) => {
            let target = o
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .and_then(|name| once.get(name))
                .and_then(Value::as_object)
                .cloned();
            if let Some(def) = target {
                o.remove("$ref");
                for (k, d) in def {
                    // The referring site's own description wins over the definition's.
                    o.entry(k).or_insert(d);
                }
            }
            // Definitions that stay are walked too: their single-use references are inlined
            // like any other, so none is left pointing at a removed definition.
            o.values_mut().for_each(|c| replace_refs(c, once));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| replace_refs(c, once)),
        _ => {}
    }
}

/// The largest value of an unsigned `format`, whose `maximum` schemars adds by itself.
fn format_max(format: &str) -> Option<u64> {
    match format {
        "uint8" => Some(u8::MAX.into()),
        "uint16" => Some(u16::MAX.into()),
        "uint32" => Some(u32::MAX.into()),
        "uint64" | "uint" => Some(u64::MAX),
        _ => None,
    }
}

/// One schema without noise (recursive; maps of named sub-schemas are walked by name).
fn strip(v: &Value) -> Value {
    let o = match v {
        Value::Object(o) => o,
        // A bare `true` schema says "anything": the explicit empty object says the same
        // and is what strict validators expect.
        Value::Bool(true) => return Value::Object(Object::new()),
        other => return other.clone(),
    };
    let unsigned = o
        .get("format")
        .and_then(Value::as_str)
        .filter(|f| f.starts_with("uint"));
    let mut out = Object::new();
    for (k, val) in o {
        match k.as_str() {
            "$schema" | "title" | "format" => {}
            "default" if val.is_null() => {}
            "minimum" if unsigned.is_some() && val.as_f64() == Some(0.0) => {}
            "maximum"
                if unsigned
                    .and_then(format_max)
                    .is_some_and(|m| val.as_u64() == Some(m)) => {}
            "type" => {
                out.insert(k.clone(), without_null(val));
            }
            "enum" => {
                // An optional enum's `null` member goes with the `null` type.
                let members = val
                    .as_array()
                    .map(|m| m.iter().filter(|v| !v.is_null()).cloned().collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Array(members));
            }
            "anyOf" => match non_null_single(val) {
                Some(inner) => {
                    if let Value::Object(inner) = strip(inner) {
                        for (ik, iv) in inner {
                            out.entry(ik).or_insert(iv);
                        }
                    }
                }
                None => {
                    out.insert(k.clone(), strip(val));
                }
            },
            "properties" | "$defs" | "definitions" | "patternProperties" => {
                let named = val
                    .as_object()
                    .map(|m| m.iter().map(|(n, s)| (n.clone(), strip(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(named));
            }
            _ => {
                let stripped = match val {
                    Value::Object(_) => strip(val),
                    Value::Array(a) => Value::Array(a.iter().map(strip_item).collect()),
                    other => other.clone(),
                };
                out.insert(k.clone(), stripped);
            }
        }
    }
    Value::Object(out)
}

/// Array members: sub-schemas (objects, `true`) are stripped, plain values (enum members,
/// required names) kept.
fn strip_item(v: &Value) -> Value {
    match v {
        Value::Object(_) => strip(v),
        other => other.clone(),
    }
}

/// `["integer", "null"]` -> `"integer"`: an optional argument may simply be left out.
fn without_null(t: &Value) -> Value {
    match t {
        Value::Array(ts) => {
            let mut kept: Vec<Value> = ts.iter().filter(|t| *t != "null").cloned().collect();
            if kept.len() == 1 {
                kept.remove(0)
            } else {
                Value::Array(kept)
            }
        }
        other => other.clone(),
    }
}

/// The one non-null member of an `anyOf` of two where the other is `{"type": "null"}`.
fn non_null_single(v: &Value) -> Option<&Value> {
    let a = v.as_array()?;
    if a.len() != 2 {
        return None;
    }
    let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
    match (is_null(&a[0]), is_null(&a[1])) {
        (true, false) => Some(&a[1]),
        (false, true) => Some(&a[0]),
        _ => None,
    }
}

/// The first argument the input schema does not declare, named with the accepted ones
/// (`None` when every key is declared; a schema without properties takes none).
pub fn unknown_argument(schema: &Object, arguments: Option<&Object>) -> Option<String> {
    let none = Object::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&none);
    let open = schema
        .get("additionalProperties")
        .is_some_and(|a| a != &Value::Bool(false));
    if open {
        return None;
    }
    let unknown = arguments?.keys().find(|k| !props.contains_key(*k))?;
    let mut accepted: Vec<&str> = props.keys().map(String::as_str).collect();
    accepted.sort_unstable();
    // The key is the caller's: quote only its start.
    let unknown = crate::error::quoted(unknown);
    Some(format!(
        "unknown argument `{unknown}` (accepted: {})",
        if accepted.is_empty() {
            "none".to_string()
        } else {
            accepted.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn input_keeps_meaning_and_drops_noise() {
        let schema = obj(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ScanArgs",
            "type": "object",
            "properties": {
                "pid": {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 4294967295u64,
                        "description": "Process id."},
                "limit": {"type": ["integer", "null"], "format": "uint", "minimum": 1, "maximum": 1000},
                "title": {"type": "string", "description": "a property named title stays"},
                "enc": {"anyOf": [{"$ref": "#/$defs/Enc"}, {"type": "null"}], "description": "Encoding."},
                "kind": {"$ref": "#/$defs/Kind"},
                "other": {"$ref": "#/$defs/Kind"},
                "data": true
            },
            "required": ["pid"],
            "$defs": {
                "Enc": {"type": "string", "enum": ["utf8", "utf16"], "description": "unused"},
                "Kind": {"type": "string", "enum": ["a", "b"]}
            }
        }));
        let c = Value::Object(compact_input(&schema));
        assert_eq!(
            c,
            json!({
                "type": "object",
                "properties": {
                    "pid": {"type": "integer", "description": "Process id."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "title": {"type": "string", "description": "a property named title stays"},
                    "enc": {"type": "string", "enum": ["utf8", "utf16"], "description": "Encoding."},
                    "kind": {"$ref": "#/$defs/Kind"},
                    "other": {"$ref": "#/$defs/Kind"},
                    "data": {}
                },
                "required": ["pid"],
                "$defs": {"Kind": {"type": "string", "enum": ["a", "b"]}},
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn single_use_definitions_inside_kept_ones_are_inlined_too() {
        let schema = obj(json!({
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/Outer"},
                "b": {"$ref": "#/$defs/Outer"},
                "t": {"$ref": "#/$defs/Tree"},
                "e": {"type": ["string", "null"], "enum": ["x", "y", null]}
            },
            "$defs": {
                "Outer": {"type": "object", "properties": {"f": {"$ref": "#/$defs/Inner"}}},
                "Inner": {"type": "string", "enum": ["p", "q"]},
                "Tree": {"type": "object", "properties": {"kids": {"items": {"$ref": "#/$defs/Tree"}}}}
            }
        }));
        let c = Value::Object(compact_input(&schema));
        assert_eq!(
            c["$defs"]["Outer"]["properties"]["f"],
            json!({"type": "string", "enum": ["p", "q"]})
        );
        assert!(c["$defs"].get("Inner").is_none());
        // A recursive definition stays a definition.
        assert_eq!(c["properties"]["t"], json!({"$ref": "#/$defs/Tree"}));
        assert_eq!(
            c["properties"]["e"],
            json!({"type": "string", "enum": ["x", "y"]})
        );
    }

    #[test]
    fn output_is_top_level_names_and_types() {
        let schema = obj(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "x"},
                "merc": {"anyOf": [{"$ref": "#/$defs/Merc"}, {"type": "null"}]},
                "items": {"type": "array", "items": {"$ref": "#/$defs/Merc"}},
                "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]},
                "any": true
            },
            "required": ["name"],
            "$defs": {"Merc": {"type": "object", "properties": {"id": {"type": "integer"}}}}
        }));
        let c = Value::Object(compact_output(&schema));
        assert_eq!(
            c,
            json!({"type": "object", "properties": {
                "name": {"type": "string"},
                "merc": {"type": ["object", "null"]},
                "items": {"type": "array"},
                "kind": {"type": "string"},
                "any": {}
            }})
        );
    }

    #[test]
    fn unknown_arguments_are_named_with_the_accepted_ones() {
        let schema = obj(json!({"properties": {"limit": {}, "offset": {}, "path": {}}}));
        let args = obj(json!({"path": "a", "limt": 5}));
        assert_eq!(
            unknown_argument(&schema, Some(&args)).as_deref(),
            Some("unknown argument `limt` (accepted: limit, offset, path)")
        );
        let ok = obj(json!({"path": "a", "limit": 5}));
        assert_eq!(unknown_argument(&schema, Some(&ok)), None);
    }
}
