//! Restore windows: how far back a partner may ask to restore.
//!
//! The window is separate from retention (POLICIES.md): a snapshot older than
//! the window may still exist (a legal hold, a longer retention), but a
//! request for it is refused, with the window and the date asked for, so the
//! service desk can explain the refusal.

use jiff::{SignedDuration, Timestamp};

use crate::duration::HumanDuration;

/// Why a restore request falls outside the window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {asked} is outside the {window} restore window of this service: restores reach back to {oldest}")]
pub struct OutsideWindow {
    /// "snapshot of" or "point in time".
    pub what: &'static str,
    /// The time asked for.
    pub asked: Timestamp,
    /// The window.
    pub window: HumanDuration,
    /// The oldest time the window allows now.
    pub oldest: Timestamp,
}

impl From<OutsideWindow> for crate::Error {
    /// A policy refusal: exit code 1, 422 from the API.
    fn from(e: OutsideWindow) -> Self {
        crate::Error::Refused(e.to_string())
    }
}

/// The oldest time `window` allows at `now`.
pub(crate) fn oldest(window: HumanDuration, now: Timestamp) -> Timestamp {
    SignedDuration::try_from(window.as_std())
        .ok()
        .and_then(|d| now.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

/// Checks a request: the point in time asked for (`at`, if any) and the
/// snapshot it resolved to must both be within `window` of `now`. No window
/// means every kept snapshot may be restored.
///
/// # Errors
/// [`OutsideWindow`] naming the window and the time asked for.
pub(crate) fn check(
    window: Option<HumanDuration>,
    at: Option<Timestamp>,
    snapshot_time: Timestamp,
    now: Timestamp,
) -> Result<(), OutsideWindow> {
    let Some(window) = window.filter(|w| !w.is_zero()) else {
        return Ok(());
    };
    let oldest = oldest(window, now);
    if let Some(at) = at.filter(|a| *a < oldest) {
        return Err(OutsideWindow {
            what: "point in time",
            asked: at,
            window,
            oldest,
        });
    }
    if snapshot_time < oldest {
        return Err(OutsideWindow {
            what: "snapshot of",
            asked: snapshot_time,
            window,
            oldest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ninety_days_back_and_no_further() {
        let w: HumanDuration = "90d".parse().unwrap();
        let now = t("2026-11-22T10:00:00Z");
        assert_eq!(oldest(w, now), t("2026-08-24T10:00:00Z"));
        assert!(check(Some(w), None, t("2026-08-24T10:00:00Z"), now).is_ok());
        let e = check(Some(w), None, t("2026-08-24T09:59:59Z"), now).unwrap_err();
        assert_eq!(
            e.to_string(),
            "snapshot of 2026-08-24T09:59:59Z is outside the 90d restore window of this service: restores reach back to 2026-08-24T10:00:00Z"
        );
        // A point in time before the window is refused even if a newer
        // snapshot would be picked.
        let e = check(
            Some(w),
            Some(t("2026-06-01T00:00:00Z")),
            t("2026-09-01T00:00:00Z"),
            now,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("point in time 2026-06-01T00:00:00Z"),
            "{e}"
        );
        assert!(check(
            None,
            Some(t("2000-01-01T00:00:00Z")),
            t("2000-01-01T00:00:00Z"),
            now
        )
        .is_ok());
    }
}
