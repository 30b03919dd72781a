//! The one machine-readable line each scenario prints for `bench/registry/run.sh`.

use std::fmt;

/// `BENCH_RESULT key=value key=value …`, in the order the fields were added.
#[derive(Debug, Default)]
pub struct ResultLine(Vec<(&'static str, String)>);

impl ResultLine {
    /// Adds a field; values must not contain whitespace (the script splits on it).
    pub fn field(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        let value = value.to_string();
        debug_assert!(!value.contains(char::is_whitespace), "{key}={value:?}");
        self.0.push((key, value));
        self
    }
}

impl fmt::Display for ResultLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BENCH_RESULT")?;
        for (k, v) in &self.0 {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_order() {
        let line = ResultLine::default().field("ok", 3).field("rps", "1.50");
        assert_eq!(line.to_string(), "BENCH_RESULT ok=3 rps=1.50");
    }
}
