//! Cron expressions as operators write them, checked field by field and
//! turned into what the `cron` crate evaluates.
//!
//! Accepted: the usual five fields (`min hour day-of-month month
//! day-of-week`), six with seconds first, seven with a year last, and the
//! macros `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`,
//! `@yearly` (`@annually`). Each field is a comma-separated list of `*`,
//! `N`, `A-B`, each optionally followed by `/STEP`; months and days of the
//! week also take their English names (`jan`, `mon`, ...).
//!
//! Days of the week are numbered as in Unix cron (crontab(5)): 0 to 7, where
//! 0 and 7 are Sunday and 1 is Monday. The `cron` crate numbers them 1 to 7
//! from Sunday (Quartz), so a Unix `1-5` would run Sunday to Thursday there:
//! the day-of-week field is therefore handed over as day names, never as
//! numbers.
//!
//! Every error is one sentence naming the field, the value and the allowed
//! range.

/// One field's name and inclusive range.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names accepted for values (index + `min` is the value).
    names: &'static [&'static str],
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 8] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day of the month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
};
const DAY_OF_WEEK: Field = Field {
    name: "day of the week",
    min: 0,
    max: 7,
    names: &DAYS,
};
const YEAR: Field = Field {
    name: "year",
    min: 1970,
    max: 2099,
    names: &[],
};

/// The macros and the six-field expressions they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * 0"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
];

/// Checks `expr` and returns it in the `cron` crate's syntax (six or seven
/// fields, days of the week as names).
///
/// # Errors
/// One sentence saying what is wrong, naming the field and its range.
pub(crate) fn normalize(expr: &str) -> Result<String, String> {
    let trimmed = expr.trim();
    let expanded;
    let text = if trimmed.starts_with('@') {
        let lower = trimmed.to_ascii_lowercase();
        expanded = MACROS
            .iter()
            .find(|(m, _)| *m == lower)
            .map(|(_, e)| *e)
            .ok_or_else(|| {
                format!(
                    "{trimmed:?} is not a schedule macro: use @hourly, @daily, @weekly, @monthly or @yearly"
                )
            })?;
        expanded
    } else {
        trimmed
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let fields: &[&Field] = match parts.len() {
        5 => &[&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
        6 => &[&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
        7 => &[
            &SECOND,
            &MINUTE,
            &HOUR,
            &DAY_OF_MONTH,
            &MONTH,
            &DAY_OF_WEEK,
            &YEAR,
        ],
        n => {
            return Err(format!(
                "has {n} field{}, where 5 (minute hour day-of-month month day-of-week), 6 (seconds first) or 7 (a year last) are expected, or a macro such as @daily",
                if n == 1 { "" } else { "s" }
            ))
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(7);
    if parts.len() == 5 {
        out.push("0".into());
    }
    for (text, field) in parts.iter().zip(fields) {
        let values = values_of(text, field)?;
        out.push(if std::ptr::eq(*field, &DAY_OF_WEEK) {
            day_names(text, &values)
        } else if *text == "?" {
            "*".into()
        } else {
            text.to_ascii_lowercase()
        });
    }
    Ok(out.join(" "))
}

/// The set of values `text` selects in `field` (indexed from 0 = `field.min`).
fn values_of(text: &str, field: &Field) -> Result<Vec<bool>, String> {
    let span = (field.max - field.min + 1) as usize;
    let mut set = vec![false; span];
    if text == "?" && (std::ptr::eq(field, &DAY_OF_MONTH) || std::ptr::eq(field, &DAY_OF_WEEK)) {
        set.iter_mut().for_each(|v| *v = true);
        return Ok(set);
    }
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{} field {text:?} has an empty item", field.name));
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => {
                let step: u32 = s.parse().map_err(|_| {
                    format!(
                        "{} field {text:?}: step {s:?} is not a whole number",
                        field.name
                    )
                })?;
                if step == 0 || step > field.max - field.min + 1 {
                    return Err(format!(
                        "{} field {text:?}: step {step} must be between 1 and {}",
                        field.name,
                        field.max - field.min + 1
                    ));
                }
                (b, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if base == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(a, field, text)?, value(b, field, text)?);
            // Sunday as 7 closes a range (`5-7`); as 0 it cannot.
            let b = if std::ptr::eq(field, &DAY_OF_WEEK) && b == 0 && a > 0 {
                7
            } else {
                b
            };
            if a > b {
                return Err(format!(
                    "{} field {text:?}: range {base:?} runs backwards",
                    field.name
                ));
            }
            (a, b)
        } else {
            let a = value(base, field, text)?;
            // `N/STEP` runs from N to the field's end, as in Vixie cron.
            (a, if item.contains('/') { field.max } else { a })
        };
        let mut v = lo;
        while v <= hi {
            set[(v - field.min) as usize] = true;
            v += step;
        }
    }
    Ok(set)
}

/// One value of `field`: a number in range or one of its names.
fn value(s: &str, field: &Field, whole: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        if n < field.min || n > field.max {
            return Err(format!(
                "{} {n} is out of range: {} to {}{}",
                field.name,
                field.min,
                field.max,
                if std::ptr::eq(field, &DAY_OF_WEEK) {
                    " (0 and 7 are Sunday)"
                } else {
                    ""
                }
            ));
        }
        return Ok(n);
    }
    let lower = s.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        return Ok(field.min + i as u32);
    }
    let digits_then = |suffix: char| {
        lower.len() > 1
            && lower.ends_with(suffix)
            && lower[..lower.len() - 1].chars().all(|c| c.is_ascii_digit())
    };
    if lower.contains('#') || lower == "l" || lower == "lw" || digits_then('l') || digits_then('w')
    {
        return Err(format!(
            "{} field {whole:?}: {s:?} (last day, nearest weekday, nth weekday) is not supported",
            field.name
        ));
    }
    Err(if field.names.is_empty() {
        format!(
            "{} field {whole:?}: {s:?} is not a number from {} to {}",
            field.name, field.min, field.max
        )
    } else {
        format!(
            "{} field {whole:?}: {s:?} is neither a number from {} to {} nor a name such as {}",
            field.name, field.min, field.max, field.names[1]
        )
    })
}

/// The day-of-week field as the `cron` crate must see it: `*` when every
/// day is chosen, otherwise the chosen days by name.
fn day_names(text: &str, set: &[bool]) -> String {
    // 0 and 7 are both Sunday.
    let days: Vec<&str> = (0..7)
        .filter(|&d| set[d] || (d == 0 && set[7]))
        .map(|d| DAYS[d])
        .collect();
    if text == "*" || text == "?" || days.len() == 7 {
        "*".into()
    } else {
        days.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn five_fields_get_seconds_and_days_become_names() {
        assert_eq!(
            normalize("30 2 * * 1-5").unwrap(),
            "0 30 2 * * mon,tue,wed,thu,fri"
        );
        assert_eq!(normalize("0 1 * * 0").unwrap(), "0 0 1 * * sun");
        assert_eq!(normalize("0 1 * * 7").unwrap(), "0 0 1 * * sun");
        assert_eq!(normalize("0 1 * * 5-7").unwrap(), "0 0 1 * * sun,fri,sat");
        assert_eq!(
            normalize("0 1 * * fri-sun").unwrap(),
            "0 0 1 * * sun,fri,sat"
        );
        assert_eq!(normalize("0 0 6 * * Sat").unwrap(), "0 0 6 * * sat");
        assert_eq!(normalize("*/15 * * * *").unwrap(), "0 */15 * * * *");
        assert_eq!(normalize("0 0 0 1 1 * 2030").unwrap(), "0 0 0 1 1 * 2030");
        assert_eq!(normalize("0 0 1 ? * *").unwrap(), "0 0 1 * * *");
    }

    #[test]
    fn macros() {
        assert_eq!(normalize("@daily").unwrap(), "0 0 0 * * *");
        assert_eq!(normalize("@HOURLY").unwrap(), "0 0 * * * *");
        assert_eq!(normalize("@weekly").unwrap(), "0 0 0 * * sun");
        assert_eq!(normalize("@monthly").unwrap(), "0 0 0 1 * *");
        assert_eq!(normalize("@annually").unwrap(), "0 0 0 1 1 *");
        let e = normalize("@often").unwrap_err();
        assert!(e.contains("@daily"), "{e}");
    }

    #[test]
    fn errors_are_one_line_with_the_right_limits() {
        let cases = [
            ("0 25 * * *", "hour 25 is out of range: 0 to 23"),
            ("60 1 * * *", "minute 60 is out of range: 0 to 59"),
            (
                "0 0 0 32 * *",
                "day of the month 32 is out of range: 1 to 31",
            ),
            ("0 0 * * 8", "day of the week 8 is out of range: 0 to 7"),
            ("0 0 1 13 *", "month 13 is out of range: 1 to 12"),
            ("0 0 * * * * 1900", "year 1900 is out of range"),
            ("0 5-2 * * *", "range \"5-2\" runs backwards"),
            ("0 */0 * * *", "step 0 must be between 1 and 24"),
            ("0 1 * * mon#2", "is not supported"),
            ("0 1 L * *", "is not supported"),
            ("0 x * * *", "\"x\" is not a number from 0 to 23"),
            ("0 1 * * funday", "nor a name such as mon"),
            ("* * *", "has 3 fields"),
            ("every day", "has 2 fields"),
            ("0 1,,2 * * *", "empty item"),
        ];
        for (expr, want) in cases {
            let e = normalize(expr).unwrap_err();
            assert!(e.contains(want), "{expr}: {e}");
            assert!(!e.contains('\n'), "{expr}: {e}");
        }
        // 23 is a valid hour.
        assert!(normalize("0 23 * * *").is_ok());
    }

    proptest! {
        /// Every accepted expression is also accepted by the `cron` crate,
        /// and every valid single value survives.
        #[test]
        fn accepted_expressions_parse(
            m in 0u32..60, h in 0u32..24, d in 1u32..32, mo in 1u32..13, w in 0u32..8,
            step in 1u32..13,
        ) {
            for e in [
                format!("{m} {h} {d} {mo} {w}"),
                format!("{m} {h} * * {w}"),
                format!("*/{step} {h} * {mo} *"),
                format!("{m} {h}-23 * * {w}-7"),
            ] {
                let n = normalize(&e).map_err(|x| TestCaseError::fail(format!("{e}: {x}")))?;
                prop_assert!(n.parse::<cron::Schedule>().is_ok(), "{e} -> {n}");
            }
        }

        /// Arbitrary text never panics.
        #[test]
        fn arbitrary_text_is_refused_or_parses(s in "\\PC{0,40}") {
            if let Ok(n) = normalize(&s) {
                prop_assert!(n.parse::<cron::Schedule>().is_ok(), "{s:?} -> {n}");
            }
        }
    }
}
