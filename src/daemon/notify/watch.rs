//! The states that are not the end of a job: a service's RPO (breached,
//! recovered) and a tenant's erasure (due, overdue). Read each round; an
//! event is sent once when a state is entered, and the catalog's `notices`
//! table remembers it (`<tenant>/<service>/rpo`, `<tenant>/erasure-due`,
//! `<tenant>/erasure-overdue`, each with the time it was sent), so neither
//! the next round nor a restart sends it again.

use jiff::Timestamp;

use super::{Event, Notifier};
use crate::catalog::Table;
use crate::config::notify::EventKind;
use crate::daemon::state::{RpoState, State};
use crate::erasure::ErasureState;
use crate::Result;

fn notices(state: &State) -> Table<str, String> {
    state.catalog.table("notices")
}

/// One round at `now`: sends what changed. Returns the events sent.
///
/// # Errors
/// Catalog errors (the next round tries again).
pub(crate) fn watch(state: &State, notifier: &Notifier, now: Timestamp) -> Result<Vec<Event>> {
    let _one_round = notifier
        .round
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let memory = notices(state);
    let stamp = crate::util::stamp(now);
    let mut sent = Vec::new();
    for s in state.services().iter() {
        let status = state.status(s)?;
        let key = format!("{}/{}/rpo", s.tenant, s.name);
        let told = memory.get(&key)?.is_some();
        let rpo = crate::duration::HumanDuration::from_secs(status.rpo_secs);
        let event = match (status.rpo_state, told) {
            (RpoState::Breached, false) => {
                memory.put(&key, &stamp)?;
                let why = match (&status.last_good_snapshot, status.age_secs) {
                    (Some(t), Some(age)) => format!(
                        "its newest complete snapshot ({t}) is {} old",
                        crate::duration::HumanDuration::from_secs(age)
                    ),
                    _ => "it has no complete snapshot".to_string(),
                };
                Event::new(
                    EventKind::RpoBreached,
                    Some(&s.tenant),
                    Some(&s.name),
                    format!("{}/{} breached its RPO of {rpo}: {why}", s.tenant, s.name),
                    serde_json::to_value(&status).unwrap_or_default(),
                )
            }
            (RpoState::InTime, true) => {
                memory.remove(&key)?;
                Event::new(
                    EventKind::RpoRecovered,
                    Some(&s.tenant),
                    Some(&s.name),
                    format!(
                        "{}/{} is within its RPO of {rpo} again: newest complete snapshot {}",
                        s.tenant,
                        s.name,
                        status.last_good_snapshot.as_deref().unwrap_or("?")
                    ),
                    serde_json::to_value(&status).unwrap_or_default(),
                )
            }
            _ => continue,
        };
        notifier.send(&event);
        sent.push(event);
    }
    for r in state.catalog.erasures()? {
        if r.state == ErasureState::Erased {
            continue;
        }
        let due = r.due.parse::<Timestamp>().is_ok_and(|d| d <= now);
        let checks = [
            (
                EventKind::ErasureDue,
                due && r.state == ErasureState::NoticeGiven,
                format!(
                    "the notice period of tenant {} ended ({}): its erasure starts now, to be done by {}",
                    r.tenant, r.due, r.deadline
                ),
            ),
            (
                EventKind::ErasureOverdue,
                r.overdue(now),
                format!(
                    "tenant {} is not erased and its erasure deadline ({}) has passed: {}",
                    r.tenant,
                    r.deadline,
                    match r.state {
                        ErasureState::Erasing => "the erasure started and has not completed",
                        _ => "the erasure has not started (is daemon.certificate_key set?)",
                    }
                ),
            ),
        ];
        for (kind, now_true, summary) in checks {
            let key = format!("{}/{}", r.tenant, kind.name());
            if !now_true || memory.get(&key)?.is_some() {
                continue;
            }
            memory.put(&key, &stamp)?;
            let e = Event::new(
                kind,
                Some(&r.tenant),
                None,
                summary,
                serde_json::to_value(&r).unwrap_or_default(),
            );
            notifier.send(&e);
            sent.push(e);
        }
    }
    Ok(sent)
}
