//! Istio durations: protobuf `Duration`s written as strings. Istio accepts
//! Go's syntax (`10s`, `1.5s`, `100ms`, `1m30s`, `2h`), so this does too.

use std::time::Duration;

/// A duration string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct InvalidDuration {
    pub input: String,
    pub reason: &'static str,
}

/// Parses `10s`, `1.5s`, `100ms`, `1m30s`, `2h`, `250us`, `0`...
/// Negative durations are rejected: no Istio field accepts them.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = |reason| InvalidDuration {
        input: text.to_string(),
        reason,
    };
    if text.starts_with('-') {
        return Err(invalid("duration must not be negative"));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("empty duration"));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let (term, remainder) = parse_term(rest).map_err(invalid)?;
        total = total
            .checked_add(term)
            .ok_or_else(|| invalid("duration is too long"))?;
        rest = remainder;
    }
    Ok(total)
}

/// Reads one `<number><unit>` term from the front of `text`.
fn parse_term(text: &str) -> Result<(Duration, &str), &'static str> {
    let number_len = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or("missing unit (e.g. \"s\" or \"ms\")")?;
    let (number, rest) = text.split_at(number_len);
    let unit_len = rest
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(rest.len());
    let (unit, rest) = rest.split_at(unit_len);
    let nanos_per_unit: u128 = match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err("unknown unit (use ns, us, ms, s, m or h)"),
    };
    let nanos = scaled_nanos(number, nanos_per_unit)?;
    let nanos = u64::try_from(nanos).map_err(|_| "duration is too long")?;
    Ok((Duration::from_nanos(nanos), rest))
}

/// `number` (decimal, maybe with a fraction) times `scale`, in whole nanoseconds.
fn scaled_nanos(number: &str, scale: u128) -> Result<u128, &'static str> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err("malformed number");
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "number is too large")?
    };
    let mut nanos = whole.checked_mul(scale).ok_or("duration is too long")?;
    let mut place = scale;
    for digit in fraction.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        nanos += u128::from(digit - b'0') * place;
    }
    Ok(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_style_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations() {
        for input in [
            "", "10", "s", "-1s", "1x", "1.2.3s", ".s", "1s2", "abc", "1 s",
        ] {
            assert!(
                parse_duration(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_overflow_without_panicking() {
        assert!(parse_duration("99999999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("9999999999999h").is_err());
    }

    #[test]
    fn error_names_the_input() {
        let error = parse_duration("1x").unwrap_err();
        assert!(
            error.to_string().starts_with("invalid duration \"1x\""),
            "{error}"
        );
    }
}
