//! Service classes and their defaults, from `POLICIES.md` (the catalogue's
//! promises, and our defaults where it leaves them open). Every value can be
//! overridden per service.

/// The defaults of one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassDefaults {
    /// Class name.
    pub name: &'static str,
    /// Backup schedule (cron with seconds, in the service's time zone).
    pub schedule: &'static str,
    /// keep-hourly, keep-daily, keep-weekly, keep-monthly.
    pub keep: [Option<u32>; 4],
    /// keep-within (caas: 90 days).
    pub keep_within: Option<&'static str>,
    /// Restore window (`None`: every kept snapshot).
    pub restore_window: Option<&'static str>,
    /// RTO, when the catalogue gives one.
    pub rto: Option<&'static str>,
    /// DR drill schedule (dbaas: monthly).
    pub drill: Option<&'static str>,
}

/// Daily at 01:00 local (POLICIES.md: "daily, 01:00 local *default*").
const DAILY: &str = "0 0 1 * * *";

/// Every class.
pub(crate) const CLASSES: [ClassDefaults; 7] = [
    // SV08.01: 1 per day, 7 daily; long_term: up to one year.
    ClassDefaults {
        name: "vmaas-standard",
        schedule: DAILY,
        keep: [None, Some(7), None, None],
        keep_within: None,
        restore_window: None,
        rto: None,
        drill: None,
    },
    // SV08.02: as vmaas-standard.
    ClassDefaults {
        name: "vmaas-custom",
        schedule: DAILY,
        keep: [None, Some(7), None, None],
        keep_within: None,
        restore_window: None,
        rto: None,
        drill: None,
    },
    // SV08.03: daily, 7 daily, DR drill monthly (default: the 1st at 04:00).
    ClassDefaults {
        name: "dbaas",
        schedule: DAILY,
        keep: [None, Some(7), None, None],
        keep_within: None,
        restore_window: None,
        rto: None,
        drill: Some("0 0 4 1 * *"),
    },
    // SV08.04 critical: hourly; 24 hourly, 14 daily, 8 weekly, 12 monthly.
    ClassDefaults {
        name: "staas-critical",
        schedule: "0 0 * * * *",
        keep: [Some(24), Some(14), Some(8), Some(12)],
        keep_within: None,
        restore_window: None,
        rto: None,
        drill: None,
    },
    // SV08.04 standard: daily; 7 daily, 4 weekly, 12 monthly.
    ClassDefaults {
        name: "staas-standard",
        schedule: DAILY,
        keep: [None, Some(7), Some(4), Some(12)],
        keep_within: None,
        restore_window: None,
        rto: None,
        drill: None,
    },
    // SV08.04 low priority: weekly (Sunday 01:00); 8 weekly.
    ClassDefaults {
        name: "staas-low",
        schedule: "0 0 1 * * Sun",
        keep: [None, None, Some(8), None],
        keep_within: None,
        restore_window: None,
        rto: None,
        drill: None,
    },
    // SV08.05: daily by default; 90 days kept and restorable; RTO 1 day.
    ClassDefaults {
        name: "caas",
        schedule: DAILY,
        keep: [None, None, None, None],
        keep_within: Some("90d"),
        restore_window: Some("90d"),
        rto: Some("1d"),
        drill: None,
    },
];

/// The defaults of class `name`.
pub(crate) fn class(name: &str) -> Option<&'static ClassDefaults> {
    CLASSES.iter().find(|c| c.name == name)
}

/// Class names, for error messages.
pub(crate) fn names() -> String {
    CLASSES
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_promises() {
        let vm = class("vmaas-standard").unwrap();
        assert_eq!(vm.keep[1], Some(7), "7 daily");
        assert_eq!(class("dbaas").unwrap().drill, Some("0 0 4 1 * *"));
        let caas = class("caas").unwrap();
        assert_eq!(
            (caas.keep_within, caas.restore_window, caas.rto),
            (Some("90d"), Some("90d"), Some("1d"))
        );
        assert_eq!(
            class("staas-critical").unwrap().keep,
            [Some(24), Some(14), Some(8), Some(12)]
        );
        assert_eq!(
            class("staas-standard").unwrap().keep,
            [None, Some(7), Some(4), Some(12)]
        );
        assert_eq!(
            class("staas-low").unwrap().keep,
            [None, None, Some(8), None]
        );
        assert!(class("gold").is_none());
        for c in &CLASSES {
            crate::policy::schedule::CronSchedule::new(c.schedule, "Europe/Paris").unwrap();
        }
    }
}
