//! Mechanical invariants of the source tree: `//!` headers, acyclic modules, ARCHITECTURE.md's dependency claims against each Cargo.toml, no unused dependencies, libraries that cannot print, every crate's function-length lint.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace's crates: directory, package name, and whether it is a library that must not
/// print (everything but the CLI).
const CRATES: &[(&str, &str, bool)] = &[
    ("state", "prov-state", true),
    ("engine", "prov-engine", true),
    ("sim", "prov-sim", true),
    ("providers", "prov-providers", true),
    ("taskservs", "prov-taskservs", true),
    ("clusters", "prov-clusters", true),
    (".", "prov", false),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_rust_file_starts_with_a_doc_line() {
    let mut files = Vec::new();
    for d in [
        "src",
        "tests",
        "engine",
        "state",
        "providers",
        "taskservs",
        "clusters",
        "bench",
        "fuzz",
    ] {
        rust_files(&root().join(d), &mut files);
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    let bad: Vec<String> = files
        .iter()
        .filter(|p| !read(p).starts_with("//!"))
        .map(|p| p.strip_prefix(root()).unwrap_or(p).display().to_string())
        .collect();
    assert!(bad.is_empty(), "files without a `//!` first line: {bad:?}");
}

/// The modules of a crate (`plan::make`) with the source of each, tests left out.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        if parts.first().map(String::as_str) == Some("bin") {
            continue;
        }
        let text = read(&f);
        // Code only: tests and comment lines (doc links name modules without using them).
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        out.insert(parts.join("::"), code);
    }
    out
}

/// `a -> b` when module `a` names `crate::b...` (or a sibling through `super::`); a module and
/// its own submodules are one unit.
fn module_edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeSet<&String> = mods.keys().collect();
    let resolve = |path: &[&str]| -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|i| path[..i].join("::"))
            .find(|c| names.contains(c))
    };
    let related = |a: &str, b: &str| {
        a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
    };
    let mut edges = BTreeMap::new();
    for (m, code) in mods {
        let mut to = BTreeSet::new();
        let parent: Vec<&str> = m.split("::").collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        for (prefix, base) in [("crate::", &[][..]), ("super::", parent)] {
            for (i, _) in code.match_indices(prefix) {
                if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &code[i + prefix.len()..];
                let path: Vec<&str> = rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or("")
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .collect();
                let full: Vec<&str> = base.iter().copied().chain(path).collect();
                if let Some(t) = resolve(&full) {
                    if !related(m, &t) && !m.is_empty() && !t.is_empty() {
                        to.insert(t);
                    }
                }
            }
        }
        edges.insert(m.clone(), to);
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.edges[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[v].min(t.low[w]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.low[v].min(t.index[w]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn modules_point_one_way_in_every_crate() {
    for (dir, name, _) in CRATES {
        let mods = modules(&root().join(dir).join("src"));
        let found = cycles(&module_edges(&mods));
        assert!(found.is_empty(), "{name}: module cycles {found:?}");
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mods: BTreeMap<String, String> = [
        ("a", "use crate::b::X;"),
        ("b", "fn f() { crate::a::g() }"),
        ("c", "use super::a;"),
        ("c::d", "use super::super::b;"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let edges = module_edges(&mods);
    assert_eq!(cycles(&edges), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(edges["c"].contains("a"));
}

/// The `[dependencies]` of a manifest (names as written, optional ones included).
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = read(manifest);
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == "[dependencies]";
            continue;
        }
        if inside && !l.is_empty() && !l.starts_with('#') {
            let name = l
                .split(|c: char| c == '=' || c == '.' || c.is_whitespace())
                .next()
                .unwrap_or("");
            out.insert(name.to_string());
        }
    }
    out
}

/// ARCHITECTURE.md's section of a crate: from its `## ` heading naming the package to the next.
fn architecture_section(arch: &str, package: &str) -> String {
    let heading = if package == "prov" {
        "## Root package".to_string()
    } else {
        format!("— {package}")
    };
    let start = arch
        .lines()
        .position(|l| l.starts_with("## ") && l.contains(&heading))
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section for {package}"));
    arch.lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with("## "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text after `**label**:` up to the next `**` label or blank line.
fn claim<'a>(section: &'a str, label: &str) -> Option<&'a str> {
    let i = section.find(&format!("**{label}**:"))?;
    let rest = &section[i + label.len() + 5..];
    let end = [rest.find("**"), rest.find("\n\n")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn architecture_depends_on_lines_match_the_manifests() {
    let arch = read(&root().join("ARCHITECTURE.md"));
    let mut problems = Vec::new();
    for (dir, package, _) in CRATES {
        let section = architecture_section(&arch, package);
        let deps = dependencies(&root().join(dir).join("Cargo.toml"));
        let Some(claimed) = claim(&section, "Depends on") else {
            problems.push(format!("{package}: no **Depends on**: line"));
            continue;
        };
        let said = names_in(claimed);
        for d in &deps {
            if !said.contains(d) {
                problems.push(format!(
                    "{package} depends on {d}; ARCHITECTURE.md does not say so"
                ));
            }
        }
        for w in said.iter().filter(|w| w.starts_with("prov-")) {
            if !deps.contains(w) {
                problems.push(format!(
                    "ARCHITECTURE.md says {package} depends on {w}; Cargo.toml does not"
                ));
            }
        }
        if let Some(not) = claim(&section, "Must not depend on") {
            for w in names_in(not).iter().filter(|w| deps.contains(*w)) {
                problems.push(format!("{package} must not depend on {w}, and does"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_dependency_is_used() {
    let mut unused = Vec::new();
    for (dir, package, _) in CRATES {
        let mut files = Vec::new();
        rust_files(&root().join(dir).join("src"), &mut files);
        let code: String = files.iter().map(|f| read(f)).collect();
        for d in dependencies(&root().join(dir).join("Cargo.toml")) {
            let ident = d.replace('-', "_");
            let used = code.match_indices(&ident).any(|(i, _)| {
                let before = code[..i].chars().next_back();
                let after = code[i + ident.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if !used {
                unused.push(format!("{package}: {d}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "dependencies never named in src/: {unused:?}"
    );
}

#[test]
fn libraries_deny_printing() {
    for (dir, package, library) in CRATES {
        if !library {
            continue;
        }
        let lib = read(&root().join(dir).join("src/lib.rs"));
        assert!(
            lib.contains("#![deny(clippy::print_stdout, clippy::print_stderr)]"),
            "{package}: src/lib.rs must deny printing (the CLI renders everything)"
        );
        let mut files = Vec::new();
        rust_files(&root().join(dir).join("src"), &mut files);
        for f in files {
            let code = read(&f);
            let code = code.split("#[cfg(test)]").next().unwrap_or("");
            for bad in ["std::io::stdout()", "std::io::stderr()"] {
                assert!(
                    !code.contains(bad),
                    "{}: a library writes to {bad}",
                    f.display()
                );
            }
        }
    }
}

/// ARCHITECTURE.md: no function over 100 lines in any crate. `.ci/run`'s clippy `-D warnings`
/// enforces it where the lint is on; this checks it is on everywhere (the binary too).
#[test]
fn every_crate_limits_function_length() {
    let lint = "#![warn(clippy::too_many_lines)]";
    let mut roots: Vec<PathBuf> = CRATES
        .iter()
        .map(|(dir, _, _)| root().join(dir).join("src/lib.rs"))
        .collect();
    roots.push(root().join("src/main.rs"));
    for f in roots {
        assert!(
            read(&f).contains(lint),
            "{}: must have {lint} (ARCHITECTURE.md, bird's-eye view)",
            f.display()
        );
    }
}
