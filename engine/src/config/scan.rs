//! Cheap lexical pre-scan of a workspace's Nickel sources before Nickel sees them: follows
//! `import "..."` string literals, bounds the total source size and the bracket nesting depth.
//!
//! Nickel's parser and typechecker recurse on the nesting of the input; input nested deeply
//! enough overflows the evaluation thread's stack, which aborts the whole process (it cannot be
//! caught). This scan rejects such input with [`ConfigError::TooDeep`] first.
//!
//! The scan is lexical, not a parser: it skips `#` comments, `"..."` strings (with escapes) and
//! multiline `m%"..."%` strings (and symbolic strings `tag-s%"..."%`), and it follows string
//! interpolations `%{ ... }` back into code. Brackets `{`, `[`, `(` (so `[|` too) open a level,
//! `}`, `]`, `)` close one. Nickel also nests without brackets: `1 + 1 + ...` and `let ... in
//! let ... in ...` chains are as deep as they are long. So binary operators and the keywords
//! `let`, `if` and `fun` since the last `,` or `;` of the current bracket level count as extra
//! levels too. Still unmeasured: long chains of function application (`f 1 2 3 ...`) and of
//! field access (`a.b.c...`); the large evaluation stack is the only guard there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ConfigError, EvalOptions};

/// What the scan found: every source file reachable from `main.ncl` (in discovery order, main
/// first).
#[derive(Debug)]
pub(crate) struct ScanResult {
    pub files: Vec<PathBuf>,
    /// Imports whose target the scan cannot know (see [`FoundImport::opaque`]), and imports
    /// that resolve to no file: (importing file, import). Nickel resolves or refuses them.
    pub unresolved: Vec<(PathBuf, FoundImport)>,
    /// Import candidates looked for and not found (before the one found, or all of them): a
    /// file appearing there would change what an import resolves to.
    pub misses: Vec<PathBuf>,
    /// Whether the workspace's own sources (not prov's library) may read fields of their own
    /// records: a name used as a variable is also defined as a record field somewhere in them,
    /// or `include` is used. Then the `Workspace` contract's defaults, which Nickel merges into
    /// those records, may change what they compute, and the contract is applied by Nickel
    /// (`eval::Job::rust_check`). Also `true` when they use `not_exported`. Lexical and
    /// conservative: `true` when in doubt.
    pub reads_fields: bool,
}

/// Names of a source, sorted by use ([`scan_workspace`]'s `reads_fields`).
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// Record field names defined (and any name after a `.`).
    fields: std::collections::HashSet<String>,
    /// Every other identifier that is not a keyword, a `let` binder or an enum tag.
    vars: std::collections::HashSet<String>,
    /// `include` or `not_exported` is used.
    opaque: bool,
}

impl Names {
    pub(crate) fn may_read_fields(&self) -> bool {
        self.opaque || self.vars.iter().any(|v| self.fields.contains(v))
    }
}

/// An import found in a file: the literal path and the bracket depth of the import site.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FoundImport {
    pub path: String,
    pub depth: usize,
    /// 1-based line of the `import` keyword.
    pub line: usize,
    /// Not a plain `"..."` literal this scan reads exactly (a multiline string, an escape, a
    /// package name): its target is not known here. `path` holds what follows `import`.
    pub opaque: bool,
}

/// The result of scanning one source text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TextScan {
    Ok {
        imports: Vec<FoundImport>,
    },
    /// The depth went over the limit at this 1-based line and column (in characters).
    TooDeep {
        line: usize,
        column: usize,
        depth: usize,
    },
}

/// Scan `roots` (`main.ncl` first) and everything they import. Imports resolve like Nickel
/// does: relative to the importing file's directory first, then in each of `import_dirs`.
/// Imports that resolve to no readable file are skipped (Nickel reports them properly). A file
/// reached at a greater depth than before is scanned again, so the depth limit holds across
/// imports. Files below `trusted_dir` (prov's own library) count toward the size but their
/// depth is not measured.
pub(crate) fn scan_workspace(
    roots: &[&Path],
    import_dirs: &[PathBuf],
    trusted_dir: &Path,
    opts: &EvalOptions,
) -> Result<ScanResult, ConfigError> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut misses: Vec<PathBuf> = Vec::new();
    let mut unresolved: Vec<(PathBuf, FoundImport)> = Vec::new();
    // canonical path -> greatest depth of an import site of the file scanned so far
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    let mut total_bytes: u64 = 0;
    let mut names = Names::default();
    // A stack; pushed in reverse so that files are visited in source order.
    let mut work: Vec<(PathBuf, usize)> =
        roots.iter().rev().map(|r| (r.to_path_buf(), 0)).collect();

    while let Some((path, base)) = work.pop() {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        let trusted = path.starts_with(trusted_dir);
        match seen.get_mut(&canonical) {
            Some(best) if *best >= base || trusted => continue,
            Some(best) => *best = base,
            None => {
                let len = std::fs::metadata(&path)
                    .map_err(|source| ConfigError::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                total_bytes = total_bytes.saturating_add(len);
                if total_bytes > opts.max_bytes {
                    return Err(ConfigError::TooLarge {
                        bytes: total_bytes,
                        limit: opts.max_bytes,
                    });
                }
                seen.insert(canonical, base);
                files.push(path.clone());
            }
        }

        if !measures_depth(&path) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let limit = if trusted {
            usize::MAX
        } else {
            opts.max_depth.saturating_sub(base)
        };
        let scanned = if trusted {
            scan_text(&text, limit)
        } else {
            lex(&text, limit, None, Some(&mut names))
        };
        match scanned {
            TextScan::TooDeep {
                line,
                column,
                depth,
            } => {
                return Err(ConfigError::TooDeep {
                    file: path,
                    line,
                    column,
                    depth: base + depth,
                    limit: opts.max_depth,
                })
            }
            TextScan::Ok { imports } => {
                let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
                for import in imports.into_iter().rev() {
                    if import.opaque {
                        unresolved.push((path.clone(), import));
                        continue;
                    }
                    let candidates = std::iter::once(&parent).chain(import_dirs.iter());
                    match candidates.map(|dir| dir.join(&import.path)).find(|p| {
                        let found = p.is_file();
                        if !found {
                            misses.push(p.clone());
                        }
                        found
                    }) {
                        Some(target) => work.push((target, base + import.depth)),
                        None => unresolved.push((path.clone(), import)),
                    }
                }
            }
        }
    }

    Ok(ScanResult {
        files,
        unresolved,
        misses,
        reads_fields: names.may_read_fields(),
    })
}

/// Whether a file's bracket nesting is measured: Nickel and JSON sources (by extension, like
/// Nickel picks the input format); YAML, TOML and text imports only count toward the size.
fn measures_depth(path: &Path) -> bool {
    !matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "toml" | "txt")
    )
}

/// Lexer modes. Code frames remember the bracket depth at which an interpolation started, so the
/// `}` closing the interpolation returns to the string.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Top-level code, or the code of an interpolation opened at `depth` (its closing `}` brings
    /// the depth back to `depth`).
    Code { interpolation_depth: Option<usize> },
    /// A `"..."` string.
    Str,
    /// A multiline string `m%%"..."%%` with `percents` percent signs.
    Multi { percents: usize },
}

/// Scan one source text: find `import "..."` literals and check the bracket depth against
/// `limit`.
pub(crate) fn scan_text(text: &str, limit: usize) -> TextScan {
    lex(text, limit, None, None)
}

/// For each character of `text`: is it code (not inside a string or a comment)? The delimiters
/// of a string (its quotes) count as code, its contents do not.
pub(crate) fn code_mask(text: &str) -> Vec<bool> {
    let mut mask = Vec::new();
    lex(text, usize::MAX, Some(&mut mask), None);
    mask
}

/// What came last in code, for sorting identifiers into [`Names`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// `{`, or `,` directly inside `{ }`: a record field (or a pattern, a match arm) may start.
    FieldStart,
    Dot,
    /// `let` or `rec`: a binder follows.
    Let,
    Other,
}

// One pass of one state machine over the characters: split up, the states would have to be
// threaded through every piece.
#[allow(clippy::too_many_lines)]
fn lex(
    text: &str,
    limit: usize,
    mut mask: Option<&mut Vec<bool>>,
    mut names: Option<&mut Names>,
) -> TextScan {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut i = 0;
    let mut line = 1;
    let mut column = 1;
    let mut depth: usize = 0;
    let mut modes: Vec<Mode> = vec![Mode::Code {
        interpolation_depth: None,
    }];
    let mut imports = Vec::new();
    // Set after the keyword `import`; the next string literal is the imported path.
    let mut pending_import = false;
    // The line of the last `import` keyword.
    let mut import_line = 0;
    // The contents of the string being read, when it is an import path.
    let mut import_literal: Option<String> = None;
    // The import path being read has an escape (`\u{..}`...): not known exactly.
    let mut import_escaped = false;
    // For each open bracket or interpolation (index 0: the top level), the number of operators
    // and `let`/`if`/`fun` keywords since the last `,` or `;` at that level: nesting that the
    // parser builds without brackets (`1 + 1 + ...` is a left-leaning tree).
    let mut chains: Vec<usize> = vec![0];
    // For `names`: open brackets (`(` for an interpolation too), the last thing in code, and the
    // text of a quoted field name being read.
    let mut brackets: Vec<char> = Vec::new();
    let mut prev = Prev::Other;
    let mut field_literal: Option<String> = None;

    // Whether the characters being advanced over are code, for `mask`.
    let mut is_code: bool;
    // Return `TooDeep` at the current position if `$depth` is over the limit.
    macro_rules! check {
        ($depth:expr) => {
            let d = $depth;
            if d > limit {
                return TextScan::TooDeep {
                    line,
                    column,
                    depth: d,
                };
            }
        };
    }
    // One more operator or keyword in the current chain.
    macro_rules! chain_step {
        () => {
            let top = chains.last_mut().expect("the chain stack is never empty");
            *top += 1;
            check!(depth.saturating_add(*top));
        };
    }
    // Advance over `k` characters, tracking line and column.
    macro_rules! advance {
        ($k:expr) => {
            for _ in 0..$k {
                if i < n {
                    if let Some(mask) = mask.as_mut() {
                        mask.push(is_code);
                    }
                    if chars[i] == '\n' {
                        line += 1;
                        column = 1;
                    } else {
                        column += 1;
                    }
                    i += 1;
                }
            }
        };
    }

    while i < n {
        let c = chars[i];
        let mode = *modes.last().expect("the mode stack is never empty");
        is_code = matches!(mode, Mode::Code { .. });
        match mode {
            Mode::Code {
                interpolation_depth,
            } => match c {
                '#' => {
                    is_code = false;
                    while i < n && chars[i] != '\n' {
                        advance!(1);
                    }
                }
                '"' => {
                    if pending_import {
                        import_literal = Some(String::new());
                        pending_import = false;
                    }
                    if names.is_some() && prev == Prev::FieldStart {
                        field_literal = Some(String::new());
                    }
                    prev = Prev::Other;
                    modes.push(Mode::Str);
                    advance!(1);
                }
                // `import` followed by anything but a plain string: a multiline string, a
                // package name. Its target is unknown here.
                c if pending_import && !c.is_whitespace() => {
                    pending_import = false;
                    let what: String = chars[i..]
                        .iter()
                        .take_while(|c| !c.is_whitespace())
                        .take(40)
                        .collect();
                    imports.push(FoundImport {
                        path: what,
                        depth,
                        line: import_line,
                        opaque: true,
                    });
                }
                '%' if i > 0 && is_ident_char(chars[i - 1]) && starts_multiline(&chars, i) => {
                    pending_import = false;
                    let percents = count_percents(&chars, i);
                    modes.push(Mode::Multi { percents });
                    advance!(percents + 1);
                }
                '{' | '[' | '(' => {
                    pending_import = false;
                    brackets.push(c);
                    prev = if c == '{' {
                        Prev::FieldStart
                    } else {
                        Prev::Other
                    };
                    depth += 1;
                    chains.push(0);
                    check!(depth);
                    advance!(1);
                }
                '}' if interpolation_depth == Some(depth) => {
                    brackets.pop();
                    prev = Prev::Other;
                    modes.pop();
                    pop_chain(&mut chains);
                    advance!(1);
                }
                '}' | ']' | ')' => {
                    pending_import = false;
                    brackets.pop();
                    prev = Prev::Other;
                    depth = depth.saturating_sub(1);
                    pop_chain(&mut chains);
                    advance!(1);
                }
                ',' | ';' => {
                    pending_import = false;
                    prev = if c == ',' && brackets.last() == Some(&'{') {
                        Prev::FieldStart
                    } else {
                        Prev::Other
                    };
                    *chains.last_mut().expect("the chain stack is never empty") = 0;
                    advance!(1);
                }
                c if is_ident_start(c) && (i == 0 || !is_ident_char(chars[i - 1])) => {
                    let len = chars[i..].iter().take_while(|&&c| is_ident_char(c)).count();
                    let word: String = chars[i..i + len].iter().collect();
                    pending_import = word == "import";
                    if pending_import {
                        import_line = line;
                    }
                    if matches!(word.as_str(), "let" | "if" | "fun") {
                        chain_step!();
                    }
                    if let Some(names) = names.as_deref_mut() {
                        prev = sort_name(names, &word, prev, &chars, i, len);
                    }
                    // `m%"` and `tag-s%"` start strings: the `%` is left for the next round.
                    advance!(len);
                }
                c if c.is_whitespace() => advance!(1),
                _ => {
                    pending_import = false;
                    prev = if c == '.' && chars.get(i + 1) != Some(&'.') {
                        Prev::Dot
                    } else {
                        Prev::Other
                    };
                    let (len, counts) = operator(&chars[i..]);
                    if counts {
                        chain_step!();
                    }
                    advance!(len);
                }
            },
            Mode::Str => match c {
                '\\' => {
                    if import_literal.is_some() {
                        import_escaped = true;
                    }
                    if let (Some(lit), Some(&next)) = (import_literal.as_mut(), chars.get(i + 1)) {
                        lit.push(match next {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    }
                    advance!(2);
                }
                '"' => {
                    modes.pop();
                    if let (Some(name), Some(names)) = (field_literal.take(), names.as_deref_mut())
                    {
                        names.fields.insert(name);
                    }
                    if let Some(path) = import_literal.take() {
                        imports.push(FoundImport {
                            path,
                            depth,
                            line: import_line,
                            opaque: std::mem::take(&mut import_escaped),
                        });
                    }
                    advance!(1);
                }
                '%' if chars.get(i + 1) == Some(&'{') => {
                    // An interpolated import path is not a static import.
                    import_literal = None;
                    import_escaped = false;
                    modes.push(Mode::Code {
                        interpolation_depth: Some(depth),
                    });
                    chains.push(0);
                    advance!(2);
                }
                _ => {
                    if let Some(lit) = import_literal.as_mut() {
                        lit.push(c);
                    }
                    if let Some(lit) = field_literal.as_mut() {
                        lit.push(c);
                    }
                    advance!(1);
                }
            },
            Mode::Multi { percents } => {
                if c == '"' && (1..=percents).all(|k| chars.get(i + k) == Some(&'%')) {
                    modes.pop();
                    advance!(percents + 1);
                } else if c == '%'
                    && (0..percents).all(|k| chars.get(i + k) == Some(&'%'))
                    && chars.get(i + percents) == Some(&'{')
                {
                    brackets.push('(');
                    prev = Prev::Other;
                    modes.push(Mode::Code {
                        interpolation_depth: Some(depth),
                    });
                    chains.push(0);
                    advance!(percents + 1);
                } else {
                    advance!(1);
                }
            }
        }
    }
    TextScan::Ok { imports }
}

/// Nickel's keywords and type names: neither fields nor variables.
const KEYWORDS: &[&str] = &[
    "let",
    "rec",
    "in",
    "fun",
    "if",
    "then",
    "else",
    "match",
    "import",
    "true",
    "false",
    "null",
    "forall",
    "default",
    "force",
    "priority",
    "optional",
    "doc",
    "not_exported",
    "Dyn",
    "Number",
    "String",
    "Bool",
    "Array",
    "as",
];

/// Sorts the identifier `word` at `chars[at..at + len]` into `names`; returns what it was.
fn sort_name(
    names: &mut Names,
    word: &str,
    prev: Prev,
    chars: &[char],
    at: usize,
    len: usize,
) -> Prev {
    // `include x` reads `x` from outside the record; a `not_exported` field is gone from the
    // evaluated value, so the Rust check could not tell it from an absent one.
    if word == "include" || word == "not_exported" {
        names.opaque = true;
        return Prev::Other;
    }
    if matches!(word, "let" | "rec") {
        return Prev::Let;
    }
    if KEYWORDS.contains(&word) || (at > 0 && chars[at - 1] == '\'') {
        // A keyword, or an enum tag ('ingress).
        return Prev::Other;
    }
    match prev {
        Prev::Dot => {
            names.fields.insert(word.to_string());
        }
        Prev::Let => {}
        Prev::FieldStart if defines_field(chars, at + len) => {
            names.fields.insert(word.to_string());
        }
        _ => {
            names.vars.insert(word.to_string());
        }
    }
    Prev::Other
}

/// Whether a field path continuing at `chars[from..]` (`.b.c`, quoted segments too) ends in
/// `=` or `|` (not `==`, `=>`, `||`, `|>`): a field definition rather than an expression.
fn defines_field(chars: &[char], mut from: usize) -> bool {
    let skip_ws = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        from = skip_ws(from);
        match chars.get(from) {
            Some('.') => {
                from = skip_ws(from + 1);
                match chars.get(from) {
                    Some('"') => {
                        from += 1;
                        while from < chars.len() && chars[from] != '"' {
                            from += if chars[from] == '\\' { 2 } else { 1 };
                        }
                        from += 1;
                    }
                    Some(&c) if is_ident_start(c) => {
                        while from < chars.len() && is_ident_char(chars[from]) {
                            from += 1;
                        }
                    }
                    _ => return false,
                }
            }
            Some('=') => return !matches!(chars.get(from + 1), Some('=' | '>')),
            Some('|') => return !matches!(chars.get(from + 1), Some('|' | '>')),
            _ => return false,
        }
    }
}

fn pop_chain(chains: &mut Vec<usize>) {
    if chains.len() > 1 {
        chains.pop();
    }
}

/// The length of the token starting at `at[0]` (a character that is not a bracket, quote,
/// comment, separator, identifier or space), and whether it is a binary operator that nests.
fn operator(at: &[char]) -> (usize, bool) {
    match at {
        ['+', '+', ..]
        | ['&', '&', ..]
        | ['|', '|', ..]
        | ['=', '=', ..]
        | ['!', '=', ..]
        | ['<', '=', ..]
        | ['>', '=', ..]
        | ['|', '>', ..] => (2, true),
        ['=', '>', ..] | ['-', '>', ..] => (2, false),
        ['+' | '-' | '*' | '/' | '%' | '@' | '&' | '<' | '>', ..] => (1, true),
        _ => (1, false),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '\''
}

/// At a `%` following an identifier (`m`, or a symbolic string prefix such as `nix-s`): is this
/// `%...%"`, the start of a multiline string?
fn starts_multiline(chars: &[char], at: usize) -> bool {
    let percents = count_percents(chars, at);
    chars.get(at + percents) == Some(&'"')
}

fn count_percents(chars: &[char], at: usize) -> usize {
    chars[at..].iter().take_while(|&&c| c == '%').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(text: &str) -> Vec<(String, usize)> {
        match scan_text(text, 1000) {
            TextScan::Ok { imports } => imports.into_iter().map(|i| (i.path, i.depth)).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn finds_imports_with_depth() {
        let text = "let prov = import \"prov/schemas.ncl\" in\n{ a = { b = import \"x/y.ncl\" } }";
        assert_eq!(
            imports(text),
            vec![("prov/schemas.ncl".into(), 0), ("x/y.ncl".into(), 2)]
        );
    }

    #[test]
    fn skips_strings_and_comments() {
        let text =
            "# {{{{ import \"no.ncl\"\n{ a = \"{{[[(\\\"{\", b = m%\"\n {{{ \"\n\"%, c = 'tag }";
        assert_eq!(scan_text(text, 1), TextScan::Ok { imports: vec![] });
    }

    #[test]
    fn interpolation_returns_to_code() {
        let text = "{ a = \"x %{ std.string.from { b = 1 }.b } y { \" }";
        assert_eq!(
            scan_text(text, 1),
            TextScan::TooDeep {
                line: 1,
                column: 29,
                depth: 2
            }
        );
        assert_eq!(scan_text(text, 2), TextScan::Ok { imports: vec![] });
        let multi = "m%%\"a %{ not code } %%{ [1] } \"%% ++ \"\"";
        assert_eq!(
            scan_text(multi, 0),
            TextScan::TooDeep {
                line: 1,
                column: 25,
                depth: 1
            }
        );
    }

    #[test]
    fn operator_and_let_chains_count_as_nesting() {
        let ok = TextScan::Ok { imports: vec![] };
        assert_eq!(scan_text("{ x = 1 + 1 + 1 + 1 }", 4), ok);
        assert_eq!(
            scan_text("{ x = 1 + 1 + 1 + 1 }", 3),
            TextScan::TooDeep {
                line: 1,
                column: 17,
                depth: 4
            }
        );
        // A `,` starts a new chain.
        assert_eq!(
            scan_text("{ x = 1 + 1, y = [1] @ [2], z = \"a\" ++ \"b\" }", 2),
            ok
        );
        assert_eq!(
            scan_text("let a = 1 in let b = 2 in let c = 3 in a", 2),
            TextScan::TooDeep {
                line: 1,
                column: 27,
                depth: 3
            }
        );
        // Arrows, annotations and definitions do not nest.
        assert_eq!(
            scan_text(
                "{ f | Number -> Number = match { 'a => 1 }, g | String = \"\" }",
                2
            ),
            ok
        );
        // Identifiers may contain `-`: `web-01` is no subtraction.
        assert_eq!(scan_text("{ web-01-x-y-z = 1 }", 1), ok);
    }

    #[test]
    fn reports_line_and_column() {
        let text = "{\n  a = {\n    b = [| 'x |],\n  },\n}";
        assert_eq!(
            scan_text(text, 2),
            TextScan::TooDeep {
                line: 3,
                column: 9,
                depth: 3
            }
        );
    }

    fn reads_fields(text: &str) -> bool {
        let mut names = Names::default();
        lex(text, usize::MAX, None, Some(&mut names));
        names.may_read_fields()
    }

    #[test]
    fn names_used_as_variables_and_fields_are_told_apart() {
        for data in [
            "{ servers.web = { provider = \"sim\", tags.\"a b\" = \"x\" } }",
            "let prov = import \"prov/schemas.ncl\" in { servers = { w | prov.Server = { provider = \"sim\" } } }",
            "{ servers = std.record.from_array (std.array.map (fun i => { field = \"s%{std.to_string i}\", value = {} }) []) }",
            "{ a = 'provider, b = [x, y] } # provider",
            "let rec f = fun n => if n == 0 then 1 else n * f (n - 1) in { r = f 3 }",
            "{ \"q\" = m%\"text\"%, t = \"%{1}\" }",
        ] {
            assert!(!reads_fields(data), "{data}");
        }
        for reading in [
            "{ servers.web = { provider = \"sim\" }, outputs.x = servers.web }",
            "{ a = 1, b = a + 1 }",
            "{ a.b = 1, c = [0, a.b] }",
            "{ \"a\" = 1, b = \"%{std.to_string a}\" }",
            "{ a = 1, b = { a = 2, c = a } }",
            "{ plan = plan }",
            "let x = 1 in { include x }",
            "{ a | not_exported = 1 }",
            "{ a = 1, b | Number = a }",
        ] {
            assert!(reads_fields(reading), "{reading}");
        }
    }
}
