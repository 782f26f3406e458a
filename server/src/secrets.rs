//! Leaf helpers for secrets and ids: random ids and tokens, SHA-256, constant-time equality and
//! the HMAC signer of cookie values.
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// 128 random bits as lower-case base32 (26 chars): sandbox ids and visitor ids.
pub fn random_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes: [u8; 17] = rand::random();
    let mut out = String::with_capacity(27);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 && out.len() < 26 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// 256 random bits, hex: session cookies, OAuth states, API tokens.
pub fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Constant-time string equality (tokens, states): the time depends on the length only, never
/// on where the first difference is.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && same_bytes(a.bytes(), b.bytes())
}

/// Compares every pair of bytes, differences or not (no early exit).
fn same_bytes(a: impl Iterator<Item = u8>, b: impl Iterator<Item = u8>) -> bool {
    a.zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs and checks cookie values with the instance secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// A keyed tag of `value` (CSRF tokens).
    pub fn tag(&self, value: &str) -> String {
        self.mac(value)
    }

    fn mac(&self, value: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A short-lived ticket for one `purpose` (e.g. `terminal`) of `identity` on `object` (e.g. a
    /// sandbox id), valid until `expires` (Unix seconds): `expires.tag`, the tag an HMAC over all
    /// four with the instance secret.
    pub fn ticket(&self, purpose: &str, identity: &str, object: &str, expires: i64) -> String {
        let mac = self.mac(&format!(
            "ticket\n{purpose}\n{identity}\n{object}\n{expires}"
        ));
        format!("{expires}.{mac}")
    }

    /// Whether `ticket` was made by `ticket` for exactly this purpose, identity and object, and
    /// has not expired at `now` (Unix seconds).
    pub fn check_ticket(
        &self,
        ticket: &str,
        purpose: &str,
        identity: &str,
        object: &str,
        now: i64,
    ) -> bool {
        let Some(expires) = ticket
            .split_once('.')
            .and_then(|(e, _)| e.parse::<i64>().ok())
        else {
            return false;
        };
        expires > now && same(&self.ticket(purpose, identity, object, expires), ticket)
    }

    /// `value.signature`
    pub fn sign(&self, value: &str) -> String {
        format!("{value}.{}", self.mac(value))
    }

    /// The value if the signature is right.
    pub fn verify<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (value, sig) = signed.rsplit_once('.')?;
        let expected = self.mac(value);
        crate::secrets::same(&expected, sig).then_some(value)
    }
}

/// Writes a file only its owner can read (mode 0600 from its creation: never readable by others,
/// not even between a write and a chmod). Replaces an existing file.
pub fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut file = open.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Loads the instance secret (cookie signing) from the data dir, creating it on first start.
pub fn load_or_create_instance_secret(data_dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let path = data_dir.join("secret");
    match std::fs::read_to_string(&path) {
        Ok(hex_key) => hex::decode(hex_key.trim())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let key: [u8; 32] = rand::random();
            write_private(&path, hex::encode(key).as_bytes())?;
            Ok(key.to_vec())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_are_never_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("trythis-private-{}", random_id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("secret");
        write_private(&path, b"one").unwrap_or_else(|e| panic!("{e}"));
        write_private(&path, b"two").unwrap_or_else(|e| panic!("{e}"));
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"two"[..]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn constant_time_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        // A difference in the first byte still reads every byte of both: an early exit
        // (`==`, `all`, `position`) would stop after one.
        let read = std::cell::Cell::new(0);
        let counted = |s: &'static str| s.bytes().inspect(|_| read.set(read.get() + 1));
        assert!(!same_bytes(counted("xbcdefgh"), counted("abcdefgh")));
        assert_eq!(read.get(), 16);
    }

    #[test]
    fn signed_values_verify_and_tampering_fails() {
        let s = Signer::new(b"k".repeat(32));
        let signed = s.sign("abc");
        assert_eq!(s.verify(&signed), Some("abc"));
        assert_eq!(s.verify(&signed.replace("abc", "abd")), None);
        assert_eq!(s.verify("abc"), None);
        assert_eq!(Signer::new(b"other".to_vec()).verify(&signed), None);
    }

    #[test]
    fn tickets_hold_for_their_purpose_identity_object_and_time_only() {
        let s = Signer::new(b"k".repeat(32));
        let now = 1_800_000_000;
        let t = s.ticket("terminal", "v:ann", "sbx1", now + 60);
        assert!(s.check_ticket(&t, "terminal", "v:ann", "sbx1", now));
        assert!(s.check_ticket(&t, "terminal", "v:ann", "sbx1", now + 59));
        // Expired.
        assert!(!s.check_ticket(&t, "terminal", "v:ann", "sbx1", now + 60));
        // Another sandbox, another identity, another purpose, another installation.
        assert!(!s.check_ticket(&t, "terminal", "v:ann", "sbx2", now));
        assert!(!s.check_ticket(&t, "terminal", "v:bob", "sbx1", now));
        assert!(!s.check_ticket(&t, "files", "v:ann", "sbx1", now));
        assert!(!Signer::new(b"other".to_vec()).check_ticket(&t, "terminal", "v:ann", "sbx1", now));
        // A later expiry written over the tag does not carry it.
        let (_, tag) = t.split_once('.').unwrap_or_default();
        let stretched = format!("{}.{tag}", now + 3600);
        assert!(!s.check_ticket(&stretched, "terminal", "v:ann", "sbx1", now + 100));
        for junk in ["", ".", "abc", "1.2.3", &format!("{}.", now + 60)] {
            assert!(
                !s.check_ticket(junk, "terminal", "v:ann", "sbx1", now),
                "{junk}"
            );
        }
    }

    #[test]
    fn random_ids_are_26_base32_chars_and_differ() {
        let a = random_id();
        let b = random_id();
        assert_eq!(a.len(), 26);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
        assert_ne!(a, b);
    }
}
