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
        match scan_text(&text, limit) {
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
    lex(text, limit, None)
}

/// For each character of `text`: is it code (not inside a string or a comment)? The delimiters
/// of a string (its quotes) count as code, its contents do not.
pub(crate) fn code_mask(text: &str) -> Vec<bool> {
    let mut mask = Vec::new();
    lex(text, usize::MAX, Some(&mut mask));
    mask
}

fn lex(text: &str, limit: usize, mut mask: Option<&mut Vec<bool>>) -> TextScan {
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
                    depth += 1;
                    chains.push(0);
                    check!(depth);
                    advance!(1);
                }
                '}' if interpolation_depth == Some(depth) => {
                    modes.pop();
                    pop_chain(&mut chains);
                    advance!(1);
                }
                '}' | ']' | ')' => {
                    pending_import = false;
                    depth = depth.saturating_sub(1);
                    pop_chain(&mut chains);
                    advance!(1);
                }
                ',' | ';' => {
                    pending_import = false;
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
                    // `m%"` and `tag-s%"` start strings: the `%` is left for the next round.
                    advance!(len);
                }
                c if c.is_whitespace() => advance!(1),
                _ => {
                    pending_import = false;
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
}
