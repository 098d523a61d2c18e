//! Durations written as Kubernetes and Istio write them: `50ms`, `1.5s`,
//! `1m30s` (Go's `time.ParseDuration` syntax, without signs).

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error(
        "invalid duration {0:?}: expected a number followed by a unit (h, m, s, ms, us, ns), e.g. 50ms or 1m30s"
    )]
    Syntax(String),
    #[error("invalid duration {0:?}: unknown unit {1:?} (use h, m, s, ms, us or ns)")]
    UnknownUnit(String, String),
    #[error("invalid duration {0:?}: too large")]
    Overflow(String),
}

/// Parses `text` as a sequence of `<decimal number><unit>` terms, e.g.
/// `250ms` or `1h2m3.5s`. A bare `0` is accepted, as Go accepts it.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = trimmed;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let (term, remainder) = next_term(trimmed, rest)?;
        total = total
            .checked_add(term)
            .ok_or_else(|| DurationError::Overflow(trimmed.to_owned()))?;
        rest = remainder;
    }
    Ok(total)
}

/// Splits one `<number><unit>` term off the front of `rest`.
fn next_term<'a>(whole: &str, rest: &'a str) -> Result<(Duration, &'a str), DurationError> {
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let number = &rest[..number_len];
    let after_number = &rest[number_len..];
    let unit_len = after_number
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(after_number.len());
    let unit = &after_number[..unit_len];
    if number.is_empty() || unit.is_empty() {
        return Err(DurationError::Syntax(whole.to_owned()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::Syntax(whole.to_owned()))?;
    let seconds_per_unit = match unit {
        "h" => 3600.0,
        "m" => 60.0,
        "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        _ => {
            return Err(DurationError::UnknownUnit(
                whole.to_owned(),
                unit.to_owned(),
            ));
        }
    };
    let term = Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| DurationError::Overflow(whole.to_owned()))?;
    Ok((term, &after_number[unit_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_terms() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("50"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("ms"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("1..2s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("5 days"),
            Err(DurationError::UnknownUnit(_, _))
        ));
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Syntax(_) | DurationError::UnknownUnit(_, _))
        ));
    }
}
