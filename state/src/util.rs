//! Small helpers with no better home: UTC formatting, the clock, random ids, private directories.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::StateError;

/// Formats unix seconds as "2026-11-25 14:03:07 UTC" (proleptic Gregorian; no chrono needed).
pub fn format_utc(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Seconds since the Unix epoch (0 if the clock is before it): the one clock records,
/// pending notes, locks and plans are stamped with.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `bytes` random bytes as lowercase hex, from /dev/urandom. Falls back to std's randomly keyed
/// hasher (itself seeded from the OS) so that constructing a store never fails for want of it.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !from_urandom {
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `dir` and any missing parents with mode 0700 (state can hold secrets). Existing
/// directories keep their mode: the user may have chosen it.
pub(crate) fn create_private_dir_all(dir: &Path) -> Result<(), StateError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Deserialises a JSON value whose objects and arrays have exactly the capacity they hold
/// (`#[serde(deserialize_with = "prov_state::compact_value")]`). serde_json's own parser lets an
/// object keep the room its table grew to (a 9-key object has room for 14 entries of ~112
/// bytes); for values kept by the thousand (records in a snapshot, a large configuration) that
/// slack is a tenth of their memory. Entries are gathered on a per-thread stack first, so each
/// map is allocated once at its final size and each key hashed once.
pub fn compact_value<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Value, D::Error> {
    d.deserialize_any(CompactVisitor)
}

/// A JSON value parsed by [`compact_value`].
pub struct Compact(pub serde_json::Value);

impl<'de> serde::Deserialize<'de> for Compact {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        compact_value(d).map(Compact)
    }
}

thread_local! {
    /// Entries of the objects being parsed, innermost last.
    static ENTRIES: std::cell::RefCell<Vec<(String, serde_json::Value)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

struct CompactVisitor;

impl<'de> serde::de::Visitor<'de> for CompactVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        compact_value(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Compact(x)) = seq.next_element()? {
            out.push(x);
        }
        out.shrink_to_fit();
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let start = ENTRIES.with(|e| e.borrow().len());
        // On an error the stack is cut back to where this object began.
        let gathered = (|| {
            while let Some(k) = map.next_key::<String>()? {
                let Compact(v) = map.next_value()?;
                ENTRIES.with(|e| e.borrow_mut().push((k, v)));
            }
            Ok(())
        })();
        ENTRIES.with(|e| {
            let mut e = e.borrow_mut();
            let out = match gathered {
                Ok(()) => {
                    let mut m = serde_json::Map::with_capacity(e.len() - start);
                    // A repeated key keeps the last value, as serde_json's own parser does.
                    m.extend(e.drain(start..));
                    Ok(serde_json::Value::Object(m))
                }
                Err(err) => Err(err),
            };
            e.truncate(start);
            out
        })
    }
}

/// The longest duration a flag or variable takes: `Instant::now() + d` never overflows.
const MAX_DURATION_SECS: f64 = 10.0 * 365.0 * 86400.0;

/// Parses `30s`, `2m`, `1h`, `500ms` or a plain number of seconds, from 0 up to 10 years
/// (87600h); anything else is an error saying what is expected, never a panic.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 2m, 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {unit:?} (ms, s, m, h)"
            ))
        }
    };
    if !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(format!(
            "invalid duration {s:?}: longer than the maximum of 87600h (10 years)"
        ));
    }
    std::time::Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29 23:59:59 UTC");
        assert_eq!(format_utc(1_795_615_387), "2026-11-25 14:03:07 UTC");
        assert_eq!(format_utc(4_102_444_800), "2100-01-01 00:00:00 UTC");
    }

    #[test]
    fn compact_value_parses_like_serde_json() {
        for text in [
            r#"{"z":1,"a":{"k9":[1,2,{"b":2,"a":1}],"k1":"x"},"m":[],"f":1.5,"n":null,"t":true}"#,
            r#"[-3,18446744073709551615,"s\n",{}]"#,
            r#"{"dup":1,"dup":2}"#,
        ] {
            let Compact(v) = serde_json::from_str(text).unwrap();
            let want: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v, want);
            assert_eq!(serde_json::to_string(&v).unwrap(), want.to_string());
        }
        assert!(serde_json::from_str::<Compact>(r#"{"a":{"b":[1,}"#).is_err());
        // The stack is left clean after an error.
        ENTRIES.with(|e| assert!(e.borrow().is_empty()));
    }

    #[test]
    fn random_hex_is_hex_and_differs() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(16));
    }
}
