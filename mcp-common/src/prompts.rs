//! What every server's prompts share: the check of a `prompts/get`'s arguments against the
//! prompt's declaration, the completion answer, and completion of paths under the roots.

use crate::Roots;
use rmcp::ErrorData;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::model::{CompleteResult, CompletionInfo, GetPromptRequestParams};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Refuses a `prompts/get` whose arguments do not fit the prompt: a required one missing or
/// empty, one that is not a string, or one the prompt does not take; the error names it.
/// An unknown prompt is left to the router, which lists the known ones.
pub fn check_arguments<S: Send + Sync + 'static>(
    router: &PromptRouter<S>,
    request: &GetPromptRequestParams,
) -> Result<(), ErrorData> {
    let Some(route) = router.map.get(request.name.as_str()) else {
        return Ok(());
    };
    let name = &request.name;
    let declared = route.attr.arguments.as_deref().unwrap_or_default();
    let given = request.arguments.as_ref();
    for arg in declared {
        let what = arg
            .description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        match given.and_then(|m| m.get(&arg.name)) {
            None | Some(Value::Null) if arg.required == Some(true) => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "prompt `{name}`: missing argument `{}` (required{what})",
                        arg.name
                    ),
                    None,
                ));
            }
            Some(Value::String(s)) if s.trim().is_empty() && arg.required == Some(true) => {
                return Err(ErrorData::invalid_params(
                    format!("prompt `{name}`: argument `{}` is empty{what}", arg.name),
                    None,
                ));
            }
            Some(v) if !v.is_string() && !v.is_null() => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "prompt `{name}`: argument `{}` must be a string, got {}",
                        arg.name,
                        crate::error::quoted(&v.to_string())
                    ),
                    None,
                ));
            }
            _ => {}
        }
    }
    if let Some(unknown) = given
        .into_iter()
        .flat_map(|m| m.keys())
        .find(|k| !declared.iter().any(|a| &a.name == *k))
    {
        let accepted: Vec<&str> = declared.iter().map(|a| a.name.as_str()).collect();
        let unknown = crate::error::quoted(unknown);
        return Err(ErrorData::invalid_params(
            format!(
                "prompt `{name}`: unknown argument `{unknown}` (accepted: {})",
                accepted.join(", ")
            ),
            None,
        ));
    }
    Ok(())
}

/// The completion answer: at most 100 values, with the total and whether more exist.
pub fn completion(values: Vec<String>, total: usize) -> CompleteResult {
    let has_more = total > values.len();
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    CompleteResult::new(
        CompletionInfo::with_pagination(values, Some(total), has_more).unwrap_or_default(),
    )
}

/// Most values one completion answer carries (the MCP limit).
pub const MAX_COMPLETIONS: usize = CompletionInfo::MAX_VALUES;

/// Paths under the roots that start with `typed`, sorted, the first 100 of them, and how many
/// match in all. A relative prefix is taken against the first root (as the tools take paths)
/// and completed relatively; an absolute one is completed absolutely. Directories end in `/`;
/// hidden entries are offered only when the typed name starts with a dot; entries whose real
/// path leaves the roots (symlinks) are not offered. An empty prefix also offers the other
/// roots, and an absolute prefix of a root's path offers that root.
pub fn complete_path(roots: &Roots, typed: &str) -> (Vec<String>, usize) {
    let (dir_part, name_prefix) = match typed.rfind('/') {
        Some(i) => typed.split_at(i + 1),
        None => ("", typed),
    };
    let absolute = typed.starts_with('/');
    let Some(first) = roots.dirs().first() else {
        return (Vec::new(), 0);
    };
    let mut out: Vec<String> = Vec::new();
    // Roots themselves: for an empty prefix (the other roots) or an absolute prefix of one.
    for r in roots.dirs() {
        let shown = format!("{}/", r.display());
        let offer = if typed.is_empty() {
            r != first
        } else {
            absolute && shown.starts_with(typed) && shown.len() > typed.len()
        };
        if offer {
            out.push(shown);
        }
    }
    let base: PathBuf = if absolute {
        PathBuf::from(dir_part)
    } else {
        first.join(dir_part)
    };
    if let Ok(dir) = base.canonicalize()
        && inside(roots, &dir)
        && let Ok(entries) = std::fs::read_dir(&dir)
    {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(name_prefix)
                || (name.starts_with('.') && !name_prefix.starts_with('.'))
            {
                continue;
            }
            let Ok(real) = entry.path().canonicalize() else {
                continue;
            };
            if !inside(roots, &real) {
                continue;
            }
            if real.is_dir() {
                out.push(format!("{dir_part}{name}/"));
            } else if real.is_file() {
                out.push(format!("{dir_part}{name}"));
            }
        }
    }
    out.sort();
    out.dedup();
    let total = out.len();
    out.truncate(MAX_COMPLETIONS);
    (out, total)
}

fn inside(roots: &Roots, path: &Path) -> bool {
    roots.dirs().iter().any(|r| path.starts_with(r))
}

/// The `ServerHandler` prompt methods of a server with a `prompt_router` field: the list, and
/// `prompts/get` with its arguments checked first ([`check_arguments`]).
#[macro_export]
macro_rules! prompt_handler_methods {
    () => {
        async fn list_prompts(
            &self,
            _request: Option<rmcp::model::PaginatedRequestParams>,
            _context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::ListPromptsResult, rmcp::ErrorData> {
            Ok(rmcp::model::ListPromptsResult::with_all_items(
                self.prompt_router.list_all(),
            ))
        }

        async fn get_prompt(
            &self,
            request: rmcp::model::GetPromptRequestParams,
            context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::GetPromptResponse, rmcp::ErrorData> {
            $crate::prompts::check_arguments(&self.prompt_router, &request)?;
            let ctx = rmcp::handler::server::prompt::PromptContext::new(
                self,
                request.name,
                request.arguments,
                context,
            );
            self.prompt_router.get_prompt(ctx).await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_complete_under_the_roots_only() -> Result<(), Box<dyn std::error::Error>> {
        let base = std::env::temp_dir().join(format!("static-complete-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("dlls"))?;
        std::fs::create_dir_all(&outside)?;
        for f in ["D2Client.dll", "D2Common.dll", "Game.exe", ".hidden"] {
            std::fs::write(root.join(f), b"x")?;
        }
        std::fs::write(outside.join("secret.dll"), b"x")?;
        std::os::unix::fs::symlink(&outside, root.join("escape"))?;
        let roots = Roots::new(std::slice::from_ref(&root))?;

        let (v, total) = complete_path(&roots, "D2");
        assert_eq!(v, vec!["D2Client.dll", "D2Common.dll"]);
        assert_eq!(total, 2);
        let (v, _) = complete_path(&roots, "");
        assert_eq!(v, vec!["D2Client.dll", "D2Common.dll", "Game.exe", "dlls/"]);
        let (v, _) = complete_path(&roots, ".h");
        assert_eq!(v, vec![".hidden"]);
        assert!(complete_path(&roots, "escape/").0.is_empty());
        assert!(complete_path(&roots, "../outside/").0.is_empty());
        let canon = root.canonicalize()?;
        let abs = format!("{}/Ga", canon.display());
        assert_eq!(
            complete_path(&roots, &abs).0,
            vec![format!("{}/Game.exe", canon.display())]
        );
        let parent = format!("{}/ro", canon.parent().unwrap_or(&canon).display());
        assert_eq!(
            complete_path(&roots, &parent).0,
            vec![format!("{}/", canon.display())]
        );

        for i in 0..150 {
            std::fs::write(root.join("dlls").join(format!("m{i:03}.dll")), b"x")?;
        }
        let (v, total) = complete_path(&roots, "dlls/m");
        assert_eq!((v.len(), total), (100, 150));
        assert_eq!(v[0], "dlls/m000.dll");
        std::fs::remove_dir_all(&base)?;
        Ok(())
    }
}
