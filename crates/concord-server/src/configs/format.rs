//! Checking that content parses in its declared format, with the position of the
//! first error, and hashing it.

use concord_api::config::ConfigFormat;
use sha2::{Digest, Sha256};

/// Where and why content does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError {
    /// 1-based line.
    pub(crate) line: u32,
    /// 1-based column (in characters).
    pub(crate) column: u32,
    pub(crate) message: String,
}

/// Checks `content` against `format`. Text always passes.
pub(crate) fn validate(format: ConfigFormat, content: &str) -> Result<(), FormatError> {
    match format {
        ConfigFormat::Json => serde_json::from_str::<serde::de::IgnoredAny>(content)
            .map(|_| ())
            .map_err(|e| FormatError {
                line: clamp(e.line()),
                column: clamp(e.column()),
                message: strip_position(&e.to_string()),
            }),
        ConfigFormat::Yaml => yaml_rust2::YamlLoader::load_from_str(content)
            .map(|_| ())
            .map_err(|e| FormatError {
                line: clamp(e.marker().line()),
                column: clamp(e.marker().col() + 1),
                message: e.info().to_owned(),
            }),
        ConfigFormat::Toml => content.parse::<toml::Table>().map(|_| ()).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| position(content, s.start))
                .unwrap_or((1, 1));
            FormatError {
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        }),
        ConfigFormat::Properties => properties(content),
        ConfigFormat::Text => Ok(()),
    }
}

/// Hex SHA-256 of the content.
pub(crate) fn sha256(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// 1-based line and column (in characters) of byte offset `at`.
fn position(content: &str, at: usize) -> (u32, u32) {
    let mut at = at.min(content.len());
    while !content.is_char_boundary(at) {
        at -= 1;
    }
    let before = &content[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (clamp(line), clamp(column))
}

/// serde_json appends " at line L column C"; the position is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Java `.properties`: every line is a comment, blank, or `key[=:]value` (a bare key
/// is legal); what can be wrong is a malformed `\uXXXX` escape.
fn properties(content: &str) -> Result<(), FormatError> {
    for (n, line) in content.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' {
                if chars.get(i + 1) == Some(&'u') {
                    let hex: String = chars.iter().skip(i + 2).take(4).collect();
                    if hex.len() != 4 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err(FormatError {
                            line: clamp(n + 1),
                            column: clamp(i + 1),
                            message: "malformed \\uXXXX escape".to_owned(),
                        });
                    }
                    i += 6;
                    continue;
                }
                i += 2;
                continue;
            }
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(format: ConfigFormat, content: &str) -> FormatError {
        validate(format, content).expect_err("should not parse")
    }

    #[test]
    fn valid_content_of_every_format() {
        for (f, c) in [
            (ConfigFormat::Json, r#"{"a":[1,2],"b":{"c":null}}"#),
            (ConfigFormat::Yaml, "a: 1\nb:\n  - x\n  - y\n"),
            (ConfigFormat::Toml, "a = 1\n[b]\nc = \"x\"\n"),
            (
                ConfigFormat::Properties,
                "# c\n! c\na=1\nb: 2\nc 3\nbare\nu=\\u00e9\nlong=a\\\n  b\n",
            ),
            (ConfigFormat::Text, "anything { at all"),
        ] {
            assert_eq!(validate(f, c), Ok(()), "{f}");
        }
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = err(ConfigFormat::Json, "{\n  \"a\": 1,\n  \"b\": }\n");
        assert_eq!((e.line, e.column), (3, 8), "{e:?}");
        assert!(!e.message.contains("at line"), "{e:?}");
        let e = err(ConfigFormat::Yaml, "a: 1\nb: [1, 2\nc: 3\n");
        assert!(e.line >= 2, "{e:?}");
        let e = err(ConfigFormat::Yaml, "a: 1\nb: c: d\n");
        assert_eq!(e.line, 2, "{e:?}");
        let e = err(ConfigFormat::Toml, "a = 1\nb = = 2\n");
        assert_eq!(e.line, 2, "{e:?}");
        assert_eq!(e.column, 5, "{e:?}");
        let e = err(ConfigFormat::Toml, "a = 1\na = 2\n");
        assert_eq!(e.line, 2, "duplicate key: {e:?}");
        let e = err(ConfigFormat::Properties, "a=1\nb=x\\u12G4\n");
        assert_eq!((e.line, e.column), (2, 4), "{e:?}");
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncé\nd", 6), (2, 3));
        assert_eq!(position("ab\ncé\nd", 7), (3, 1));
        assert_eq!(position("é", 1), (1, 1), "inside a character");
        assert_eq!(position("", 0), (1, 1));
        assert_eq!(position("abc", 99), (1, 4));
    }

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
