//! The children's resources under their own URIs: routing a `resources/read` by URI (a URI a
//! child listed, else the most specific matching template), and the start-up check that no
//! URI or template is offered twice.
//!
//! Templates are matched as RFC 6570 level 1: the literal text between `{...}` expressions
//! must appear in order, the first part at the start of the URI and the last at its end; an
//! expression stands for any text (a path with slashes included, as `d2://save/{path}` needs).

use crate::child::Child;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The coordinator's own resource template.
pub const FINDINGS_TEMPLATE: &str = "findings://{id}";
pub const FINDINGS_PREFIX: &str = "findings://";
/// The reports report_generate writes.
pub const REPORT_TEMPLATE: &str = "report://{id}";
pub const REPORT_PREFIX: &str = "report://";

/// Who answers a `resources/read`.
#[derive(Debug)]
pub enum Route {
    Child(Arc<Child>),
    /// The coordinator's own `findings://{id}`, with the id.
    Finding(String),
    /// The coordinator's own `report://{id}`, with the id.
    Report(String),
    /// Nobody: the message names the URI and the schemes that are known.
    Unknown(String),
}

/// A template cut at its expressions: the literal parts, one more than the expressions.
fn literals(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    out.push(rest);
    out
}

/// Whether `uri` is an expansion of `template` (see the module's comment).
pub fn template_matches(template: &str, uri: &str) -> bool {
    let parts = literals(template);
    let [first, middle @ .., last] = &parts[..] else {
        return template == uri;
    };
    let Some(rest) = uri.strip_prefix(first) else {
        return false;
    };
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    // Leftmost matches of the middle parts are enough: every expression matches any text.
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// How specific a template is: the length of its literal text.
fn specificity(template: &str) -> usize {
    literals(template).iter().map(|l| l.len()).sum()
}

/// The template with its expressions' names left out: `d2://save/{path}` and
/// `d2://save/{p}` are the same template.
fn shape(template: &str) -> String {
    literals(template).join("{}")
}

/// The scheme of a URI or template (`d2` of `d2://save/{path}`), if it has a literal one.
fn scheme(uri: &str) -> Option<&str> {
    let s = &uri[..uri.find(':')?];
    (!s.is_empty() && !s.contains('{')).then_some(s)
}

/// Routes a read: a URI a child listed (the first child in the configuration's order), else
/// the matching template with the most literal text (the coordinator's own `findings://{id}`
/// among them; a child wins a tie), else nobody.
pub fn route(children: &[Arc<Child>], uri: &str) -> Route {
    // What each child listed last: a child that is restarting still gets its reads (and
    // answers that it is restarting).
    let listed: Vec<_> = children.iter().map(|c| (c, c.last_resources())).collect();
    if let Some((c, _)) = listed
        .iter()
        .find(|(_, (resources, _))| resources.iter().any(|r| r.uri == uri))
    {
        return Route::Child((*c).clone());
    }
    let mut best: Option<(usize, Option<&Arc<Child>>)> = None;
    for (c, (_, templates)) in &listed {
        for t in templates {
            let s = specificity(&t.uri_template);
            if template_matches(&t.uri_template, uri) && best.is_none_or(|(b, _)| s > b) {
                best = Some((s, Some(*c)));
            }
        }
    }
    let own = specificity(FINDINGS_TEMPLATE);
    match best {
        Some((s, Some(c))) if s >= own || !uri.starts_with(FINDINGS_PREFIX) => {
            Route::Child(c.clone())
        }
        _ => match uri.strip_prefix(FINDINGS_PREFIX) {
            Some(id) => Route::Finding(id.to_string()),
            None if best.is_none() && uri.starts_with(REPORT_PREFIX) => {
                Route::Report(uri[REPORT_PREFIX.len()..].to_string())
            }
            None => {
                let mut schemes = BTreeSet::from(["findings", "report"]);
                for (_, (resources, templates)) in &listed {
                    schemes.extend(resources.iter().filter_map(|r| scheme(&r.uri)));
                    schemes.extend(templates.iter().filter_map(|t| scheme(&t.uri_template)));
                }
                let schemes: Vec<&str> = schemes.into_iter().collect();
                Route::Unknown(format!(
                    "unknown resource {uri:?}: no server lists this URI or a template matching \
                     it (known schemes: {}; resources/list and resources/templates/list give \
                     the URIs and templates)",
                    schemes.join(", ")
                ))
            }
        },
    }
}

/// Refuses a URI or a template (expression names aside) that two children offer, or that a
/// child offers as well as the coordinator (`findings://{id}`): routing would be a guess.
pub fn check_collisions(children: &[Arc<Child>]) -> Result<(), String> {
    let mut uris: BTreeMap<String, &str> = BTreeMap::new();
    let mut templates: BTreeMap<String, (&str, String)> = BTreeMap::new();
    let own = "the coordinator itself";
    templates.insert(shape(FINDINGS_TEMPLATE), (own, FINDINGS_TEMPLATE.into()));
    let mut clashes = Vec::new();
    for c in children {
        let name = c.spec.name.as_str();
        let (resources, tmpl) = c.resources();
        for r in resources {
            if let Some(other) = uris.get(&r.uri)
                && *other != name
            {
                clashes.push(format!(
                    "servers {other:?} and {name:?} both offer the resource {:?}",
                    r.uri
                ));
            } else {
                uris.insert(r.uri, name);
            }
        }
        for t in tmpl {
            match templates.get(&shape(&t.uri_template)) {
                Some((other, theirs)) if *other != name => {
                    let who = if *other == own {
                        format!("server {name:?} and {own}")
                    } else {
                        format!("servers {other:?} and {name:?}")
                    };
                    clashes.push(format!(
                        "{who} both offer the resource template {theirs:?}{}",
                        if *theirs == t.uri_template {
                            String::new()
                        } else {
                            format!(" (as {:?})", t.uri_template)
                        }
                    ));
                }
                Some(_) => {}
                None => {
                    templates.insert(shape(&t.uri_template), (name, t.uri_template));
                }
            }
        }
    }
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: resources keep their URIs through the coordinator, so each URI and template \
             must belong to one server (remove one of them from the configuration)",
            clashes.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_one_templates() {
        assert!(template_matches("d2://save/{path}", "d2://save/a/b.d2s"));
        assert!(template_matches(
            "d2://character/{pid}",
            "d2://character/42"
        ));
        assert!(!template_matches("d2://character/{pid}", "d2://save/42"));
        assert!(template_matches("test://static", "test://static"));
        assert!(!template_matches("test://static", "test://static/x"));
        assert!(template_matches("x://{a}/mid/{b}.json", "x://1/mid/2.json"));
        assert!(!template_matches("x://{a}/mid/{b}.json", "x://1/mid/2.txt"));
        assert!(!template_matches("x://{a}/mid/{b}.json", "x://1/2.json"));
        // The prefix and suffix may not overlap.
        assert!(!template_matches("ab{x}ba", "aba"));
        assert!(template_matches("ab{x}ba", "abba"));
        assert_eq!(shape("d2://save/{path}"), shape("d2://save/{p}"));
        assert_eq!(scheme("d2://save/{path}"), Some("d2"));
        assert_eq!(scheme("{+uri}"), None);
    }
}
