//! The one nesting limit for values ([`MAX_VALUE_DEPTH`]): measuring how deeply a JSON value
//! nests, naming where it goes too deep, and reading back documents that older prov versions
//! wrote deeper than serde_json's default recursion limit.
//!
//! Why a limit at all: serde_json, which reads every document prov writes (records in sled and
//! PostgreSQL, state dumps, plan files, the evaluation cache), refuses input nested more than 128
//! levels deep, while its writer has no limit. Before this limit existed a configuration could
//! produce a value that was stored and then made every command fail on the state. Now the
//! configuration is checked at load and every write is checked again, so everything stored reads
//! back; states written before are still read, by [`read_deep`].

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{ResourceRecord, StateError};

/// The deepest nesting of records (objects) and arrays that prov accepts in a value: a scalar
/// has depth 0, `{"a": 1}` and `[1]` have depth 1, `{"a": [1]}` depth 2.
///
/// Enforced twice with this one number:
/// - at load: the evaluated configuration, counted from its top (`{servers = {web = {taskservs
///   = {redis = {settings = {...}}}}}}` already uses 6 levels), is refused when deeper, with an
///   error naming the file, line and field;
/// - on write: a commit that would store a value (a record's `config`, `attributes` or
///   `outputs`, a pending operation's `spec`, one workspace output) nesting deeper is refused
///   naming the address, and nothing is written.
///
/// Why 100: serde_json reads 127 nested levels (its recursion limit is 128). The deepest
/// wrapping any prov document puts around a stored value is 7 levels (a record's attributes
/// inside an adoption inside a plan file: file, plan, resolutions, resolution, outcome, record,
/// attributes); a state dump needs 5 and a stored record 3. 100 + 7 leaves room for future format
/// changes, and no real configuration comes near it.
pub const MAX_VALUE_DEPTH: usize = 100;

/// How deep [`read_deep`] reads documents that an older prov wrote deeper than serde_json's
/// default limit. Older prov refused configuration source nested more than 1000 brackets, so no
/// value it stored from a written configuration is deeper than that plus the few levels a
/// document wraps around it. Values that deep are still cloned, compared, printed and dropped
/// within a 2 MiB thread stack (about 1 KiB per level in a debug build). Deeper documents are
/// reported as damaged.
pub const RECOVERY_DEPTH: usize = 1200;

/// The stack of the thread that decodes documents deeper than serde_json's default limit:
/// generous, as it is only reserved address space until used.
const DEEP_STACK_BYTES: usize = 256 << 20;

/// How deeply `v` nests objects and arrays: 0 for a scalar, 1 for `{}` or `[1, 2]`. Walks with
/// an explicit stack, so any depth is measured without recursion.
pub fn value_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                deepest = deepest.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(m) => {
                deepest = deepest.max(d + 1);
                stack.extend(m.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Where `v` first nests deeper than `limit`: the path (from `v`'s top, keys joined by `.`,
/// array elements as `[i]`, long paths shortened in the middle) to the first object or array
/// at level `limit + 1`, and the depth of the whole value. `None` when `v` is within the limit.
pub fn find_too_deep(v: &Value, limit: usize) -> Option<TooDeep> {
    enum Kids<'a> {
        Obj(serde_json::map::Iter<'a>),
        Arr(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
    }
    fn kids(v: &Value) -> Option<Kids<'_>> {
        match v {
            Value::Object(m) => Some(Kids::Obj(m.iter())),
            Value::Array(a) => Some(Kids::Arr(a.iter().enumerate())),
            _ => None,
        }
    }
    let top = kids(v)?;
    let found = |segments: Vec<Segment<'_>>| {
        Some(TooDeep {
            path: format_path(&segments),
            segments: segments
                .iter()
                .map(|s| match s {
                    Segment::Key(k) => PathSegment::Key(k.to_string()),
                    Segment::Index(i) => PathSegment::Index(*i),
                })
                .collect(),
            depth: value_depth(v),
            limit,
        })
    };
    if limit == 0 {
        return found(Vec::new());
    }
    // One frame per open object or array, with the segment that leads to it from its parent.
    let mut stack: Vec<(Kids<'_>, Option<Segment<'_>>)> = vec![(top, None)];
    while let Some((it, _)) = stack.last_mut() {
        let next = match it {
            Kids::Obj(i) => i.next().map(|(k, x)| (Segment::Key(k), x)),
            Kids::Arr(i) => i.next().map(|(n, x)| (Segment::Index(n), x)),
        };
        match next {
            None => {
                stack.pop();
            }
            Some((seg, child)) => {
                if let Some(grandkids) = kids(child) {
                    if stack.len() + 1 > limit {
                        let mut path: Vec<Segment<'_>> =
                            stack.iter().filter_map(|(_, s)| s.clone()).collect();
                        path.push(seg);
                        return found(path);
                    }
                    stack.push((grandkids, Some(seg)));
                }
            }
        }
    }
    None
}

/// A value that nests deeper than a limit (see [`find_too_deep`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooDeep {
    /// Where the first level beyond the limit starts, e.g. `settings.a.a.(…).a`; empty for the
    /// value itself.
    pub path: String,
    /// The same path, one segment per level.
    pub segments: Vec<PathSegment>,
    /// How deeply the whole value nests.
    pub depth: usize,
    pub limit: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nested {} levels of records and arrays deep, more than the limit of {}",
            self.depth, self.limit
        )?;
        if !self.path.is_empty() {
            write!(f, " (level {} starts at {})", self.limit + 1, self.path)?;
        }
        Ok(())
    }
}

/// One step of a [`TooDeep`] path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

#[derive(Clone)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[3].c`; keys that are not plain words are quoted; more than 12 segments are shortened
/// to the first 8 and the last 3.
fn format_path(segments: &[Segment<'_>]) -> String {
    fn push(out: &mut String, seg: &Segment<'_>) {
        match seg {
            Segment::Index(n) => out.push_str(&format!("[{n}]")),
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
                if plain {
                    out.push_str(k);
                } else {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                }
            }
        }
    }
    let mut out = String::new();
    if segments.len() > 12 {
        for s in &segments[..8] {
            push(&mut out, s);
        }
        out.push_str(&format!(".(… {} more …)", segments.len() - 11));
        for s in &segments[segments.len() - 3..] {
            push(&mut out, s);
        }
    } else {
        for s in segments {
            push(&mut out, s);
        }
    }
    out
}

/// Refuses a value that a commit would store under `address` (`what`: "its attributes", ...)
/// when it nests deeper than [`MAX_VALUE_DEPTH`].
pub(crate) fn check_stored(address: &str, what: &str, v: &Value) -> Result<(), StateError> {
    match find_too_deep(v, MAX_VALUE_DEPTH) {
        None => Ok(()),
        Some(deep) => Err(StateError::InvalidChange {
            detail: format!(
                "\"{address}\" cannot be stored: {what} {deep}; the state stores no value \
                 nested deeper (it could not be read back), so nothing was written"
            ),
        }),
    }
}

/// [`check_stored`] for every value of a record.
pub(crate) fn check_record(r: &ResourceRecord) -> Result<(), StateError> {
    check_stored(&r.address, "its config", &r.config)?;
    check_stored(&r.address, "its attributes", &r.attributes)?;
    check_stored(&r.address, "its outputs", &r.outputs)?;
    for d in &r.deposed {
        check_stored(&r.address, "a deposed object's attributes", &d.attributes)?;
        check_stored(&r.address, "a deposed object's outputs", &d.outputs)?;
    }
    Ok(())
}

/// [`check_stored`] for the workspace outputs, each a value of its own.
pub(crate) fn check_outputs(outputs: &Map<String, Value>) -> Result<(), StateError> {
    for (name, v) in outputs {
        check_stored(&format!("output.{name}"), "its value", v)?;
    }
    Ok(())
}

/// How deeply JSON text nests (brackets outside strings), without parsing it: cheap, and never
/// recursive. Damaged text gives some number; the parser reports the damage.
pub(crate) fn text_depth(raw: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in raw {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

thread_local! {
    /// Set on the thread that [`read_deep`] starts: [`from_slice`] then reads without
    /// serde_json's recursion limit.
    static UNBOUNDED: Cell<bool> = const { Cell::new(false) };
    /// Set when [`from_slice`] met serde_json's recursion limit, so [`read_deep`] retries.
    static HIT_LIMIT: Cell<bool> = const { Cell::new(false) };
}

/// `serde_json::from_slice` for prov's documents. Inside [`read_deep`]'s retry it reads up to
/// [`RECOVERY_DEPTH`] levels; otherwise it notes when it met serde_json's recursion limit, so
/// that `read_deep` can retry.
pub fn from_slice<T: DeserializeOwned>(raw: &[u8]) -> serde_json::Result<T> {
    if UNBOUNDED.with(Cell::get) {
        let depth = text_depth(raw);
        if depth > RECOVERY_DEPTH {
            return Err(serde::de::Error::custom(format!(
                "it is nested {depth} levels deep, more than the {RECOVERY_DEPTH} this prov reads"
            )));
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        de.disable_recursion_limit();
        let v = T::deserialize(&mut de)?;
        de.end()?;
        return Ok(v);
    }
    let r = serde_json::from_slice(raw);
    if let Err(e) = &r {
        // serde_json has no error code for it in its API, only this message.
        if e.to_string().starts_with("recursion limit exceeded") {
            HIT_LIMIT.with(|h| h.set(true));
        }
    }
    r
}

/// Runs `read`, a decoder of prov documents that parses with [`from_slice`]. If that met
/// serde_json's recursion limit (a document an older prov wrote with values deeper than
/// [`MAX_VALUE_DEPTH`]), runs it again on a thread with a large stack, where `from_slice` reads
/// up to [`RECOVERY_DEPTH`] levels: such a state can still be read, pulled and repaired.
pub fn read_deep<R: Send>(read: impl Fn() -> R + Sync) -> R {
    let outer = HIT_LIMIT.with(|h| h.replace(false));
    let first = read();
    let hit = HIT_LIMIT.with(|h| h.replace(outer));
    if !hit || UNBOUNDED.with(Cell::get) {
        return first;
    }
    drop(first);
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("prov-deep-read".into())
            .stack_size(DEEP_STACK_BYTES)
            .spawn_scoped(scope, || {
                UNBOUNDED.with(|u| u.set(true));
                read()
            });
        match spawned {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            // No thread: read again here, which fails as the first time did.
            Err(_) => read(),
        }
    })
}

/// [`from_slice`] under [`read_deep`]: a JSON document read back whatever depth prov wrote it
/// with (up to [`RECOVERY_DEPTH`]).
pub fn from_slice_deep<T: DeserializeOwned + Send>(raw: &[u8]) -> serde_json::Result<T> {
    read_deep(|| from_slice(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Value {
        let mut v = json!(1);
        for i in 0..depth {
            v = if i % 2 == 0 {
                json!({ "a": v })
            } else {
                json!([v])
            };
        }
        v
    }

    #[test]
    fn depth_counts_objects_and_arrays() {
        assert_eq!(value_depth(&json!(1)), 0);
        assert_eq!(value_depth(&json!({})), 1);
        assert_eq!(value_depth(&json!([1, {"a": [2]}, "x"])), 3);
        assert_eq!(value_depth(&nested(300)), 300);
        assert_eq!(text_depth(br#"{"a":"[[[{","b":[["\"]"]]}"#), 3);
    }

    #[test]
    fn too_deep_names_the_path() {
        let v = json!({"servers": {"web": {"tags": {"x": [1, {"k": {"z": 1}}]}}}});
        assert_eq!(value_depth(&v), 7);
        assert_eq!(find_too_deep(&v, 7), None);
        let e = find_too_deep(&v, 6).unwrap();
        assert_eq!(e.path, "servers.web.tags.x[1].k");
        assert_eq!(e.depth, 7);
        assert_eq!(
            e.to_string(),
            "nested 7 levels of records and arrays deep, more than the limit of 6 \
             (level 7 starts at servers.web.tags.x[1].k)"
        );
        assert_eq!(find_too_deep(&v, 5).unwrap().path, "servers.web.tags.x[1]");
        assert_eq!(find_too_deep(&v, 0).unwrap().path, "");
        assert_eq!(
            find_too_deep(&json!({"a b": {"c": 1}}), 1).unwrap().path,
            "\"a b\""
        );
        let deep = find_too_deep(&json!({"s": nested(200)}), 100).unwrap();
        assert_eq!(deep.depth, 201);
        assert_eq!(deep.path, "s[0].a[0].a[0].a[0].(… 89 more …)[0].a[0]");
    }

    #[test]
    fn deep_documents_are_read_on_a_larger_stack() {
        let text = serde_json::to_vec(&nested(RECOVERY_DEPTH)).unwrap();
        assert!(serde_json::from_slice::<Value>(&text).is_err());
        let v: Value = from_slice_deep(&text).unwrap();
        assert_eq!(value_depth(&v), RECOVERY_DEPTH);
        // Within serde_json's limit nothing is retried.
        let small = serde_json::to_vec(&nested(100)).unwrap();
        assert_eq!(from_slice_deep::<Value>(&small).unwrap(), nested(100));
        // Beyond the recovery depth: an error, not a crash.
        let huge = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = from_slice_deep::<Value>(huge.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("100000 levels"), "{e}");
        let over = format!(
            "{}{}",
            "[".repeat(RECOVERY_DEPTH + 1),
            "]".repeat(RECOVERY_DEPTH + 1)
        );
        assert!(from_slice_deep::<Value>(over.as_bytes()).is_err());
        // Damage is still damage.
        let mut broken = text.clone();
        broken.truncate(text.len() - 3);
        assert!(from_slice_deep::<Value>(&broken).is_err());
    }

    /// What `read_deep` hands back must be usable where prov uses values: tokio's worker threads
    /// and the snapshot decoders have 2 MiB stacks, and cloning, comparing, printing and dropping
    /// a value all recurse.
    #[test]
    fn recovered_values_are_usable_on_a_small_stack() {
        let text = serde_json::to_vec(&nested(RECOVERY_DEPTH - 1)).unwrap();
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let v: Value = from_slice_deep(&text).unwrap();
                let copy = v.clone();
                assert!(copy == v);
                assert_eq!(serde_json::to_vec(&copy).unwrap(), text);
                let pretty = serde_json::to_string_pretty(&v).unwrap();
                drop((v, copy, pretty));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
