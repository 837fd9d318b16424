//! The daemon's TOML config (`Config::parse`) from arbitrary UTF-8, then what
//! `custos config check` and the daemon do with a valid one (no secrets read).
#![no_main]

use std::path::Path;

use custos::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(Path::new("/nonexistent/custos-fuzz/custos.toml"), text) {
        let _ = custos::daemon::Setup::services_only(&cfg);
        let _ = cfg.report(jiff::Timestamp::UNIX_EPOCH, 3);
    }
});
