use super::*;

const BASE: &str = r#"
[daemon]
state_dir = "/tmp/custos-state"
time_zone = "Europe/Paris"

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
"#;

fn load(extra: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("custos.toml"), &format!("{BASE}{extra}"))
}

fn service(class: &str, more: &str) -> String {
    format!(
        r#"
[[service]]
tenant = "acme"
name = "svc"
class = "{class}"
zone = "par1"
target = "par2"
source = {{ paths = ["/srv/data"] }}
{more}
"#
    )
}

fn errors(extra: &str) -> Vec<(String, String)> {
    load(extra).unwrap_err().errors
}

#[test]
fn class_defaults_are_applied() {
    let c = load(&service("vmaas-standard", "")).unwrap();
    let s = &c.services[0];
    assert_eq!(s.retention.keep_daily, Some(7));
    assert_eq!(s.retention.keep_monthly, None);
    assert_eq!(s.schedule.expr(), "0 0 1 * * *");
    assert_eq!(s.schedule.time_zone(), "Europe/Paris");
    assert_eq!(s.rpo, Duration::from_secs(26 * 3600), "one day + 2 h");
    assert!(s.restore_window.is_none());
    assert!(s.drill.is_none());

    let c = load(&service("vmaas-standard", "long_term = true")).unwrap();
    assert_eq!(
        c.services[0].retention.keep_monthly,
        Some(12),
        "up to one year"
    );

    let c = load(&service("caas", "")).unwrap();
    let s = &c.services[0];
    assert_eq!(s.retention.keep_within.unwrap().to_string(), "90d");
    assert_eq!(s.restore_window.unwrap().to_string(), "90d");
    assert_eq!(s.rto, Some(Duration::from_secs(86_400)));

    let c = load(&service("dbaas", "")).unwrap();
    assert_eq!(
        c.services[0].drill.as_ref().unwrap().0.expr(),
        "0 0 4 1 * *"
    );

    let c = load(&service("staas-critical", "")).unwrap();
    let s = &c.services[0];
    assert_eq!(
        (
            s.retention.keep_hourly,
            s.retention.keep_daily,
            s.retention.keep_weekly,
            s.retention.keep_monthly
        ),
        (Some(24), Some(14), Some(8), Some(12))
    );
    assert_eq!(s.rpo, Duration::from_secs(3 * 3600), "hourly + 2 h");
    let c = load(&service("staas-low", "")).unwrap();
    assert_eq!(c.services[0].retention.keep_weekly, Some(8));
}

#[test]
fn overrides_replace_the_class_rules() {
    let c = load(&service(
        "staas-standard",
        r#"schedule = "0 15 3 * * *"
time_zone = "Europe/Brussels"
retention = { keep_daily = 3, keep_tags = ["pre-change"] }
restore_window = "30d"
compression = 9
standby_target = "fra1"
standby = "hot"
hooks = { pre = ["fsfreeze", "-f", "/srv/data"], post = ["fsfreeze", "-u", "/srv/data"], timeout = "2min" }
"#,
    ))
    .unwrap();
    let s = &c.services[0];
    assert_eq!(s.schedule.expr(), "0 15 3 * * *");
    assert_eq!(s.retention.keep_daily, Some(3));
    assert_eq!(
        s.retention.keep_weekly, None,
        "the service's rules replace the class's"
    );
    assert_eq!(s.retention.keep_tags, ["pre-change"]);
    assert_eq!(s.restore_window.unwrap().to_string(), "30d");
    assert_eq!(s.compression, 9);
    assert_eq!(s.standby, Some(("fra1".to_string(), StandbyMode::Hot)));
    assert_eq!(
        s.pre_hook.as_ref().unwrap().timeout,
        Duration::from_secs(120)
    );
}

#[test]
fn unknown_keys_are_refused_with_line_and_name() {
    let e = load(&service("dbaas", "retension = { keep_daily = 3 }")).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("custos.toml: line "), "{text}");
    assert!(text.contains("unknown field `retension`"), "{text}");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let errs = errors(&format!(
        "{}{}",
        service(
            "vmaas-standard",
            r#"schedule = "0 0 25 * * *"
rpo = "a day""#
        ),
        r#"
[[service]]
tenant = "globex"
name = "web"
class = "caas"
zone = "par1"
target = "par2"
source = { paths = ["/srv/www"] }

[[service]]
tenant = "acme"
name = "db"
class = "gold"
zone = "par1"
target = "nowhere"
source = { command = ["pg_dump", "app"] }
"#
    ));
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"service[0] (acme/svc).schedule"), "{errs:?}");
    assert!(keys.contains(&"service[0] (acme/svc).rpo"), "{errs:?}");
    assert!(keys.contains(&"service[1] (globex/web).tenant"), "{errs:?}");
    assert!(keys.contains(&"service[2] (acme/db).class"), "{errs:?}");
    let bad_rpo = errs.iter().find(|(k, _)| k.ends_with(".rpo")).unwrap();
    assert!(bad_rpo.1.contains("bad duration \"a day\""), "{bad_rpo:?}");
}

#[test]
fn placement_rules() {
    // Same zone as the workload.
    let errs = errors(&service("vmaas-standard", "").replace("zone = \"par1\"", "zone = \"par2\""));
    assert!(
        errs.iter()
            .any(|(k, r)| k.ends_with(".target")
                && r.contains("the workload's own availability zone")),
        "{errs:?}"
    );
    // Outside the EU.
    let errs = errors(&format!(
        "{}\n[[target]]\nname = \"us\"\nurl = \"s3://b/p\"\nregion = \"us-east-1\"\nzone = \"use1-az1\"\n",
        service("vmaas-standard", "")
    ));
    assert!(
        errs.iter().any(|(k, r)| k.contains("target[2] (us).region")
            && r.contains("outside the allowed regions")),
        "{errs:?}"
    );
    // Unknown target.
    let errs =
        errors(&service("vmaas-standard", "").replace("target = \"par2\"", "target = \"mars\""));
    assert!(
        errs.iter()
            .any(|(_, r)| r.contains("unknown target \"mars\"")),
        "{errs:?}"
    );
    // Standby in the workload's zone.
    let errs = errors(
        &service("vmaas-standard", "standby_target = \"fra1\"")
            .replace("zone = \"par1\"", "zone = \"fra1\""),
    );
    assert!(
        errs.iter().any(|(k, _)| k.ends_with(".standby_target")),
        "{errs:?}"
    );
}

#[test]
fn tokens_never_inline_and_partners_need_a_tenant() {
    let errs = errors("[[daemon.token]]\nname = \"p\"\nrole = \"partner\"\nsecret_env = \"X\"\n");
    assert!(
        errs.iter().any(|(_, r)| r.contains("needs `tenant`")),
        "{errs:?}"
    );
    let e = load("[[daemon.token]]\nname = \"p\"\nrole = \"operator\"\nsecret = \"hunter2\"\n")
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `secret`"), "{e}");
}

#[test]
fn next_runs_are_listed_in_local_time() {
    let c = load(&service("vmaas-standard", "")).unwrap();
    let r = c.report("2026-03-27T12:00:00Z".parse().unwrap(), 3);
    assert_eq!(
        r[0].next_runs,
        [
            "2026-03-28T01:00:00+01:00",
            "2026-03-29T01:00:00+01:00",
            "2026-03-30T01:00:00+02:00"
        ]
    );
}

#[test]
fn a_share_source_takes_the_exclusion_rules() {
    let share = r#"
[[service]]
tenant = "acme"
name = "share"
class = "staas-standard"
zone = "par1"
target = "par2"
source = { paths = ["/mnt/share"], one_file_system = true, exclude_caches = true, exclude_larger_than = "2G", exclude_if_present = [".nobackup"] }
"#;
    let c = load(share).unwrap();
    match &c.services[0].source {
        SourceSpec::Paths { exclude, .. } => {
            assert!(exclude.one_file_system && exclude.caches);
            assert_eq!(exclude.larger_than, Some(2 << 30));
            assert_eq!(exclude.if_present, [".nobackup"]);
        }
        other => panic!("{other:?}"),
    }
    let e = errors(&share.replace("\"2G\"", "\"2Q\""));
    assert!(
        e.iter()
            .any(|(k, r)| k.ends_with("source.exclude_larger_than") && r.contains("unknown unit")),
        "{e:?}"
    );
}

#[test]
fn an_image_source_and_one_source_only() {
    let vm = r#"
[[service]]
tenant = "acme"
name = "vm1"
class = "vmaas-standard"
zone = "par1"
target = "par2"
source = { image = { path = "/var/lib/libvirt/images/vm1.qcow2", format = "qcow2" } }
"#;
    let c = load(vm).unwrap();
    match &c.services[0].source {
        SourceSpec::Image(i) => {
            assert_eq!(i.format.as_deref(), Some("qcow2"));
            assert_eq!(i.stream_name(), "vm1.raw");
        }
        other => panic!("{other:?}"),
    }
    let e = errors(&vm.replace("source = { image", "source = { paths = [\"/srv\"], image"));
    assert!(
        e.iter().any(|(_, r)| r.contains("give only one of")),
        "{e:?}"
    );
    let e = errors(&vm.replace("/var/lib/libvirt/images/vm1.qcow2", "vm1.qcow2"));
    assert!(
        e.iter().any(|(k, _)| k.ends_with("source.image.path")),
        "{e:?}"
    );
}
