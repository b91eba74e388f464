//! Compile and run a C program against Xen's headers (Debian's
//! libxen-dev) and read back the `name value` lines it prints: sizes,
//! offsets, constants and ioctl numbers to compare with our Rust
//! definitions.

use std::collections::HashMap;
use std::process::Command;

/// What to install when a header or the compiler is missing.
const HINT: &str = "install libxen-dev (apt-get install libxen-dev)";

/// Build `source` (which includes `headers`) as `name`, run it and parse
/// each output line `key value` (the value last, parsed as `T`).
pub fn c_values<T: std::str::FromStr>(
    name: &str,
    headers: &[&str],
    source: &str,
) -> HashMap<String, T> {
    for h in headers {
        assert!(std::path::Path::new(h).exists(), "{h} is missing: {HINT}");
    }
    let dir = std::env::temp_dir().join(format!("xennet-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).expect("write C source");
    let out = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc ({e}): install a C compiler and {HINT}"));
    assert!(
        out.status.success(),
        "compiling against the Xen headers failed ({HINT}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().expect("run the C probe");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(run.status.success(), "the C probe failed: {run:?}");
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            Some((key.to_string(), v.parse().ok()?))
        })
        .collect()
}
