//! Input rules shared by the server (which enforces them) and clients (which may check early).
//!
//! Service names become DNS labels later, so they follow RFC 1123 label rules.

use crate::registry::InstanceSpec;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest lease or instance TTL.
pub const MAX_TTL_SECS: u32 = 86_400;
/// Largest instance weight.
pub const MAX_WEIGHT: u32 = 10_000;
/// Most tags (and most meta pairs) on one instance.
pub const MAX_TAGS: usize = 64;
/// Longest tag, meta key or meta value.
pub const MAX_LABEL_BYTES: usize = 512;
/// Longest instance address.
pub const MAX_ADDRESS_BYTES: usize = 255;

/// A rule an input broke: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// 1-63 characters of `a-z 0-9 -`, starting and ending alphanumeric.
pub fn service_name(name: &str) -> Result<(), Invalid> {
    let ok_len = (1..=63).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = name.bytes().next().is_some_and(|b| b != b'-')
        && name.bytes().last().is_some_and(|b| b != b'-');
    if ok_len && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(Invalid::new(
            "service",
            format!(
                "service name {name:?} must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
            ),
        ))
    }
}

/// 1-128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn instance_id(id: &str) -> Result<(), Invalid> {
    let ok_len = (1..=128).contains(&id.len());
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(Invalid::new(
            "id",
            format!(
                "instance id {id:?} must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        ))
    }
}

/// 1-1024 bytes.
pub fn key(key: &str) -> Result<(), Invalid> {
    if key.is_empty() {
        return Err(Invalid::new("key", "the key must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Invalid::new(
            "key",
            format!(
                "the key is {} bytes; at most {MAX_KEY_BYTES} are allowed",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// 1-86400 seconds.
pub fn ttl_secs(field: &str, ttl: u32) -> Result<(), Invalid> {
    if (1..=MAX_TTL_SECS).contains(&ttl) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{field} must be between 1 and {MAX_TTL_SECS} seconds, got {ttl}"),
        ))
    }
}

/// The body of a registration.
pub fn instance_spec(spec: &InstanceSpec) -> Result<(), Invalid> {
    if spec.address.is_empty() || spec.address.len() > MAX_ADDRESS_BYTES {
        return Err(Invalid::new(
            "address",
            format!("address must be 1-{MAX_ADDRESS_BYTES} bytes"),
        ));
    }
    if spec
        .address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Invalid::new(
            "address",
            "address must not contain whitespace or control characters",
        ));
    }
    if spec.port == 0 {
        return Err(Invalid::new("port", "port must be between 1 and 65535"));
    }
    if spec.weight > MAX_WEIGHT {
        return Err(Invalid::new(
            "weight",
            format!(
                "weight must be between 0 and {MAX_WEIGHT}, got {}",
                spec.weight
            ),
        ));
    }
    if let Some(ttl) = spec.ttl_secs {
        ttl_secs("ttl_secs", ttl)?;
    }
    if spec.tags.len() > MAX_TAGS {
        return Err(Invalid::new(
            "tags",
            format!(
                "at most {MAX_TAGS} tags are allowed, got {}",
                spec.tags.len()
            ),
        ));
    }
    if let Some(t) = spec
        .tags
        .iter()
        .find(|t| t.is_empty() || t.len() > MAX_LABEL_BYTES)
    {
        return Err(Invalid::new(
            "tags",
            format!("tag {t:?} must be 1-{MAX_LABEL_BYTES} bytes"),
        ));
    }
    if spec.meta.len() > MAX_TAGS {
        return Err(Invalid::new(
            "meta",
            format!(
                "at most {MAX_TAGS} meta pairs are allowed, got {}",
                spec.meta.len()
            ),
        ));
    }
    if let Some((k, _)) = spec
        .meta
        .iter()
        .find(|(k, v)| k.is_empty() || k.len() > MAX_LABEL_BYTES || v.len() > MAX_LABEL_BYTES)
    {
        return Err(Invalid::new(
            "meta",
            format!(
                "meta key {k:?} must be 1-{MAX_LABEL_BYTES} bytes and its value at most {MAX_LABEL_BYTES}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            address: "10.0.0.5".into(),
            port: 8080,
            tags: vec![],
            meta: Default::default(),
            weight: 100,
            ttl_secs: None,
        }
    }

    #[test]
    fn service_names() {
        for ok in ["a", "orders", "a-b", "x1", &"a".repeat(63)] {
            assert!(service_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "ü"] {
            assert!(service_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instance_ids() {
        for ok in ["o1", "A.b_c:d-e", &"x".repeat(128)] {
            assert!(instance_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(instance_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert!(key("a").is_ok());
        assert!(key(&"k".repeat(1024)).is_ok());
        assert_eq!(key("").unwrap_err().field, "key");
        assert!(key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn specs() {
        assert!(instance_spec(&spec()).is_ok());
        let field = |f: fn(&mut InstanceSpec)| {
            let mut s = spec();
            f(&mut s);
            instance_spec(&s).unwrap_err().field
        };
        assert_eq!(field(|s| s.address.clear()), "address");
        assert_eq!(field(|s| s.port = 0), "port");
        assert_eq!(field(|s| s.weight = 10_001), "weight");
        assert_eq!(field(|s| s.ttl_secs = Some(0)), "ttl_secs");
        assert_eq!(field(|s| s.ttl_secs = Some(86_401)), "ttl_secs");
        assert_eq!(field(|s| s.tags = vec!["t".into(); 65]), "tags");
        assert_eq!(
            field(|s| s.meta = (0..65).map(|i| (i.to_string(), "v".into())).collect()),
            "meta"
        );
        let mut s = spec();
        s.weight = 0;
        s.ttl_secs = Some(86_400);
        assert!(instance_spec(&s).is_ok());
    }
}
