//! The HTTP statuses an `http` health check accepts, parsed from `expect_status`.
//!
//! Shared by validation (the server refuses what does not parse) and the probe
//! (which applies it), so both read the field alike.

use std::fmt;
use std::str::FromStr;

/// The HTTP statuses that count as passing: a union of classes (`2xx`),
/// single statuses (`204`) and inclusive ranges (`200-299`), comma-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectStatus(Vec<(u16, u16)>);

impl ExpectStatus {
    /// Whether `status` is one of the accepted ones.
    pub fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl Default for ExpectStatus {
    /// `2xx`, as in Consul.
    fn default() -> Self {
        ExpectStatus(vec![(200, 299)])
    }
}

/// Why an expected-status string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectStatusError {
    /// The list, or one of its comma-separated items, is empty.
    #[error("empty status list or list item")]
    Empty,
    /// An item is neither a status, a class nor a range.
    #[error("`{0}` is not a status (200), a class (2xx) or a range (200-299)")]
    Malformed(String),
    /// A status outside what HTTP defines.
    #[error("status {0} is outside 100-599")]
    OutOfRange(u16),
    /// A range whose end comes before its start.
    #[error("range {0}-{1} ends before it starts")]
    Reversed(u16, u16),
}

impl FromStr for ExpectStatus {
    type Err = ExpectStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(|item| parse_expect_item(item.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(ExpectStatus)
    }
}

fn parse_expect_item(item: &str) -> Result<(u16, u16), ExpectStatusError> {
    let malformed = || ExpectStatusError::Malformed(item.to_string());
    if item.is_empty() {
        return Err(ExpectStatusError::Empty);
    }
    if let Some(class) = item.to_ascii_lowercase().strip_suffix("xx") {
        let digit = match class.as_bytes() {
            [d @ b'1'..=b'5'] => u16::from(d - b'0'),
            _ => return Err(malformed()),
        };
        return Ok((digit * 100, digit * 100 + 99));
    }
    if let Some((lo, hi)) = item.split_once('-') {
        let lo = parse_status(lo.trim()).ok_or_else(malformed)??;
        let hi = parse_status(hi.trim()).ok_or_else(malformed)??;
        return if lo <= hi {
            Ok((lo, hi))
        } else {
            Err(ExpectStatusError::Reversed(lo, hi))
        };
    }
    let status = parse_status(item).ok_or_else(malformed)??;
    Ok((status, status))
}

/// `None` when `s` is not three digits; `Some(Err)` when it is but HTTP has no such status.
fn parse_status(s: &str) -> Option<Result<u16, ExpectStatusError>> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u16 = s.parse().ok()?;
    Some(if (100..=599).contains(&n) {
        Ok(n)
    } else {
        Err(ExpectStatusError::OutOfRange(n))
    })
}

impl fmt::Display for ExpectStatus {
    /// The canonical form, which parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else if lo % 100 == 0 && hi == lo + 99 {
                write!(f, "{}xx", lo / 100)?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_status_accepts_classes_statuses_ranges_and_lists() {
        let cases: &[(&str, &[u16], &[u16])] = &[
            ("2xx", &[200, 204, 299], &[199, 300, 429]),
            ("200", &[200], &[201, 204]),
            ("200-204", &[200, 202, 204], &[199, 205]),
            ("2xx,3xx", &[200, 301, 399], &[404, 500]),
            (" 2XX , 404 ", &[250, 404], &[403]),
            ("500", &[500], &[200]),
        ];
        for (text, accepted, rejected) in cases {
            let e: ExpectStatus = text.parse().unwrap_or_else(|err| panic!("{text}: {err}"));
            for s in *accepted {
                assert!(e.accepts(*s), "{text} should accept {s}");
            }
            for s in *rejected {
                assert!(!e.accepts(*s), "{text} should reject {s}");
            }
            assert_eq!(
                e.to_string().parse::<ExpectStatus>(),
                Ok(e.clone()),
                "round trip of {text}"
            );
        }
        assert_eq!(ExpectStatus::default().to_string(), "2xx");
        assert_eq!(
            "200-299,301".parse::<ExpectStatus>().unwrap().to_string(),
            "2xx,301"
        );
    }

    #[test]
    fn expect_status_errors_name_the_problem() {
        use ExpectStatusError::*;
        assert_eq!("".parse::<ExpectStatus>(), Err(Empty));
        assert_eq!("2xx,".parse::<ExpectStatus>(), Err(Empty));
        assert_eq!("ok".parse::<ExpectStatus>(), Err(Malformed("ok".into())));
        assert_eq!("6xx".parse::<ExpectStatus>(), Err(Malformed("6xx".into())));
        assert_eq!("20".parse::<ExpectStatus>(), Err(Malformed("20".into())));
        assert_eq!("+20".parse::<ExpectStatus>(), Err(Malformed("+20".into())));
        assert_eq!(
            "200-".parse::<ExpectStatus>(),
            Err(Malformed("200-".into()))
        );
        assert_eq!("600".parse::<ExpectStatus>(), Err(OutOfRange(600)));
        assert_eq!("099-200".parse::<ExpectStatus>(), Err(OutOfRange(99)));
        assert_eq!("300-200".parse::<ExpectStatus>(), Err(Reversed(300, 200)));
        let message = "abc".parse::<ExpectStatus>().unwrap_err().to_string();
        assert!(message.contains("`abc`"), "{message}");
    }
}
