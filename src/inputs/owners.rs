//! CODEOWNERS, read as GitHub reads it.
//!
//! The file is the first of `.github/CODEOWNERS`, `CODEOWNERS` and `docs/CODEOWNERS` that
//! exists. Each line is a pattern followed by owners (`@user`, `@org/team`, an email); `#`
//! starts a comment (a whole line, or a word after whitespace: `*.js @js-owner # note`). The
//! last rule whose pattern matches a path gives its owners — possibly none (`/apps/github`
//! alone takes `apps/github` back from every earlier rule).
//!
//! Patterns follow gitignore with GitHub's exceptions: `*` and `?` stop at `/`, `**` crosses
//! directories; a leading `/` or a `/` inside anchors the pattern at the root, otherwise it
//! matches at any depth; a pattern that names a directory owns everything beneath it, and a
//! trailing `/` matches only beneath it; a trailing lone `*` segment (`docs/*`) matches the
//! directory's direct entries only (GitHub's documented `docs/*` example). `!` negation,
//! `[ ]` ranges and `\#` escapes are not supported by GitHub: such a line is skipped with a
//! warning, as is a line whose pattern or owners do not parse — GitHub skips the line and
//! flags it, the rest of the file still applies. `\ ` is an escaped space in a pattern.
//!
//! Matching uses one `globset::GlobSet` of every rule's globs: one query per path returns all
//! matching rules, and the highest rule index wins.

use std::path::{Path, PathBuf};

use anyhow::Result;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::inputs::read;

/// Where GitHub looks, in its order.
const LOCATIONS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// The CODEOWNERS file GitHub would use for the repository at `repo_root`, if any.
pub fn find(repo_root: &Path) -> Option<PathBuf> {
    LOCATIONS.iter().map(|location| repo_root.join(location)).find(|path| path.is_file())
}

/// Read and parse a CODEOWNERS file. Only an unreadable file is an error; lines that do not
/// parse are warnings (see [`Codeowners::warnings`]).
pub fn load(path: &Path) -> Result<Codeowners> {
    Ok(parse(&read(path)?))
}

#[derive(Debug, Clone)]
struct Rule {
    line: u32,
    pattern: String,
    owners: Vec<String>,
}

/// The parsed rules of a CODEOWNERS file.
#[derive(Debug, Clone)]
pub struct Codeowners {
    rules: Vec<Rule>,
    set: GlobSet,
    /// The rule of each glob of `set`.
    glob_rule: Vec<usize>,
    warnings: Vec<(u32, String)>,
}

impl Codeowners {
    /// The owners of a repo-relative `/` path (a file or a directory), sorted and without
    /// duplicates: those of the last matching rule, none when no rule matches.
    pub fn owners_of(&self, repo_relative_path: &str) -> Vec<String> {
        self.rule_of(repo_relative_path).map(|rule| rule.owners.clone()).unwrap_or_default()
    }

    /// The line number and pattern of the rule that decides `repo_relative_path`'s owners.
    pub fn matching_rule(&self, repo_relative_path: &str) -> Option<(u32, &str)> {
        self.rule_of(repo_relative_path).map(|rule| (rule.line, rule.pattern.as_str()))
    }

    /// Lines GitHub would skip: (line number, what is wrong), in file order.
    pub fn warnings(&self) -> &[(u32, String)] {
        &self.warnings
    }

    /// Number of rules (lines with a pattern that parsed).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn rule_of(&self, path: &str) -> Option<&Rule> {
        let path = path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
        if path.is_empty() {
            return None;
        }
        self.set.matches(path).into_iter().map(|glob| self.glob_rule[glob]).max().map(|rule| &self.rules[rule])
    }
}

/// Parse CODEOWNERS text.
pub fn parse(text: &str) -> Codeowners {
    let mut rules = Vec::new();
    let mut builder = GlobSetBuilder::new();
    let mut glob_rule = Vec::new();
    let mut warnings = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((pattern, owners))) => match globs(&pattern) {
                Ok(globs) => {
                    for glob in globs {
                        builder.add(glob);
                        glob_rule.push(rules.len());
                    }
                    rules.push(Rule { line: number, pattern, owners });
                }
                Err(message) => warnings.push((number, message)),
            },
            Err(message) => warnings.push((number, message)),
        }
    }
    // Every glob compiled on its own above; a set of valid globs always builds.
    let set = builder.build().unwrap_or_else(|_| GlobSet::empty());
    Codeowners { rules, set, glob_rule, warnings }
}

/// A line's pattern and sorted owners; `None` for a blank or comment line.
fn parse_line(line: &str) -> std::result::Result<Option<(String, Vec<String>)>, String> {
    let line = line.trim_start_matches('\u{feff}');
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    // The pattern: up to the first unescaped whitespace (`\ ` is a space in the pattern).
    let mut pattern = String::new();
    let mut chars = trimmed.char_indices().peekable();
    let mut rest_start = trimmed.len();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some(&(_, next)) if next.is_whitespace() => {
                    pattern.push(next);
                    chars.next();
                }
                _ => pattern.push(c),
            }
        } else if c.is_whitespace() {
            rest_start = i;
            break;
        } else {
            pattern.push(c);
        }
    }
    let mut owners = Vec::new();
    for word in trimmed[rest_start..].split_whitespace() {
        if word.starts_with('#') {
            break;
        }
        if !is_owner(word) {
            return Err(format!("{word:?} is not an owner (@user, @org/team or an email): line skipped"));
        }
        owners.push(word.to_string());
    }
    owners.sort();
    owners.dedup();
    if pattern.starts_with("\\#") {
        return Err("escaping # with \\ is not supported in CODEOWNERS: line skipped".to_string());
    }
    if pattern.starts_with('!') {
        return Err(format!("{pattern:?}: negation with ! is not supported in CODEOWNERS: line skipped"));
    }
    if pattern.contains('[') || pattern.contains(']') {
        return Err(format!("{pattern:?}: character ranges [ ] are not supported in CODEOWNERS: line skipped"));
    }
    if pattern.contains("***") {
        return Err(format!("{pattern:?}: three consecutive asterisks: line skipped"));
    }
    Ok(Some((pattern, owners)))
}

/// `@user`, `@org/team`, or an email.
fn is_owner(word: &str) -> bool {
    let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if let Some(handle) = word.strip_prefix('@') {
        return match handle.split_once('/') {
            Some((org, team)) => name_ok(org) && name_ok(team),
            None => name_ok(handle),
        };
    }
    match word.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !word.contains(['/', ',', '<', '>', '(', ')', '"'])
        }
        None => false,
    }
}

/// The globs (globset syntax, `*` not crossing `/`) that together match what `pattern`
/// matches.
fn globs(pattern: &str) -> std::result::Result<Vec<globset::Glob>, String> {
    let anchored_by_slash = pattern.starts_with('/');
    let body = pattern.trim_start_matches('/');
    let dir_only = body.ends_with('/');
    let body = body.trim_end_matches('/');
    if body.is_empty() {
        // `/` alone names no file.
        return Ok(Vec::new());
    }
    let anchored = anchored_by_slash || body.contains('/');
    let segments: Vec<&str> = body.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("{pattern:?}: empty path segment (//): line skipped"));
    }
    let mut glob = String::new();
    if !anchored && segments[0] != "**" {
        glob.push_str("**/");
    }
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            glob.push('/');
        }
        if *segment == "**" {
            glob.push_str("**");
        } else {
            glob.push_str(&escape_segment(segment));
        }
    }
    let last = *segments.last().unwrap_or(&"");
    let mut out = Vec::new();
    if dir_only {
        out.push(format!("{glob}/**"));
    } else if last == "**" || (last == "*" && anchored) {
        // `foo/**` is everything beneath foo; `docs/*` only the direct entries of docs.
        out.push(glob);
    } else {
        // The path itself, or anything beneath it when it is a directory.
        out.push(format!("{glob}/**"));
        out.push(glob);
    }
    out.into_iter()
        .map(|g| {
            GlobBuilder::new(&g)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("{pattern:?}: invalid pattern: {e}: line skipped"))
        })
        .collect()
}

/// One path segment in globset syntax: `*` and `?` kept, `**` inside a segment is `*`
/// (it cannot cross `/` there), `\x` kept as an escape, `{ } ,` literal.
fn escape_segment(segment: &str) -> String {
    let mut out = String::new();
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push_str("\\\\"),
            },
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push('*');
            }
            '{' | '}' | ',' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_syntax() {
        assert!(is_owner("@user"));
        assert!(is_owner("@org/team-name"));
        assert!(is_owner("docs@example.com"));
        assert!(!is_owner("@"));
        assert!(!is_owner("@org/"));
        assert!(!is_owner("user"));
        assert!(!is_owner("a@b"));
    }

    #[test]
    fn lines() {
        assert_eq!(parse_line("# comment").unwrap(), None);
        assert_eq!(parse_line("   ").unwrap(), None);
        assert_eq!(parse_line("*.js @b @a # inline").unwrap(), Some(("*.js".into(), vec!["@a".into(), "@b".into()])));
        assert_eq!(parse_line("my\\ file.txt @a").unwrap(), Some(("my file.txt".into(), vec!["@a".into()])));
        assert_eq!(parse_line("/apps/github").unwrap(), Some(("/apps/github".into(), vec![])));
        assert!(parse_line("!x @a").is_err());
        assert!(parse_line("x not-an-owner").is_err());
    }
}
