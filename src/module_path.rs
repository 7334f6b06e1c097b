//! Module naming: the dotted module name of a repo-relative path.
//!
//! `pkg/sub/mod.py` is `pkg.sub.mod`; `pkg/__init__.py` is the package `pkg`; directories
//! without `__init__.py` are PEP 420 namespace packages and name their modules the same way.
//! In a src-layout repository (`<root>/src` exists and is not itself a package) the `src/`
//! prefix is dropped. A root-level `__init__.py` names the root package, which has no name of
//! its own: its module name is the empty string.

/// The module a source file defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePath {
    /// Dotted module name.
    pub module: String,
    /// The file is a package's `__init__.py`.
    pub is_package: bool,
}

/// Name the module defined by the repo-relative `rel_path` (a `.py` file).
pub fn module_path(rel_path: &str, src_layout: bool) -> ModulePath {
    let rel = if src_layout { rel_path.strip_prefix("src/").unwrap_or(rel_path) } else { rel_path };
    let stem = rel.strip_suffix(".py").unwrap_or(rel);
    let mut parts: Vec<&str> = stem.split('/').collect();
    let is_package = parts.last() == Some(&"__init__");
    if is_package {
        parts.pop();
    }
    ModulePath { module: parts.join("."), is_package }
}

/// The package that relative imports in `module` are resolved against (`__package__`).
pub fn package_of(module: &str, is_package: bool) -> &str {
    if is_package {
        module
    } else {
        module.rsplit_once('.').map_or("", |(package, _)| package)
    }
}

/// Make a relative import absolute: `level` leading dots and the optional module text after
/// them, seen from `package`. `None` when the dots climb above the top-level package (CPython's "attempted
/// relative import beyond top-level package").
pub fn resolve_relative(package: &str, level: u32, module: Option<&str>) -> Option<String> {
    let mut base: Vec<&str> = if package.is_empty() { Vec::new() } else { package.split('.').collect() };
    // CPython: `package.rsplit('.', level - 1)` must leave `level` parts.
    if level == 0 || level as usize > base.len() {
        return None;
    }
    base.truncate(base.len() + 1 - level as usize);
    base.extend(module);
    Some(base.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(module_path("pkg/sub/mod.py", false), ModulePath { module: "pkg.sub.mod".into(), is_package: false });
        assert_eq!(module_path("pkg/__init__.py", false), ModulePath { module: "pkg".into(), is_package: true });
        assert_eq!(module_path("src/pkg/a.py", true).module, "pkg.a");
        assert_eq!(module_path("src/pkg/a.py", false).module, "src.pkg.a");
        assert_eq!(module_path("__init__.py", false), ModulePath { module: String::new(), is_package: true });
    }

    #[test]
    fn relative_imports() {
        assert_eq!(package_of("pkg.sub.mod", false), "pkg.sub");
        assert_eq!(package_of("pkg.sub", true), "pkg.sub");
        assert_eq!(package_of("top", false), "");
        assert_eq!(resolve_relative("pkg.sub", 1, Some("x")).as_deref(), Some("pkg.sub.x"));
        assert_eq!(resolve_relative("pkg.sub", 1, None).as_deref(), Some("pkg.sub"));
        assert_eq!(resolve_relative("pkg.sub", 2, Some("y.z")).as_deref(), Some("pkg.y.z"));
        assert_eq!(resolve_relative("pkg.sub", 2, None).as_deref(), Some("pkg"));
        assert_eq!(resolve_relative("pkg.sub", 3, Some("x")), None);
        assert_eq!(resolve_relative("pkg.sub", 3, None), None);
        assert_eq!(resolve_relative("pkg", 3, Some("x")), None);
        assert_eq!(resolve_relative("", 1, Some("x")), None);
    }
}
