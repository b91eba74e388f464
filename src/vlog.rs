//! Logging that an operator can change at run time, as OVS's `vlog`:
//! `ovs-appctl vlog/list`, `vlog/set` and `vlog/reopen`.
//!
//! xennetd logs to one destination, standard error (`console`) or the
//! `--log-file` (`file`); there is no syslog. Modules are xennet's crates
//! (`xennetd`, `datapath`, `ofproto`, `openflow`, `vif`, `ovsdb`) or any
//! `tracing` target under them (`xennetd::dbsync`). OVS's levels map to
//! `tracing`'s: `off`, `emer` and `err` → error (`off` silences),
//! `warn`, `info`, `dbg` → debug.
//!
//! `vlog/set` takes OVS's specs, space-separated: `LEVEL` (every module),
//! `MODULE[:DESTINATION][:LEVEL]` with `ANY` for every module, and
//! `DESTINATION:LEVEL`; a destination other than the one in use, or
//! `syslog`, is refused with an error, as is an unknown module or level.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// xennet's modules: the name `vlog` shows and the `tracing` target.
const MODULES: [(&str, &str); 6] = [
    ("xennetd", "xennetd"),
    ("datapath", "xennet_datapath"),
    ("ofproto", "xennet_ofproto"),
    ("openflow", "xennet_openflow"),
    ("vif", "xennet_vif"),
    ("ovsdb", "xennet_ovsdb"),
];

/// OVS's levels, most to least severe, with the `tracing` level each
/// maps to (`None`: off).
const LEVELS: [(&str, Option<&str>); 6] = [
    ("off", None),
    ("emer", Some("error")),
    ("err", Some("error")),
    ("warn", Some("warn")),
    ("info", Some("info")),
    ("dbg", Some("debug")),
];

/// The log file, reopened by `vlog/reopen` (for logrotate).
#[derive(Debug, Clone)]
struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// The run-time state of logging.
struct Vlog {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `console` or `file`.
    destination: &'static str,
    /// The base filter (`--log`), then per-target levels set since.
    base: String,
    levels: BTreeMap<String, &'static str>,
    file: Option<LogFile>,
}

static VLOG: OnceLock<Mutex<Vlog>> = OnceLock::new();

fn vlog() -> Result<std::sync::MutexGuard<'static, Vlog>, String> {
    VLOG.get()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
        .ok_or_else(|| "logging is not set up".to_string())
}

/// Set up logging with `filter` (as `RUST_LOG`), to `file` if given, else
/// to standard error.
///
/// # Errors
/// A bad filter, or a log file that cannot be opened.
pub fn init(filter: &str, file: Option<&Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    let f = EnvFilter::try_new(filter).with_context(|| format!("bad --log filter {filter:?}"))?;
    let (layer, handle) = reload::Layer::new(f);
    let registry = tracing_subscriber::registry().with(layer);
    let (destination, log_file) = match file {
        Some(path) => {
            let lf = LogFile {
                path: path.to_path_buf(),
                file: Arc::new(Mutex::new(
                    LogFile::open(path)
                        .with_context(|| format!("opening log file {}", path.display()))?,
                )),
            };
            let writer = lf.clone();
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(move || writer.clone()),
                )
                .init();
            ("file", Some(lf))
        }
        None => {
            registry
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                .init();
            ("console", None)
        }
    };
    let _ = VLOG.set(Mutex::new(Vlog {
        handle,
        destination,
        base: filter.to_owned(),
        levels: BTreeMap::new(),
        file: log_file,
    }));
    Ok(())
}

/// The effective OVS level of `target` under filter directives `filter`:
/// the most specific directive naming the target or a parent of it, else
/// the bare level.
fn level_of(vl: &Vlog, target: &str) -> &'static str {
    let from_tracing = |t: &str| {
        LEVELS
            .iter()
            .rev()
            .find(|(_, tl)| tl.is_some_and(|tl| tl.eq_ignore_ascii_case(t)))
            .map_or("info", |(l, _)| *l)
    };
    let mut best: Option<(usize, &'static str)> = None;
    let mut default = "info";
    for d in vl.base.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            Some((t, l)) if target == t || target.starts_with(&format!("{t}::")) => {
                let lvl = if l.eq_ignore_ascii_case("off") {
                    "off"
                } else {
                    from_tracing(l)
                };
                if best.map_or(true, |(n, _)| t.len() > n) {
                    best = Some((t.len(), lvl));
                }
            }
            Some(_) => {}
            None if d.eq_ignore_ascii_case("off") => default = "off",
            None => default = from_tracing(d),
        }
    }
    for (t, l) in &vl.levels {
        if (target == t || target.starts_with(&format!("{t}::")))
            && best.map_or(true, |(n, _)| t.len() >= n)
        {
            best = Some((t.len(), l));
        }
    }
    best.map_or(default, |(_, l)| l)
}

/// `vlog/list`: every module's level at the one destination, in OVS's
/// table layout.
pub fn list() -> Result<String, String> {
    let vl = vlog()?;
    let mut out = format!(
        "{:<16} {:>8}\n{:<16} {:>8}\n",
        "",
        vl.destination,
        "",
        "-".repeat(vl.destination.len())
    );
    for (name, target) in MODULES {
        out.push_str(&format!(
            "{name:<16} {:>8}\n",
            level_of(&vl, target).to_uppercase()
        ));
    }
    for t in vl.levels.keys() {
        if !MODULES.iter().any(|(_, m)| m == t) {
            out.push_str(&format!("{t:<16} {:>8}\n", level_of(&vl, t).to_uppercase()));
        }
    }
    Ok(out)
}

/// The `tracing` target of an OVS module name (`ANY`: `None`).
fn target_of(module: &str) -> Result<Option<String>, String> {
    if module.eq_ignore_ascii_case("any") {
        return Ok(None);
    }
    if let Some((_, t)) = MODULES.iter().find(|(n, _)| n.eq_ignore_ascii_case(module)) {
        return Ok(Some((*t).to_owned()));
    }
    // A target under one of ours, e.g. xennetd::dbsync.
    let root = module.split("::").next().unwrap_or(module);
    if MODULES.iter().any(|(_, t)| *t == root)
        && module
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    {
        return Ok(Some(module.to_owned()));
    }
    Err(format!("unknown module \"{module}\""))
}

/// `vlog/set SPEC...` (see the module docs).
pub fn set(specs: &[String]) -> Result<String, String> {
    let mut vl = vlog()?;
    let is_level = |w: &str| LEVELS.iter().any(|(l, _)| l.eq_ignore_ascii_case(w));
    let is_dest = |w: &str| {
        ["console", "file", "syslog"]
            .iter()
            .any(|d| d.eq_ignore_ascii_case(w))
    };
    let mut changes: Vec<(Option<String>, &'static str)> = Vec::new();
    for spec in specs.iter().flat_map(|s| s.split_whitespace()) {
        let (mut module, mut level) = (None, None);
        for word in spec.split(':').filter(|w| !w.is_empty()) {
            if is_level(word) {
                level = LEVELS
                    .iter()
                    .find(|(l, _)| l.eq_ignore_ascii_case(word))
                    .map(|(l, _)| *l);
            } else if is_dest(word) {
                if !word.eq_ignore_ascii_case(vl.destination) {
                    return Err(format!(
                        "xennetd logs to {} only: destination \"{word}\" is not in use",
                        vl.destination
                    ));
                }
            } else if module.is_none() {
                module = Some(target_of(word)?);
            } else {
                return Err(format!("{spec}: unknown level or destination \"{word}\""));
            }
        }
        // OVS: a spec without a level sets dbg.
        changes.push((module.flatten(), level.unwrap_or("dbg")));
    }
    if changes.is_empty() {
        return Err("vlog/set needs a SPEC (MODULE[:DESTINATION[:LEVEL]], or LEVEL)".into());
    }
    for (target, level) in changes {
        match target {
            Some(t) => {
                vl.levels.insert(t, level);
            }
            None => {
                vl.levels.clear();
                for (_, t) in MODULES {
                    vl.levels.insert(t.to_owned(), level);
                }
            }
        }
    }
    let directives: Vec<String> = std::iter::once(vl.base.clone())
        .chain(vl.levels.iter().map(|(t, l)| {
            let tl = LEVELS
                .iter()
                .find(|(n, _)| n == l)
                .and_then(|(_, tl)| *tl)
                .unwrap_or("off");
            format!("{t}={tl}")
        }))
        .filter(|d| !d.is_empty())
        .collect();
    let filter = EnvFilter::try_new(directives.join(",")).map_err(|e| e.to_string())?;
    vl.handle.reload(filter).map_err(|e| e.to_string())?;
    Ok(String::new())
}

/// `vlog/reopen`: close and reopen the log file (after logrotate moved
/// it).
pub fn reopen() -> Result<String, String> {
    let vl = vlog()?;
    let Some(lf) = &vl.file else {
        return Err("xennetd logs to the console, not a file".into());
    };
    let f = LogFile::open(&lf.path).map_err(|e| format!("{}: {e}", lf.path.display()))?;
    *lf.file.lock().unwrap_or_else(|e| e.into_inner()) = f;
    Ok(String::new())
}
