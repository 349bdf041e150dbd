//! Encryption at rest for the files prov writes that hold values (saved plans, state dumps): ChaCha20-Poly1305 under a key the user configures, and keyed hashes of secrets for reviewed plans.
//!
//! A key is any secret of at least 16 bytes (`PROV_ENCRYPTION_KEY`, or a key file; the CLI
//! reads them). It is stretched once per process with PBKDF2-HMAC-SHA256 into a master key;
//! each file gets its own key from the master and a random salt (HKDF-SHA256), so nonces never
//! repeat under one key. The envelope is one line of JSON — ASCII, so it survives stdout, CI
//! artifacts and copy-paste — that names its format, version, content kind and the key's id
//! (a keyed hash of the master key: it tells keys apart without revealing anything). The
//! header is authenticated with the ciphertext, so a plan cannot be passed off as a state dump.
//!
//! Rotation: files are written with the current key; any configured key (current or old)
//! decrypts, chosen by the id the file names.

use base64::Engine as _;
use ring::{aead, hkdf, hmac, pbkdf2, rand::SecureRandom};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroU32;

/// The envelope's `format`.
pub const ENCRYPTED_FORMAT: &str = "prov-encrypted";
/// The envelope's `format_version`.
pub const ENCRYPTED_FORMAT_VERSION: u32 = 1;
const CIPHER: &str = "chacha20-poly1305";
/// The shortest key accepted: shorter secrets are guessable whatever the stretching.
pub const MIN_KEY_BYTES: usize = 16;
/// PBKDF2 rounds: slows guessing a weak passphrase; paid once per key and process.
const PBKDF2_ROUNDS: u32 = 100_000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What an encrypted file holds: part of the authenticated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    Plan,
    StateDump,
}

impl Content {
    fn as_str(self) -> &'static str {
        match self {
            Content::Plan => "plan",
            Content::StateDump => "state-dump",
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Content::Plan => "a saved plan",
            Content::StateDump => "a state dump",
        }
    }
}

/// One configured key, stretched. `origin` says where it came from (an environment variable or
/// a key file), for error messages; the secret itself is never shown.
pub struct Key {
    origin: String,
    id: String,
    master: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, id {})", self.origin, self.id)
    }
}

impl Key {
    /// Stretches `secret` (surrounding whitespace, such as a key file's final newline, is not
    /// part of it). Refuses secrets shorter than [`MIN_KEY_BYTES`].
    pub fn new(secret: &[u8], origin: &str) -> Result<Key, String> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the encryption key from {origin} is too short ({} bytes; at least {MIN_KEY_BYTES}): generate one with `head -c 32 /dev/urandom | base64`",
                secret.len()
            ));
        }
        let mut master = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(PBKDF2_ROUNDS).expect("non-zero"),
            b"prov-encryption-key-v1",
            secret,
            &mut master,
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &master),
            b"prov key id v1",
        );
        Ok(Key {
            origin: origin.to_string(),
            id: hex(&tag.as_ref()[..8]),
            master,
        })
    }

    /// A short public name of the key (a keyed hash of it), as files and reviewed plans record it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key came from (`PROV_ENCRYPTION_KEY`, `key file F`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn derive(&self, salt: &[u8], info: &[u8], out: &mut [u8]) {
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.master);
        prk.expand(&[info], Len(out.len()))
            .and_then(|okm| okm.fill(out))
            .expect("HKDF output of at most 32 bytes");
    }

    /// The HMAC key for hashing the secrets of plans made against the state `lineage`: bound to
    /// the lineage, so equal secrets in two workspaces hash differently.
    fn review_key(&self, lineage: &str) -> hmac::Key {
        let mut k = [0u8; 32];
        self.derive(lineage.as_bytes(), b"prov review hash v1", &mut k);
        hmac::Key::new(hmac::HMAC_SHA256, &k)
    }
}

/// The keys configured for this run: `current` encrypts (and decrypts), `old` only decrypt
/// (rotation). No current key: files are written in clear.
#[derive(Debug, Default)]
pub struct Keys {
    pub current: Option<Key>,
    pub old: Vec<Key>,
}

/// Why an encrypted file could not be read. The caller names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptError {
    /// Encrypted, and no key is configured.
    NoKey { key_id: String, content: String },
    /// Encrypted with a key that is not among the configured ones.
    WrongKey {
        key_id: String,
        configured: Vec<String>,
    },
    /// The key matches but authentication failed: the file was modified or truncated.
    Tampered,
    /// Holds another kind of content than the reader expects.
    WrongContent { found: String, expected: String },
    /// Looks like an encrypted file but its envelope is malformed or of another version.
    Malformed(String),
}

impl fmt::Display for CryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptError::NoKey { key_id, content } => write!(
                f,
                "it is encrypted ({content}, key id {key_id}) and no encryption key is configured: set PROV_ENCRYPTION_KEY or PROV_ENCRYPTION_KEY_FILE (or pass --encryption-key-file) to the key it was written with"
            ),
            CryptError::WrongKey { key_id, configured } => write!(
                f,
                "it is encrypted with key id {key_id}, which is none of the configured keys ({}): configure the key it was written with (PROV_ENCRYPTION_KEY_OLD during a rotation)",
                configured.join(", ")
            ),
            CryptError::Tampered => f.write_str(
                "it is encrypted with the configured key, but does not authenticate: the file was modified or truncated after it was written",
            ),
            CryptError::WrongContent { found, expected } => write!(
                f,
                "it is encrypted and holds {found}, not {expected}"
            ),
            CryptError::Malformed(m) => write!(f, "it is not a readable encrypted prov file ({m})"),
        }
    }
}

impl std::error::Error for CryptError {}

/// The envelope, as persisted.
#[derive(Serialize, Deserialize)]
struct EnvelopeV1 {
    format: String,
    format_version: u32,
    content: String,
    cipher: String,
    key_id: String,
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// Whether `bytes` are an encrypted prov file (of any version): decided by the envelope's
/// `format`, so an encrypted file is never taken for a damaged plain one.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(256)];
    let quoted = format!("\"{ENCRYPTED_FORMAT}\"");
    head.trim_ascii_start().starts_with(b"{")
        && head.windows(quoted.len()).any(|w| w == quoted.as_bytes())
}

impl Keys {
    pub fn none() -> Keys {
        Keys::default()
    }

    /// Whether files written now are encrypted.
    pub fn encrypts(&self) -> bool {
        self.current.is_some()
    }

    fn all(&self) -> impl Iterator<Item = &Key> {
        self.current.iter().chain(self.old.iter())
    }

    /// The key with this id, among the current and old ones.
    pub fn by_id(&self, id: &str) -> Option<&Key> {
        self.all().find(|k| k.id == id)
    }

    /// `plain` encrypted with the current key, or unchanged when no key is configured.
    pub fn seal(&self, content: Content, plain: &[u8]) -> Vec<u8> {
        let Some(key) = &self.current else {
            return plain.to_vec();
        };
        let rng = ring::rand::SystemRandom::new();
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        rng.fill(&mut salt).expect("the system's random source");
        rng.fill(&mut nonce).expect("the system's random source");
        let mut env = EnvelopeV1 {
            format: ENCRYPTED_FORMAT.into(),
            format_version: ENCRYPTED_FORMAT_VERSION,
            content: content.as_str().into(),
            cipher: CIPHER.into(),
            key_id: key.id.clone(),
            salt: B64.encode(salt),
            nonce: B64.encode(nonce),
            ciphertext: String::new(),
        };
        let sealing = file_key(key, &salt);
        let mut buf = plain.to_vec();
        sealing
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad(&env)),
                &mut buf,
            )
            .expect("ChaCha20-Poly1305 seals any length prov writes");
        env.ciphertext = B64.encode(&buf);
        let mut out = serde_json::to_vec(&env).expect("the envelope serialises");
        out.push(b'\n');
        out
    }

    /// The plain bytes of a file: decrypted when it is encrypted (with whichever configured key
    /// it names), as they are otherwise.
    pub fn open<'a>(
        &self,
        content: Content,
        bytes: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>, CryptError> {
        if !is_encrypted(bytes) {
            return Ok(std::borrow::Cow::Borrowed(bytes));
        }
        let env: EnvelopeV1 = serde_json::from_slice(bytes)
            .map_err(|e| CryptError::Malformed(format!("invalid envelope: {e}")))?;
        if env.format != ENCRYPTED_FORMAT {
            return Err(CryptError::Malformed(format!("format {:?}", env.format)));
        }
        if env.format_version != ENCRYPTED_FORMAT_VERSION {
            return Err(CryptError::Malformed(format!(
                "envelope version {} is not supported by this prov (it reads version {ENCRYPTED_FORMAT_VERSION})",
                env.format_version
            )));
        }
        if env.cipher != CIPHER {
            return Err(CryptError::Malformed(format!(
                "unknown cipher {:?}",
                env.cipher
            )));
        }
        if env.content != content.as_str() {
            let found = match env.content.as_str() {
                "plan" => Content::Plan.describe().to_string(),
                "state-dump" => Content::StateDump.describe().to_string(),
                other => format!("{other:?} file"),
            };
            return Err(CryptError::WrongContent {
                found,
                expected: content.describe().into(),
            });
        }
        let Some(key) = self.by_id(&env.key_id) else {
            if self.current.is_none() && self.old.is_empty() {
                return Err(CryptError::NoKey {
                    key_id: env.key_id,
                    content: content.describe().into(),
                });
            }
            return Err(CryptError::WrongKey {
                key_id: env.key_id,
                configured: self
                    .all()
                    .map(|k| format!("{} from {}", k.id, k.origin))
                    .collect(),
            });
        };
        let decode = |what: &str, s: &str| {
            B64.decode(s)
                .map_err(|e| CryptError::Malformed(format!("{what}: {e}")))
        };
        let salt = decode("salt", &env.salt)?;
        let nonce: [u8; 12] = decode("nonce", &env.nonce)?
            .try_into()
            .map_err(|_| CryptError::Malformed("nonce: not 12 bytes".into()))?;
        let mut buf = decode("ciphertext", &env.ciphertext)?;
        let opening = file_key(key, &salt);
        let plain = opening
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad(&env)),
                &mut buf,
            )
            .map_err(|_| CryptError::Tampered)?;
        let n = plain.len();
        buf.truncate(n);
        Ok(std::borrow::Cow::Owned(buf))
    }

    /// The id of the key secrets are hashed with for a reviewed plan (the current one), or None.
    pub fn review_key_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// A keyed hash of one secret, for comparing plans without showing or storing the secret:
    /// HMAC-SHA256 under a key derived from the encryption key with the key `key_id` and the
    /// state lineage, over `context` (address and path, so equal secrets in two places do not
    /// hash alike) and the value. Without the key a guessable secret cannot be tested against
    /// the hash. None when no configured key has that id.
    pub fn hash_secret(
        &self,
        key_id: &str,
        lineage: &str,
        context: &str,
        value: &serde_json::Value,
    ) -> Option<String> {
        let key = self.by_id(key_id)?;
        let mut ctx = hmac::Context::with_key(&key.review_key(lineage));
        ctx.update(context.as_bytes());
        ctx.update(b"\0");
        ctx.update(&serde_json::to_vec(value).expect("JSON values serialise"));
        Some(hex(&ctx.sign().as_ref()[..16]))
    }
}

/// What the AEAD authenticates besides the ciphertext: every header field.
fn aad(env: &EnvelopeV1) -> Vec<u8> {
    format!(
        "{}\0{}\0{}\0{}\0{}\0{}\0{}",
        env.format, env.format_version, env.content, env.cipher, env.key_id, env.salt, env.nonce
    )
    .into_bytes()
}

/// The file's own key, from the master key and the file's random salt.
fn file_key(key: &Key, salt: &[u8]) -> aead::LessSafeKey {
    let mut k = [0u8; 32];
    key.derive(salt, b"prov file key v1", &mut k);
    aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &k).expect("a 32-byte key"),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(cur: Option<&str>, old: &[&str]) -> Keys {
        Keys {
            current: cur.map(|s| Key::new(s.as_bytes(), "test").unwrap()),
            old: old
                .iter()
                .map(|s| Key::new(s.as_bytes(), "old").unwrap())
                .collect(),
        }
    }

    #[test]
    fn round_trip_rotation_and_refusals() {
        let plain = br#"{"plan":{"secret":"hunter2-very-secret"}}"#;
        let k1 = keys(Some("first key, long enough"), &[]);
        let sealed = k1.seal(Content::Plan, plain);
        assert!(is_encrypted(&sealed));
        assert!(!String::from_utf8_lossy(&sealed).contains("hunter2"));
        assert_eq!(&*k1.open(Content::Plan, &sealed).unwrap(), plain);
        // Plain files stay readable, with or without a key.
        assert_eq!(&*k1.open(Content::Plan, plain).unwrap(), plain);
        assert_eq!(&*Keys::none().open(Content::Plan, plain).unwrap(), plain);
        // No key, a wrong key, the wrong content: each a clear refusal.
        assert!(matches!(
            Keys::none().open(Content::Plan, &sealed),
            Err(CryptError::NoKey { .. })
        ));
        assert!(matches!(
            keys(Some("another key, long enough"), &[]).open(Content::Plan, &sealed),
            Err(CryptError::WrongKey { .. })
        ));
        assert!(matches!(
            k1.open(Content::StateDump, &sealed),
            Err(CryptError::WrongContent { .. })
        ));
        // Rotation: the old key decrypts, the new one encrypts.
        let k2 = keys(Some("second key, long enough"), &["first key, long enough"]);
        assert_eq!(&*k2.open(Content::Plan, &sealed).unwrap(), plain);
        let resealed = k2.seal(Content::Plan, plain);
        assert!(matches!(
            k1.open(Content::Plan, &resealed),
            Err(CryptError::WrongKey { .. })
        ));
        // A flipped byte in the ciphertext, or an edited header, does not authenticate.
        let mut v: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
        let ct = v["ciphertext"].as_str().unwrap().to_string();
        let mut raw = B64.decode(ct).unwrap();
        raw[0] ^= 1;
        v["ciphertext"] = B64.encode(raw).into();
        let bad = serde_json::to_vec(&v).unwrap();
        assert_eq!(k1.open(Content::Plan, &bad), Err(CryptError::Tampered));
        // Garbage that looks encrypted is malformed, never read as plain.
        assert!(matches!(
            k1.open(Content::Plan, br#"{"format":"prov-encrypted","x":1}"#),
            Err(CryptError::Malformed(_))
        ));
        assert!(Key::new(b"short\n", "PROV_ENCRYPTION_KEY").is_err());
    }

    #[test]
    fn secret_hashes_depend_on_key_lineage_and_place() {
        let k = keys(Some("first key, long enough"), &[]);
        let id = k.review_key_id().unwrap().to_string();
        let v = serde_json::json!("hunter2");
        let h = |lineage, ctx| k.hash_secret(&id, lineage, ctx, &v).unwrap();
        assert_eq!(
            h("l1", "server.a settings.pw"),
            h("l1", "server.a settings.pw")
        );
        assert_ne!(
            h("l1", "server.a settings.pw"),
            h("l2", "server.a settings.pw")
        );
        assert_ne!(
            h("l1", "server.a settings.pw"),
            h("l1", "server.b settings.pw")
        );
        let other = keys(Some("another key, long enough"), &[]);
        let oid = other.review_key_id().unwrap().to_string();
        assert_ne!(
            other.hash_secret(&oid, "l1", "server.a settings.pw", &v),
            Some(h("l1", "server.a settings.pw"))
        );
        assert_eq!(k.hash_secret("0000", "l1", "x", &v), None);
    }
}
