//! Durations as people write them: `7d`, `90d`, `12h`, `1d12h`.
//!
//! At the bottom of the layers: it uses nothing of custos, and retention,
//! the config, the daemon and the fault injector all use it for the windows,
//! RPOs, grace periods and timeouts written in the config and on the command
//! line.
//!
//! [`parse_duration`] and [`HumanDuration`] read the duration syntax of the
//! command line and the config: whole numbers with a unit, largest unit first,
//! each unit at most once, no spaces.
//!
//! | unit | meaning |
//! |---|---|
//! | `y` | 365 days (calendar years are not used: a duration is a fixed length) |
//! | `w` | 7 days |
//! | `d` | 24 hours |
//! | `h` | 60 minutes |
//! | `min` | 60 seconds |
//! | `s` | 1 second |
//!
//! Examples: `7d`, `90d`, `12h`, `1d12h`, `2w`, `1y30d`, `30min`. A bare `m` is
//! refused: it means minutes to some tools and months to others.
//!
//! Layer 0 of `docs/architecture.md`: it uses no other module of custos.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A length of time in whole seconds, written like `7d`, `90d`, `12h` or
/// `1d12h` (units as in [`parse_duration`]).
///
/// [`FromStr`] parses that syntax, [`Display`](fmt::Display) writes it back in
/// canonical form with the units `y`, `d`, `h`, `min`, `s` (weeks are shown as
/// days: `2w` displays as `14d`), so parsing the display gives the same value.
/// Serde reads and writes the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HumanDuration {
    secs: u64,
}

/// The units of the syntax, largest first: (name, seconds).
const UNITS: [(&str, u64); 6] = [
    ("y", 365 * 86_400),
    ("w", 7 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("min", 60),
    ("s", 1),
];

/// The units [`HumanDuration`] displays with: weeks are left out so that `90d`
/// shows as `90d`, not `12w6d`.
const DISPLAY_UNITS: [(&str, u64); 5] = [
    ("y", 365 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("min", 60),
    ("s", 1),
];

impl HumanDuration {
    /// The zero duration.
    pub const ZERO: HumanDuration = HumanDuration { secs: 0 };

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration { secs }
    }

    /// The length in whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.secs
    }

    /// The length as a standard duration.
    pub const fn as_std(self) -> Duration {
        Duration::from_secs(self.secs)
    }

    /// True for the zero duration.
    pub const fn is_zero(self) -> bool {
        self.secs == 0
    }
}

impl From<Duration> for HumanDuration {
    /// Drops the sub-second part: the syntax counts whole seconds.
    fn from(d: Duration) -> Self {
        HumanDuration::from_secs(d.as_secs())
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.as_std()
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.secs;
        for (unit, size) in DISPLAY_UNITS {
            let n = rest / size;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    /// Parses `7d`, `90d`, `12h`, `1d12h`, ...; surrounding whitespace is
    /// ignored. The error is one sentence naming the problem and the syntax.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let s = text.trim();
        if s.is_empty() {
            return Err("empty duration: write it like 7d, 90d, 12h or 1d12h".to_owned());
        }
        let bytes = s.as_bytes();
        let mut pos = 0;
        let mut total: u64 = 0;
        let mut previous_unit: Option<usize> = None;
        while pos < bytes.len() {
            let start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            // `start` and `pos` only ever move over ASCII bytes, so they are
            // character boundaries and the slices below cannot panic.
            if pos == start {
                let rest = &s[start..];
                return Err(if rest.starts_with(char::is_whitespace) {
                    format!(
                        "invalid duration {text:?}: no spaces inside a duration \
                         (write it like 1d12h)"
                    )
                } else {
                    format!(
                        "invalid duration {text:?}: expected a whole number at {rest:?} \
                         (write it like 7d, 90d, 12h or 1d12h)"
                    )
                });
            }
            let digits = &s[start..pos];
            let number: u64 = digits
                .parse()
                .map_err(|_| format!("invalid duration {text:?}: it is too large"))?;
            let unit_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
                pos += 1;
            }
            let unit = &s[unit_start..pos];
            if unit.is_empty() {
                return Err(match s[pos..].chars().next() {
                    None => format!(
                        "invalid duration {text:?}: {digits} has no unit \
                         (use y, w, d, h, min or s, as in {digits}d)"
                    ),
                    Some(c) => format!(
                        "invalid duration {text:?}: unexpected {c:?} after {digits} \
                         (whole numbers and units only, no spaces, as in 1d12h)"
                    ),
                });
            }
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(unknown_unit(text, unit));
            };
            if previous_unit.is_some_and(|p| index <= p) {
                return Err(format!(
                    "invalid duration {text:?}: units must go from largest to smallest, \
                     each at most once (as in 1d12h)"
                ));
            }
            previous_unit = Some(index);
            total = number
                .checked_mul(UNITS[index].1)
                .and_then(|secs| total.checked_add(secs))
                .ok_or_else(|| format!("invalid duration {text:?}: it is too large"))?;
        }
        Ok(HumanDuration::from_secs(total))
    }
}

fn unknown_unit(text: &str, unit: &str) -> String {
    match unit {
        "m" => format!(
            "invalid duration {text:?}: unit \"m\" is ambiguous: write min for minutes; \
             months are not a fixed length, write days (30d) or years (1y)"
        ),
        "mo" | "mon" | "month" | "months" => format!(
            "invalid duration {text:?}: months are not a fixed length: \
             write days (30d) or years (1y)"
        ),
        _ => format!(
            "invalid duration {text:?}: unknown unit {unit:?} \
             (use y, w, d, h, min or s, as in 1d12h)"
        ),
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parse a duration written like `7d`, `90d`, `12h` or `1d12h` (units `y` =
/// 365 days, `w`, `d`, `h`, `min`, `s`).
///
/// # Errors
///
/// A one-sentence message when the text is empty, has a number without a unit,
/// an unknown or ambiguous unit (`m`), units out of order or repeated,
/// anything other than digits and units, or a value too large for `u64`
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<HumanDuration>().map(HumanDuration::as_std)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dur(s: &str) -> HumanDuration {
        s.parse().unwrap()
    }

    #[test]
    fn durations_parse() {
        let cases = [
            ("7d", 7 * 86_400),
            ("90d", 90 * 86_400),
            ("12h", 12 * 3_600),
            ("1d12h", 36 * 3_600),
            ("30min", 1_800),
            ("45s", 45),
            ("2w", 14 * 86_400),
            ("1y", 365 * 86_400),
            (
                "1y2w3d4h5min6s",
                365 * 86_400 + 17 * 86_400 + 4 * 3_600 + 5 * 60 + 6,
            ),
            (" 7d\n", 7 * 86_400),
            ("0s", 0),
            ("007d", 7 * 86_400),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_display_canonically() {
        let cases = [
            ("90d", "90d"),
            ("7d", "7d"),
            ("2w", "14d"),
            ("36h", "1d12h"),
            ("1y2w", "1y14d"),
            ("90min", "1h30min"),
            ("0d", "0s"),
            ("400d", "1y35d"),
        ];
        for (text, shown) in cases {
            assert_eq!(dur(text).to_string(), shown, "{text}");
        }
        assert_eq!(
            HumanDuration::from(Duration::from_millis(1_500)),
            HumanDuration::from_secs(1)
        );
    }

    #[test]
    fn duration_errors_say_what_is_wrong() {
        let cases = [
            ("", "empty duration"),
            ("   ", "empty duration"),
            ("d", "expected a whole number at \"d\""),
            ("-1d", "expected a whole number at \"-1d\""),
            ("7", "7 has no unit"),
            ("1d12", "12 has no unit"),
            ("30m", "\"m\" is ambiguous"),
            ("1mo", "months are not a fixed length"),
            ("7D", "unknown unit \"D\""),
            ("7days", "unknown unit \"days\""),
            ("1h1d", "largest to smallest"),
            ("1d1d", "largest to smallest"),
            ("1.5d", "unexpected '.' after 1"),
            ("1d 12h", "no spaces inside a duration"),
            ("1 d", "unexpected ' ' after 1"),
            ("99999999999999999999d", "too large"),
            ("600000000000y", "too large"),
            ("7d\u{e9}", "expected a whole number at \"\u{e9}\""),
        ];
        for (text, needle) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains("duration"), "{text:?}: {err}");
        }
    }

    #[test]
    fn duration_serde_reads_and_writes_text() {
        let d: HumanDuration = serde_json::from_str("\"90d\"").unwrap();
        assert_eq!(d, dur("90d"));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"90d\"");
        let err = serde_json::from_str::<HumanDuration>("\"30m\"").unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
    }

    proptest! {
        #[test]
        fn duration_display_parses_back(secs in 0u64..u64::MAX) {
            let d = HumanDuration::from_secs(secs);
            prop_assert_eq!(d.to_string().parse::<HumanDuration>(), Ok(d));
        }

        #[test]
        fn duration_composition_adds_up(
            parts in proptest::collection::vec(proptest::option::of(0u64..1_000), 6),
        ) {
            let mut text = String::new();
            let mut secs = 0;
            for (part, (unit, size)) in parts.iter().zip(UNITS) {
                if let Some(n) = part {
                    text.push_str(&format!("{n}{unit}"));
                    secs += n * size;
                }
            }
            prop_assume!(!text.is_empty());
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(secs)));
        }
    }
}
