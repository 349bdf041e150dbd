//! A reader for `main.ncl` files that are plain data, so that Nickel need not evaluate them.
//!
//! A generated or hand-written workspace is often nothing but a record literal: records with
//! plain field names, arrays, strings without interpolation, numbers, booleans, `null` and enum
//! tags. nickel-lang-core 0.19 spends ~260 instructions per byte parsing such a file and as much
//! again evaluating it (at 10,000 servers, a 3.6 MB file: most of a cold plan;
//! docs/performance.md); read here it takes tens of milliseconds. [`read`] accepts only that
//! subset of Nickel's syntax, where Nickel's meaning is plain, and returns `None` for anything
//! else — a `let`, an import, an annotation, an interpolation, an escape it does not know, a
//! field defined twice other than as two records, a syntax error — so Nickel evaluates the file
//! as before and errors stay Nickel's own diagnostics. A value read here goes through the same
//! Rust check of the `Workspace` contract ([`super::check`]) as a value Nickel evaluated without
//! the contract; whatever that check does not accept is left to Nickel too. The parity test in
//! `engine/tests/engine/config_eval.rs` holds the three ways together.
//!
//! What the subset means, as Nickel 0.19 lexes and evaluates it: whitespace is spaces, tabs and
//! line ends (`\r` only before `\n`), `#` comments run to the end of the line; a field name is an
//! identifier (`_*[a-zA-Z][_a-zA-Z0-9-']*`, not a keyword) or a `"..."` string, optionally a
//! dotted path (`servers.web.plan = ..`, a record per segment); a field defined twice merges
//! when both definitions are records (Nickel's piecewise definitions) and is left to Nickel
//! otherwise; strings take the escapes `\" \\ \% \' \n \r \t`, `%` not followed by `{`, and
//! `\r\n` read as `\n`; numbers are decimal literals (`[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)?`,
//! optionally after `-`), exact rationals in Nickel, exported as integers when integral and as
//! the nearest `f64` otherwise.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// A source position: 1-based line and column (in characters, as Nickel counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A value of the plain-data subset.
#[derive(Debug)]
pub(crate) enum Data {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    /// An enum tag (`'ingress`): exports as a string, but the contract tells it apart.
    Enum(String),
    /// Elements with the positions of their first character.
    Array(Vec<(Pos, Data)>),
    /// Fields in the order first defined, each with the position of its name.
    Record(Vec<(String, Pos, Data)>),
}

/// Nesting beyond this is left to Nickel (and its depth limits and diagnostics).
pub(crate) const MAX_DEPTH: usize = 200;

/// Reads `text` as plain data; `None` when it is anything else (see the module documentation).
pub(crate) fn read(text: &str) -> Option<Data> {
    let mut r = Reader {
        s: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        counted: Cell::new((0, 0)),
        depth: 0,
    };
    r.skip_space()?;
    let (_, v) = r.value()?;
    r.skip_space()?;
    (r.i == r.s.len()).then_some(v)
}

impl Data {
    /// The value as Nickel exports it to JSON (record fields sorted by name).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Data::Null => Value::Null,
            Data::Bool(b) => Value::Bool(*b),
            Data::Num(n) => Value::Number(n.clone()),
            Data::Str(s) | Data::Enum(s) => Value::String(s.clone()),
            Data::Array(items) => Value::Array(items.iter().map(|(_, d)| d.to_json()).collect()),
            Data::Record(fields) => {
                let mut sorted: Vec<&(String, Pos, Data)> = fields.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let mut m = Map::with_capacity(sorted.len());
                for (k, _, d) in sorted {
                    m.insert(k.clone(), d.to_json());
                }
                Value::Object(m)
            }
        }
    }

    /// The record's field `name`.
    pub(crate) fn field(&self, name: &str) -> Option<&Data> {
        match self {
            Data::Record(fields) => fields.iter().find(|(k, _, _)| k == name).map(|(_, _, d)| d),
            _ => None,
        }
    }
}

/// Where the workspace `root` declares providers, servers, their taskservs, clusters, their
/// components and outputs, as [`super::positions::collect`] finds them on a Nickel value: the
/// name of each (a component: its record's first character), as `file:line:column`.
pub(crate) fn positions(root: &Data, file: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |path: String, pos: Pos| {
        out.insert(path, format!("{file}:{}:{}", pos.line, pos.column));
    };
    for section in ["providers", "servers", "clusters", "outputs"] {
        let Some(Data::Record(entries)) = root.field(section) else {
            continue;
        };
        for (name, pos, entry) in entries {
            put(format!("{section}.{name}"), *pos);
            match (section, entry.field("taskservs"), entry.field("components")) {
                ("servers", Some(Data::Record(taskservs)), _) => {
                    for (t, tpos, _) in taskservs {
                        put(format!("servers.{name}.taskservs.{t}"), *tpos);
                    }
                }
                ("clusters", _, Some(Data::Array(components))) => {
                    for (cpos, c) in components {
                        if let (Data::Record(_), Some(Data::Str(cname))) = (c, c.field("name")) {
                            put(format!("clusters.{name}.components.{cname}"), *cpos);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Nickel's keywords (nickel-lang-parser's `KEYWORDS`) and the other words its lexer makes
/// tokens of: not plain field names.
const KEYWORDS: &[&str] = &[
    "Dyn",
    "Number",
    "Bool",
    "String",
    "Array",
    "if",
    "then",
    "else",
    "forall",
    "in",
    "let",
    "rec",
    "match",
    "null",
    "true",
    "false",
    "fun",
    "import",
    "merge",
    "default",
    "doc",
    "optional",
    "priority",
    "force",
    "not_exported",
    "or",
    "as",
    "include",
];

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    /// Byte offset of the current line's start: columns count characters from it.
    line_start: usize,
    /// The last column counted on this line: (byte offset, characters before it). Positions
    /// are asked at increasing offsets, so each line's bytes are counted once (a generated
    /// workspace puts a server with its two dozen fields on one line).
    counted: Cell<(usize, usize)>,
    depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn pos(&self) -> Pos {
        // Characters, not bytes: count the bytes that start a UTF-8 character.
        let (from, before) = match self.counted.get() {
            (at, n) if at >= self.line_start && at <= self.i => (at, n),
            _ => (self.line_start, 0),
        };
        let column = before
            + self.s[from..self.i]
                .iter()
                .filter(|&&b| (b & 0xC0) != 0x80)
                .count();
        self.counted.set((self.i, column));
        Pos {
            line: self.line,
            column: u32::try_from(column + 1).ok().unwrap_or(u32::MAX),
        }
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.i;
    }

    /// Whitespace and comments; `None` on a lone `\r` (Nickel refuses it).
    fn skip_space(&mut self) -> Option<()> {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' => self.i += 1,
                b'\n' => {
                    self.i += 1;
                    self.newline();
                }
                b'\r' => {
                    if self.s.get(self.i + 1) != Some(&b'\n') {
                        return None;
                    }
                    self.i += 2;
                    self.newline();
                }
                b'#' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.i += 1;
                    }
                }
                _ => return Some(()),
            }
        }
        Some(())
    }

    fn value(&mut self) -> Option<(Pos, Data)> {
        let pos = self.pos();
        let v = match self.peek()? {
            b'{' => self.nested(Self::record)?,
            b'[' => self.nested(Self::array)?,
            b'"' => Data::Str(self.string()?),
            b'\'' => {
                self.i += 1;
                Data::Enum(self.identifier()?.to_string())
            }
            b'-' | b'0'..=b'9' => Data::Num(self.number()?),
            _ => match self.identifier()? {
                "true" => Data::Bool(true),
                "false" => Data::Bool(false),
                "null" => Data::Null,
                _ => return None,
            },
        };
        // A value ends at a separator, a closing bracket, a comment, a space or the end.
        match self.peek() {
            None | Some(b',' | b'}' | b']' | b'#' | b' ' | b'\t' | b'\n' | b'\r') => Some((pos, v)),
            _ => None,
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Option<Data>) -> Option<Data> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn array(&mut self) -> Option<Data> {
        self.i += 1; // [
        let mut items = Vec::new();
        loop {
            self.skip_space()?;
            if self.peek()? == b']' {
                self.i += 1;
                return Some(Data::Array(items));
            }
            items.push(self.value()?);
            self.skip_space()?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {}
                _ => return None,
            }
        }
    }

    fn record(&mut self) -> Option<Data> {
        self.i += 1; // {
        let mut fields: Vec<(String, Pos, Data)> = Vec::new();
        loop {
            self.skip_space()?;
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(Data::Record(merge_duplicates(fields)?));
            }
            // A field path: name (. name)* = value
            let mut path = vec![self.field_name()?];
            loop {
                self.skip_space()?;
                match self.peek()? {
                    b'.' => {
                        self.i += 1;
                        self.skip_space()?;
                        path.push(self.field_name()?);
                    }
                    b'=' => break,
                    _ => return None,
                }
            }
            self.i += 1; // =
            match self.peek()? {
                // `==` and `=>` are no definitions.
                b'=' | b'>' => return None,
                _ => {}
            }
            self.skip_space()?;
            let (_, mut v) = self.value()?;
            let (name, pos) = path.pop().expect("a path has a name");
            // `a.b.c = v` is `a = { b = { c = v } }`.
            let mut name_pos = (name, pos);
            while let Some((outer, outer_pos)) = path.pop() {
                v = Data::Record(vec![(name_pos.0, name_pos.1, v)]);
                name_pos = (outer, outer_pos);
            }
            fields.push((name_pos.0, name_pos.1, v));
            self.skip_space()?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }

    /// An identifier or a string (without interpolation), and where it starts.
    fn field_name(&mut self) -> Option<(String, Pos)> {
        let pos = self.pos();
        let name = if self.peek()? == b'"' {
            self.string()?
        } else {
            let id = self.identifier()?;
            if KEYWORDS.contains(&id) {
                return None;
            }
            id.to_string()
        };
        Some((name, pos))
    }

    /// `_*[a-zA-Z][_a-zA-Z0-9-']*`
    fn identifier(&mut self) -> Option<&str> {
        let start = self.i;
        while self.peek() == Some(b'_') {
            self.i += 1;
        }
        if !self.peek()?.is_ascii_alphabetic() {
            return None;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'\''))
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()
    }

    /// A `"..."` string without interpolation.
    fn string(&mut self) -> Option<String> {
        self.i += 1; // "
        let mut out = Vec::new();
        loop {
            // The plain bytes up to the next one that means something, copied at once.
            let plain = self.s[self.i..]
                .iter()
                .position(|b| matches!(b, b'"' | b'\\' | b'%' | b'\r' | b'\n'))
                .unwrap_or(self.s.len() - self.i);
            out.extend_from_slice(&self.s[self.i..self.i + plain]);
            self.i += plain;
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    out.push(match self.peek()? {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'%' => b'%',
                        b'\'' => b'\'',
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        _ => return None,
                    });
                    self.i += 1;
                }
                b'%' if self.peek() == Some(b'{') => return None,
                b'\r' => {
                    if self.peek() != Some(b'\n') {
                        return None;
                    }
                    self.i += 1;
                    out.push(b'\n');
                    self.newline();
                }
                b'\n' => {
                    out.push(b'\n');
                    self.newline();
                }
                b => out.push(b),
            }
        }
    }

    /// `-?[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)?` as Nickel exports it.
    fn number(&mut self) -> Option<Number> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        let mut mantissa: Vec<u8> = Vec::new();
        let mut fraction_digits: i64 = 0;
        let mut seen_point = false;
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' => {
                    mantissa.push(b - b'0');
                    if seen_point {
                        fraction_digits += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            self.i += 1;
        }
        // `5.` is no Nickel number, `.5` is; at least one digit after a point.
        if mantissa.is_empty() || (seen_point && fraction_digits == 0) {
            return None;
        }
        let mut exponent: i64 = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let sign = match self.peek()? {
                b'-' => {
                    self.i += 1;
                    -1
                }
                b'+' => {
                    self.i += 1;
                    1
                }
                _ => 1,
            };
            let from = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[from..self.i]).ok()?;
            if digits.is_empty() || digits.len() > 4 {
                return None;
            }
            exponent = sign * digits.parse::<i64>().ok()?;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        exact(negative, &mantissa, exponent - fraction_digits).or_else(|| {
            // Not an integer (or too large for one): the nearest f64, as Nickel rounds.
            let f: f64 = text.parse().ok()?;
            Number::from_f64(f).filter(|_| f.is_finite())
        })
    }
}

/// `±mantissa × 10^scale` as a JSON integer when it is one that fits (`i64` below zero, `u64`
/// otherwise, as Nickel's export); `None` otherwise.
fn exact(negative: bool, mantissa: &[u8], scale: i64) -> Option<Number> {
    let mut digits: Vec<u8> = mantissa.to_vec();
    let mut scale = scale;
    while scale < 0 {
        // Integral only if the digits dropped are zeros.
        if digits.pop()? != 0 {
            return None;
        }
        scale += 1;
    }
    let mut n: u128 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u128::from(d))?;
    }
    for _ in 0..scale {
        n = n.checked_mul(10)?;
    }
    if negative && n != 0 {
        let v = i64::try_from(n)
            .ok()
            .map(|v| -v)
            .or_else(|| (n == 1u128 << 63).then_some(i64::MIN))?;
        Some(Number::from(v))
    } else {
        Some(Number::from(u64::try_from(n).ok()?))
    }
}

/// `fields` with the fields defined more than once merged ([`define`]); most records have
/// none, and a workspace's `servers` has thousands of fields, so they are looked for first.
fn merge_duplicates(fields: Vec<(String, Pos, Data)>) -> Option<Vec<(String, Pos, Data)>> {
    let unique = if fields.len() <= 8 {
        fields
            .iter()
            .enumerate()
            .all(|(i, (k, _, _))| fields[..i].iter().all(|(o, _, _)| o != k))
    } else {
        let mut names = std::collections::HashSet::with_capacity(fields.len());
        fields.iter().all(|(k, _, _)| names.insert(k.as_str()))
    };
    if unique {
        return Some(fields);
    }
    let mut merged = Vec::with_capacity(fields.len());
    for (k, p, d) in fields {
        define(&mut merged, k, p, d)?;
    }
    Some(merged)
}

/// Adds the field `name` to `fields`: a second definition of a record merges into the first
/// (Nickel's piecewise definitions); any other second definition is left to Nickel.
fn define(fields: &mut Vec<(String, Pos, Data)>, name: String, pos: Pos, v: Data) -> Option<()> {
    let Some(slot) = fields.iter_mut().find(|(k, _, _)| *k == name) else {
        fields.push((name, pos, v));
        return Some(());
    };
    let (Data::Record(old), Data::Record(new)) = (&mut slot.2, v) else {
        return None;
    };
    for (k, p, d) in new {
        define(old, k, p, d)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Option<Value> {
        read(text).map(|d| d.to_json())
    }

    #[test]
    fn plain_data_reads_as_nickel_exports_it() {
        assert_eq!(
            json("# c\n{ b = [1, -2, 0.5, 1e3, 2.50, 0.5e1, true, null, 'x], a.\"q r\".c = \"s\\n%\" , }"),
            Some(serde_json::json!({
                "a": { "q r": { "c": "s\n%" } },
                "b": [1, -2, 0.5, 1000, 2.5, 5, true, null, "x"],
            }))
        );
        assert_eq!(
            json("{ a.b = 1, a.c = 2, a = { d = 3 } }"),
            Some(serde_json::json!({ "a": { "b": 1, "c": 2, "d": 3 } }))
        );
        assert_eq!(
            json("{\r\n  web-01 = {},\r\n}"),
            Some(serde_json::json!({ "web-01": {} }))
        );
    }

    #[test]
    fn anything_else_is_left_to_nickel() {
        for text in [
            "let x = 1 in { a = x }",
            "{ a = 1, a = 1 }",
            "{ a = \"%{b}\" }",
            "{ a | String = \"x\" }",
            "{ a = 1 + 1 }",
            "{ a = b }",
            "{ a = import \"x.ncl\" }",
            "{ a = m%\"x\"% }",
            "{ a = \"\\u{41}\" }",
            "{ a = 5. }",
            "{ a = 1 } & { b = 2 }",
            "{ if = 1 }",
            "{ a = 1 ",
            "{ a = 1\r}",
            "{ a == 1 }",
            "{ a = 'm%\"x\"% }",
            "{ a = 0x10 }",
            "{ a = .5 }",
            "{ a = { b = 1 } } | { _ | Dyn }",
        ] {
            assert!(read(text).is_none(), "{text}");
        }
    }

    #[test]
    fn positions_count_characters() {
        let d = read("{\n  \"é\" = { x = 1 }, b = [ {} ],\n}").unwrap();
        let Data::Record(f) = &d else { panic!() };
        assert_eq!(f[0].1, Pos { line: 2, column: 3 });
        assert_eq!(
            f[1].1,
            Pos {
                line: 2,
                column: 20
            }
        );
        let Data::Array(items) = &f[1].2 else {
            panic!()
        };
        assert_eq!(
            items[0].0,
            Pos {
                line: 2,
                column: 26
            }
        );
        // Counted afresh on the line a string's line end starts.
        let d = read("{\n  \"é\" = \"ü\né\", c = 1, d = \"ö\", e = 2,\n}").unwrap();
        let Data::Record(f) = &d else { panic!() };
        let at: Vec<(u32, u32)> = f.iter().map(|(_, p, _)| (p.line, p.column)).collect();
        assert_eq!(at, [(2, 3), (3, 5), (3, 12), (3, 21)]);
    }
}
