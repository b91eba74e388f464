//! Fuzz targets for the daemon's own parsers: the TOML configuration and
//! unixctl requests (see the `xennet-fuzz` crate for how they run, for
//! how long, and how to run them longer).
//!
//! Seeds (written by `scripts/fuzz-corpus`): `fuzz-corpus/config` holds
//! the embedded default (what `xennetd --print-default-config` prints)
//! and the configurations of the config tests; `fuzz-corpus/unixctl`
//! holds one `ovs-appctl`-style request per command (with
//! `ofproto/trace` flows of several protocols). Files named `regress-*`
//! are inputs that once failed.

use std::sync::Arc;

use serde_json::Value;
use xennet_fuzz::{corpus_dir, run, Kind};
use xennet_ovsdb::jsonrpc::JsonStream;

use crate::bridge::{self, Switch};
use crate::config::Config;

/// The TOML configuration: `Config::parse` never panics, on text or on
/// arbitrary bytes read as UTF-8 lossily, and gives the same verdict twice;
/// a configuration it accepts yields each bridge's port VLANs and the
/// backend settings without panicking.
#[test]
fn config() {
    run("config", corpus_dir!("config"), Kind::Text, |data| {
        let text = String::from_utf8_lossy(data);
        let first = Config::parse(&text);
        assert_eq!(first.is_ok(), Config::parse(&text).is_ok());
        if let Ok(cfg) = first {
            for b in &cfg.bridges {
                let _ = b.port_vlans();
            }
            let _ = cfg.xen.backend(0);
            let _ = cfg.emulated_xen.backend();
        }
    });
}

/// unixctl: bytes framed as the server frames them, each request
/// dispatched to the real command table of a switch with one bridge `br0`
/// (no ports): every reply carries the request's id and exactly one of
/// `result` and `error`.
#[test]
fn unixctl() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _rt = rt.enter();
    let rundir = std::env::temp_dir().join(format!("xennet-fuzz-unixctl-{}", std::process::id()));
    std::fs::create_dir_all(&rundir).expect("rundir");
    let cfg = Config::parse("[[bridge]]\nname = \"br0\"\n").expect("config");
    let switch = Arc::new(Switch::new(&cfg, &rundir).expect("switch"));
    let commands = bridge::commands(switch.clone(), Arc::new(tokio::sync::Notify::new()));
    run("unixctl", corpus_dir!("unixctl"), Kind::Json, |data| {
        let mut s = JsonStream::new();
        if s.push(data).is_err() {
            return;
        }
        while let Ok(Some(request)) = s.next_value() {
            let reply = commands.dispatch(&request);
            let id = request.get("id").cloned().unwrap_or(Value::Null);
            assert_eq!(reply["id"], id);
            assert!(
                reply["result"].is_null() != reply["error"].is_null(),
                "{request} -> {reply}"
            );
        }
    });
    switch.shutdown();
    let _ = std::fs::remove_dir_all(&rundir);
}
