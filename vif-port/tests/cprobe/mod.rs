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

/// The C probe's values and how many of them a test compared with ours.
pub struct Probe<T> {
    values: HashMap<String, T>,
    checked: usize,
}

impl<T: PartialEq + std::fmt::Debug> Probe<T> {
    /// Start comparing against `values` (from [`c_values`]).
    pub fn new(values: HashMap<String, T>) -> Self {
        Probe { values, checked: 0 }
    }

    /// The C value printed as `key` must equal `rust`.
    pub fn check(&mut self, key: &str, rust: T) {
        let cv = self
            .values
            .get(key)
            .unwrap_or_else(|| panic!("C probe did not print {key}"));
        assert_eq!(*cv, rust, "{key}: C says {cv:?}, Rust says {rust:?}");
        self.checked += 1;
    }

    /// Every value the probe printed was compared.
    pub fn all_checked(&self) {
        assert_eq!(
            self.checked,
            self.values.len(),
            "every value the C probe printed is checked"
        );
    }
}

/// `sz!(probe, "struct x", T)`: `sizeof struct x` is `size_of::<T>()`.
macro_rules! sz {
    ($p:ident, $c:literal, $t:ty) => {
        $p.check(concat!("sizeof ", $c), std::mem::size_of::<$t>() as _)
    };
}

/// `off!(probe, "struct x.f", T, f)`: `offsetof` matches `offset_of!`.
macro_rules! off {
    ($p:ident, $c:literal, $t:ty, $($f:tt)+) => {
        $p.check(concat!("offsetof ", $c), std::mem::offset_of!($t, $($f)+) as _)
    };
}

/// `cst!(probe, "NAME", value)`: the C constant `NAME` is `value`.
macro_rules! cst {
    ($p:ident, $c:literal, $v:expr) => {
        $p.check(concat!("const ", $c), $v as _)
    };
}

#[allow(unused_imports)]
pub(crate) use {cst, off, sz};
