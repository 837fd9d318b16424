//! From a loaded [`Config`] to what the daemon runs ([`Setup`]): tokens with
//! their secrets read, each service's schedule entries, job settings and
//! job inputs, the API's limits.
//!
//! The daemon depends on the config here, not the other way round.

use std::sync::Arc;
use std::time::Duration;

use super::jobs::{DrillSpec, ServiceJobs};
use super::records::JobKind;
use super::runner::{JobSettings, Limits};
use super::scheduler::Entry;
use super::state::{ServiceInfo, Token};
use super::{ApiSetup, ServiceSetup, Setup};
use crate::config::{Config, StandbyMode};
use crate::duration::HumanDuration;
use crate::{Error, Result};

impl Setup {
    /// What the daemon runs. Reads the API tokens' and notification
    /// channels' secrets.
    ///
    /// # Errors
    /// [`Error::Usage`] when a token secret cannot be read or is too short,
    /// or a service names an unknown tenant or target; TLS files that do
    /// not load.
    pub fn from_config(cfg: &Config) -> Result<Setup> {
        Self::build(cfg, true)
    }

    /// As [`Setup::from_config`] without API tokens, notifications or TLS (no secret
    /// read): for `status` and `catalog rebuild`, which need the services
    /// only.
    ///
    /// # Errors
    /// As [`Setup::from_config`].
    pub fn services_only(cfg: &Config) -> Result<Setup> {
        Self::build(cfg, false)
    }

    fn build(cfg: &Config, with_tokens: bool) -> Result<Setup> {
        let mut tokens = Vec::new();
        for t in cfg.tokens.iter().filter(|_| with_tokens) {
            let secret = t.secret.text(&format!("token {} secret", t.name))?;
            if secret.len() < 16 {
                return Err(Error::Usage(format!(
                    "token {}: the secret is shorter than 16 characters",
                    t.name
                )));
            }
            tokens.push(Token::new(&t.name, t.role.clone(), &secret));
        }
        let mut services = Vec::new();
        for s in &cfg.services {
            let tenant = cfg
                .tenant(&s.tenant)
                .ok_or_else(|| Error::Usage(format!("unknown tenant {}", s.tenant)))?;
            let repo = cfg
                .repo(&s.target, tenant)
                .ok_or_else(|| Error::Usage(format!("unknown target {}", s.target)))?;
            let standby = s.standby.as_ref().and_then(|(t, _)| cfg.repo(t, tenant));
            let mut entries = vec![
                (JobKind::Backup, s.schedule.clone()),
                (JobKind::Retention, s.retention_schedule.clone()),
                (JobKind::Check, s.check.0.clone()),
            ];
            if let Some((d, _)) = &s.drill {
                entries.push((JobKind::Drill, d.clone()));
            }
            if let Some((_, StandbyMode::Cold)) = &s.standby {
                entries.push((JobKind::Replicate, s.retention_schedule.clone()));
            }
            services.push(ServiceSetup {
                info: ServiceInfo {
                    tenant: s.tenant.clone(),
                    name: s.name.clone(),
                    class: s.class.clone(),
                    target: s.target.clone(),
                    standby: s.standby.as_ref().map(|(t, m)| {
                        (
                            t.clone(),
                            if *m == StandbyMode::Hot {
                                "hot"
                            } else {
                                "cold"
                            }
                            .to_string(),
                        )
                    }),
                    rpo: s.rpo,
                    restore_window: s.restore_window.map(HumanDuration::as_std),
                    schedule: Some(Arc::new(s.schedule.clone())),
                    schedule_text: s.schedule.to_string(),
                },
                settings: JobSettings {
                    target: s.target.clone(),
                    timeout: s.timeout,
                    retries: s.retries,
                    backoff: s.backoff,
                    max_backoff: Duration::from_secs(3600),
                    replicate_after_backup: matches!(s.standby, Some((_, StandbyMode::Hot))),
                },
                jobs: ServiceJobs {
                    tenant: s.tenant.clone(),
                    service: s.name.clone(),
                    repo,
                    standby,
                    source: s.source.clone(),
                    pre_hook: s.pre_hook.clone(),
                    post_hook: s.post_hook.clone(),
                    compression_level: s.compression,
                    retention: s.retention.clone(),
                    rpo: s.rpo,
                    prune: crate::commands::prune::PruneOptions {
                        grace: s.prune_grace,
                        ..Default::default()
                    },
                    check_subset: s.check.1,
                    drill: s.drill.as_ref().map(|(_, checks)| DrillSpec {
                        check: checks.command.clone(),
                        sql: checks.sql.clone(),
                        run_as: checks.run_as.clone(),
                        rto: s.rto.unwrap_or(Duration::from_secs(86_400)),
                        scratch_root: cfg.scratch_dir.clone(),
                    }),
                },
                entries: entries
                    .into_iter()
                    .map(|(kind, sch)| Entry {
                        tenant: s.tenant.clone(),
                        service: s.name.clone(),
                        kind,
                        schedule: Arc::new(sch),
                        jitter: s.jitter,
                        catch_up: cfg.catch_up,
                    })
                    .collect(),
            });
        }
        Ok(Setup {
            state_dir: cfg.state_dir.clone(),
            restore_root: cfg.restore_root.clone(),
            restore_concurrency: cfg.restore_concurrency,
            job_history: cfg.job_history,
            listen: cfg.listen,
            api: ApiSetup {
                server: super::http::ServerOptions {
                    max_connections: cfg.max_connections,
                    header_timeout: cfg.header_timeout,
                    request_timeout: cfg.request_timeout,
                    tls: match (&cfg.tls, with_tokens) {
                        (Some((c, k)), true) => Some(super::http::tls_config(c, k)?),
                        _ => None,
                    },
                },
                metrics_listen: cfg.metrics_listen,
                restores_per_tenant: cfg.restores_per_tenant,
                restore_retention: cfg.restore_retention,
            },
            limits: Limits {
                global: cfg.max_jobs,
                per_target: cfg
                    .targets
                    .iter()
                    .filter_map(|t| t.max_jobs.map(|n| (t.name.clone(), n)))
                    .collect(),
            },
            tokens,
            services,
            notify: if with_tokens {
                super::notify::load(&cfg.notify)?
            } else {
                Vec::new()
            },
            config: Some(Arc::new(cfg.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_hot_standby_replicates_after_each_backup_into_the_tenants_repository() {
        let c = Config::parse(
            Path::new("custos.toml"),
            r#"
[daemon]
state_dir = "/tmp/custos-state"

[[target]]
name = "par2"
url = "file:///srv/backup/par2"
region = "eu-west-par"
zone = "par2"

[[target]]
name = "fra1"
url = "s3://backups-fra1/custos"
region = "eu-central-fra"
zone = "fra1"

[[tenant]]
id = "acme"
password_file = "/etc/custos/keys/acme.pass"

[[service]]
tenant = "acme"
name = "svc"
class = "staas-standard"
zone = "par1"
target = "par2"
source = { paths = ["/srv/data"] }
standby_target = "fra1"
standby = "hot"
"#,
        )
        .unwrap();
        let setup = Setup::from_config(&c).unwrap();
        assert!(setup.services[0].settings.replicate_after_backup);
        assert_eq!(
            setup.services[0].jobs.repo.url,
            "file:///srv/backup/par2/acme"
        );
    }
}
