//! Source positions of the things a workspace declares (servers, taskservs, clusters, cluster
//! components, outputs, providers), for messages like "declared at main.ncl:12:5".
//!
//! The primary source is the evaluated Nickel value itself: every record field name is a
//! `LocIdent` that keeps the span of the identifier where the field was defined, and every
//! array element keeps the span of its expression. When that span is missing, or points outside
//! the workspace's own files (into the shipped library under `.prov/lib/`), a textual search in
//! `main.ncl` for the field definition (`name =`, `"name" =`, `name |`, `a.name.b =`, looked up
//! segment by segment, skipping strings and comments) is tried; if that finds nothing either,
//! the library position is kept (e.g. components of `prov.clusters.buildkit` really are
//! declared in the library).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nickel_lang_core::eval::value::{Container, NickelValue};
use nickel_lang_core::files::Files;
use nickel_lang_core::position::{PosTable, RawSpan, TermPos};
use nickel_lang_core::term::record::RecordData;

use super::scan;

/// A resolved position: file name as Nickel knows it, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    file: PathBuf,
    line: usize,
    column: usize,
}

struct Ctx<'a> {
    files: &'a Files,
    workspace_dir: &'a Path,
    main: &'a Path,
    /// `main.ncl`'s text and code mask, for the textual fallback (loaded lazily).
    main_text: Option<Option<(Vec<char>, Vec<bool>)>>,
}

/// Collect the positions of `providers.P`, `servers.S`, `servers.S.taskservs.T`, `clusters.C`,
/// `clusters.C.components.NAME` and `outputs.O` in the evaluated `value`.
pub(crate) fn collect(
    value: &NickelValue,
    files: &Files,
    pos_table: &PosTable,
    workspace_dir: &Path,
    main: &Path,
) -> BTreeMap<String, String> {
    let mut ctx = Ctx {
        files,
        workspace_dir,
        main,
        main_text: None,
    };
    let mut out = BTreeMap::new();
    let Some(root) = record(value) else {
        return out;
    };
    for section in ["providers", "servers", "clusters", "outputs"] {
        let Some(entries) = field(root, section).and_then(record) else {
            continue;
        };
        for (id, entry) in &entries.fields {
            let name = id.label();
            let path = [section, name];
            ctx.record_position(&mut out, &path, &id.pos);
            let Some(entry) = entry.value.as_ref().and_then(record) else {
                continue;
            };
            match section {
                "servers" => {
                    let Some(taskservs) = field(entry, "taskservs").and_then(record) else {
                        continue;
                    };
                    for (tid, _) in &taskservs.fields {
                        let path = [section, name, "taskservs", tid.label()];
                        ctx.record_position(&mut out, &path, &tid.pos);
                    }
                }
                "clusters" => {
                    let Some(components) = field(entry, "components") else {
                        continue;
                    };
                    let Some(Container::Alloc(components)) = components.as_array() else {
                        continue;
                    };
                    for component in components.array.iter() {
                        let Some(c) = record(component) else { continue };
                        let Some(cname) = field(c, "name").and_then(|v| v.as_string()) else {
                            continue;
                        };
                        // The element's own span (its record literal), else the span of its
                        // `name` field.
                        let mut pos = component.pos(pos_table);
                        if pos.as_opt_ref().is_none() {
                            if let Some((id, _)) =
                                c.fields.iter().find(|(k, _)| k.label() == "name")
                            {
                                pos = id.pos;
                            }
                        }
                        let path = [section, name, "components", cname.as_str()];
                        ctx.record_position(&mut out, &path, &pos);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn record(value: &NickelValue) -> Option<&RecordData> {
    match value.as_record()? {
        Container::Alloc(r) => Some(r),
        Container::Empty => None,
    }
}

fn field<'a>(r: &'a RecordData, name: &str) -> Option<&'a NickelValue> {
    r.fields
        .iter()
        .find(|(k, _)| k.label() == name)
        .and_then(|(_, f)| f.value.as_ref())
}

impl Ctx<'_> {
    /// Record the position of `path` (the map key is the dotted path) from `pos`, falling back
    /// to a textual search in `main.ncl` when `pos` is unknown or outside the workspace.
    fn record_position(
        &mut self,
        out: &mut BTreeMap<String, String>,
        path: &[&str],
        pos: &TermPos,
    ) {
        let from_value = pos.as_opt_ref().and_then(|span| self.locate(span));
        let in_workspace = from_value
            .as_ref()
            .is_some_and(|loc| !self.is_library(&loc.file));
        let loc = if in_workspace {
            from_value
        } else {
            self.search_main(path).or(from_value)
        };
        if let Some(loc) = loc {
            out.insert(
                path.join("."),
                format!(
                    "{}:{}:{}",
                    self.display_path(&loc.file).display(),
                    loc.line,
                    loc.column
                ),
            );
        }
    }

    fn locate(&self, span: &RawSpan) -> Option<Location> {
        if self.files.is_stdlib(span.src_id) {
            return None;
        }
        let loc = self.files.location(span.src_id, span.start).ok()?;
        Some(Location {
            file: PathBuf::from(self.files.name(span.src_id)),
            line: loc.line.to_usize() + 1,
            column: loc.column.to_usize() + 1,
        })
    }

    fn is_library(&self, file: &Path) -> bool {
        let lib = super::library::lib_dir(self.workspace_dir);
        file.starts_with(&lib) || !file.exists()
    }

    /// `file` relative to the workspace directory when it is inside it.
    fn display_path(&self, file: &Path) -> PathBuf {
        match file.strip_prefix(self.workspace_dir) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
            _ => file.to_path_buf(),
        }
    }

    fn search_main(&mut self, path: &[&str]) -> Option<Location> {
        let main = self.main;
        let loaded = self.main_text.get_or_insert_with(|| {
            let text = std::fs::read_to_string(main).ok()?;
            let mask = scan::code_mask(&text);
            Some((text.chars().collect(), mask))
        });
        let (chars, mask) = loaded.as_ref()?;
        let (line, column) = find_definition(chars, mask, path)?;
        Some(Location {
            file: main.to_path_buf(),
            line,
            column,
        })
    }
}

/// Find the definition of the field `path` in a Nickel source, segment by segment: each segment
/// is searched after the previous one's match as a field name (bare or quoted) followed by `=`,
/// `|`, `:` or `.`, outside strings and comments. Returns the 1-based line and column of the
/// last segment's match.
fn find_definition(chars: &[char], code: &[bool], path: &[&str]) -> Option<(usize, usize)> {
    let mut from = 0;
    let mut found = None;
    for segment in path {
        let at = find_field_name(chars, code, segment, from)?;
        found = Some(at);
        from = at + 1;
    }
    let at = found?;
    let line = 1 + chars[..at].iter().filter(|&&c| c == '\n').count();
    let line_start = chars[..at]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |p| p + 1);
    Some((line, at - line_start + 1))
}

fn find_field_name(chars: &[char], code: &[bool], name: &str, from: usize) -> Option<usize> {
    let name: Vec<char> = name.chars().collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '\'';
    let followed_by_definition = |end: usize| {
        let next = chars[end..].iter().find(|c| !c.is_whitespace());
        matches!(next, Some('=' | '|' | ':' | '.'))
    };
    (from..chars.len()).find(|&i| {
        if !code.get(i).copied().unwrap_or(false) {
            return false;
        }
        if chars[i] == '"' {
            let end = i + 1 + name.len();
            chars.get(i + 1..end) == Some(&name[..])
                && chars.get(end) == Some(&'"')
                && followed_by_definition(end + 1)
        } else {
            let end = i + name.len();
            (i == 0 || !is_ident(chars[i - 1]))
                && chars.get(i..end) == Some(&name[..])
                && chars.get(end).is_none_or(|&c| !is_ident(c))
                && followed_by_definition(end)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str, path: &[&str]) -> Option<(usize, usize)> {
        let chars: Vec<char> = text.chars().collect();
        find_definition(&chars, &scan::code_mask(text), path)
    }

    #[test]
    fn finds_nested_definitions() {
        let text = "# servers = {}\n{\n  outputs = { x = \"servers.web-01 = 1\" },\n  servers = {\n    \"web-01\" = { taskservs.containerd = {} },\n    web-02 = {},\n  },\n}";
        assert_eq!(find(text, &["servers", "web-01"]), Some((5, 5)));
        assert_eq!(find(text, &["servers", "web-02"]), Some((6, 5)));
        assert_eq!(
            find(text, &["servers", "web-01", "taskservs", "containerd"]),
            Some((5, 28))
        );
        assert_eq!(find(text, &["servers", "web-03"]), None);
    }

    #[test]
    fn dotted_paths() {
        let text = "{\n  servers.web-01.plan = \"x\",\n}";
        assert_eq!(find(text, &["servers", "web-01"]), Some((2, 11)));
    }
}
