//! Corpus-driven mutation fuzzing that runs under plain `cargo test` on
//! stable Rust (no libFuzzer, no nightly).
//!
//! Each fuzz target is an ordinary `#[test]` that calls [`run`] with a
//! name, a seed corpus directory and a check closure `Fn(&[u8])`. [`run`]:
//!
//! 1. feeds every corpus file to the closure as is (the committed corpus
//!    doubles as a regression suite);
//! 2. then, until a time budget or an iteration cap is spent, feeds
//!    mutants of corpus files: bit flips, interesting bytes and integers
//!    (either byte order), truncations, deletions, insertions, duplicated
//!    ranges, splices from other corpus files, token swaps (tokens taken
//!    from the corpus), and for [`Kind::Json`] targets also edits of the
//!    JSON tree (replace a node by an odd value, graft a subtree of another
//!    file, drop or duplicate a member) so that most mutants still parse
//!    and reach the code past the JSON syntax.
//!
//! Mutants are generated and shrunk by [`proptest`]: a panic in the closure
//! is shrunk to a minimal list of mutations, the offending input is written
//! to `$TMPDIR/xennet-fuzz/<target>/crash-<hash>` and the test fails with
//! its hex dump. Add the file to the corpus as `regress-<what>` once fixed.
//!
//! Settings (environment variables):
//! - `XENNET_FUZZ_SECS`: time budget per target in seconds (default 2;
//!   fractions allowed; `0` replays the corpus only).
//! - `XENNET_FUZZ_ITERS`: cap on mutants per target (default unlimited).
//! - `XENNET_FUZZ_SEED`: the run's seed (hex, up to 16 digits); by default
//!   a fresh one per run, printed so that a failure can be replayed.
//!
//! For example, one target for ten minutes:
//! `XENNET_FUZZ_SECS=600 cargo test -p xennet-openflow --test fuzz of13 -- --nocapture`.
#![warn(missing_docs)]

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use serde_json::Value;

/// Default time budget per target, in seconds.
pub const DEFAULT_SECS: f64 = 2.0;
/// Mutants per proptest batch; the time budget is checked between batches.
const BATCH: u32 = 64;
/// Longest mutant, in bytes (inputs are truncated to it).
const MAX_LEN: usize = 256 * 1024;

/// How a target's inputs are mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Binary messages: byte-level mutations only.
    Bytes,
    /// Text (TOML, command lines): byte-level and token mutations.
    Text,
    /// JSON texts: JSON tree edits, and sometimes byte-level mutations on
    /// top. Corpus files that are not JSON get byte mutations only.
    Json,
}

/// The directory `<crate>/fuzz-corpus/<target>` of the calling crate.
#[macro_export]
macro_rules! corpus_dir {
    ($target:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz-corpus/", $target)
    };
}

/// One corpus file.
#[derive(Debug, Clone)]
pub struct Seed {
    /// File name inside the corpus directory.
    pub name: String,
    /// Contents.
    pub data: Vec<u8>,
    json: Option<Value>,
}

/// Read every regular file of `dir`, sorted by name.
///
/// # Panics
/// If `dir` cannot be read or holds no file: a target without a corpus is
/// a mistake, not a pass.
pub fn load_corpus(dir: &Path, kind: Kind) -> Vec<Seed> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "fuzz corpus {} is empty", dir.display());
    names
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let json = match kind {
                Kind::Json => serde_json::from_slice(&data).ok(),
                _ => None,
            };
            Seed {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                data,
                json,
            }
        })
        .collect()
}

/// A byte-level mutation; positions are fractions of the current length.
#[derive(Debug, Clone)]
enum Op {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// Overwrite 1, 2, 4 or 8 bytes with an interesting integer.
    SetInt(Index, u8, u64, bool),
    Truncate(Index),
    Delete(Index, u8),
    Insert(Index, Vec<u8>),
    /// Copy up to `len` bytes from one place to another (inserting).
    Dup(Index, Index, u8),
    /// Insert up to `len` bytes of another corpus file.
    Splice(Index, Index, Index, u8),
    /// Replace the token at a position by a corpus token.
    Token(Index, Index),
}

/// A JSON tree edit; nodes are numbered in pre-order.
#[derive(Debug, Clone)]
enum JsonOp {
    Replace(Index, Index),
    Graft(Index, Index, Index),
    Remove(Index),
    DupMember(Index),
}

/// One mutant: a corpus file and the edits applied to it, in order.
#[derive(Debug, Clone)]
struct Mutant {
    seed: Index,
    tree: Vec<JsonOp>,
    bytes: Vec<Op>,
}

const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xfffe,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    u64::MAX,
];

fn leaf_values() -> Vec<Value> {
    use serde_json::json;
    vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(4294967296u64),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!(-0.5),
        json!(""),
        json!("x"),
        json!("set"),
        json!("map"),
        json!("uuid"),
        json!("named-uuid"),
        json!("00000000-0000-0000-0000-000000000000"),
        json!(["set", []]),
        json!(["map", []]),
        json!(["map", [[1, 2]]]),
        json!(["uuid", "zz"]),
        json!(["set", [["set", []]]]),
        json!([]),
        json!([[]]),
        json!({}),
        json!({"": null}),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let int = (
        any::<Index>(),
        0u8..4,
        prop::sample::select(&INTERESTING[..]),
        any::<bool>(),
    )
        .prop_map(|(i, w, v, be)| Op::SetInt(i, w, v, be));
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Op::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Op::SetByte(i, b)),
        3 => int,
        1 => any::<Index>().prop_map(Op::Truncate),
        1 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| Op::Delete(i, n)),
        1 => (any::<Index>(), vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Op::Insert(i, b)),
        1 => (any::<Index>(), any::<Index>(), 1u8..64).prop_map(|(a, b, n)| Op::Dup(a, b, n)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>(), 1u8..255)
            .prop_map(|(s, a, b, n)| Op::Splice(s, a, b, n)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Op::Token(i, t)),
    ]
}

fn json_op() -> impl Strategy<Value = JsonOp> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>()).prop_map(|(n, v)| JsonOp::Replace(n, v)),
        3 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(n, s, m)| JsonOp::Graft(n, s, m)),
        2 => any::<Index>().prop_map(JsonOp::Remove),
        1 => any::<Index>().prop_map(JsonOp::DupMember),
    ]
}

fn mutant(kind: Kind) -> BoxedStrategy<Mutant> {
    match kind {
        Kind::Json => (
            any::<Index>(),
            vec(json_op(), 1..6),
            prop_oneof![3 => Just(Vec::new()), 1 => vec(op(), 1..4)],
        )
            .prop_map(|(seed, tree, bytes)| Mutant { seed, tree, bytes })
            .boxed(),
        Kind::Bytes | Kind::Text => (any::<Index>(), vec(op(), 1..8))
            .prop_map(|(seed, bytes)| Mutant {
                seed,
                tree: Vec::new(),
                bytes,
            })
            .boxed(),
    }
}

/// What mutants are made from: the corpus, its tokens, its JSON nodes.
struct Pool {
    kind: Kind,
    seeds: Vec<Seed>,
    tokens: Vec<Vec<u8>>,
    leaves: Vec<Value>,
}

fn is_sep(b: u8) -> bool {
    b.is_ascii_whitespace() || b"=[]{},:\"'.".contains(&b)
}

/// Maximal runs of non-separator bytes, and single separators.
fn tokens(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let start = i;
        if is_sep(data[i]) {
            i += 1;
        } else {
            while i < data.len() && !is_sep(data[i]) {
                i += 1;
            }
        }
        out.push((start, i));
    }
    out
}

impl Pool {
    fn new(kind: Kind, seeds: Vec<Seed>) -> Pool {
        let mut set = BTreeSet::new();
        if kind != Kind::Bytes {
            for s in &seeds {
                for (a, b) in tokens(&s.data) {
                    if b - a <= 64 {
                        set.insert(s.data[a..b].to_vec());
                    }
                }
            }
        }
        for t in [
            "0",
            "-1",
            "4294967296",
            "1e999",
            "\"\"",
            "[]",
            "{}",
            "true",
            "null",
        ] {
            set.insert(t.as_bytes().to_vec());
        }
        Pool {
            kind,
            seeds,
            tokens: set.into_iter().collect(),
            leaves: leaf_values(),
        }
    }

    fn build(&self, m: &Mutant) -> Vec<u8> {
        let seed = &self.seeds[m.seed.index(self.seeds.len())];
        let mut data = match (&seed.json, m.tree.is_empty()) {
            (Some(v), false) => {
                let mut v = v.clone();
                for op in &m.tree {
                    self.edit_json(&mut v, op);
                }
                serde_json::to_vec(&v).unwrap_or_default()
            }
            _ => seed.data.clone(),
        };
        for op in &m.bytes {
            self.edit_bytes(&mut data, op);
        }
        data.truncate(MAX_LEN);
        data
    }

    fn edit_bytes(&self, d: &mut Vec<u8>, op: &Op) {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match op {
            Op::FlipBit(i, b) => {
                if !d.is_empty() {
                    let p = at(i, d.len());
                    d[p] ^= 1 << b;
                }
            }
            Op::SetByte(i, b) => {
                if !d.is_empty() {
                    let p = at(i, d.len());
                    d[p] = *b;
                }
            }
            Op::SetInt(i, w, v, be) => {
                let width = 1usize << w;
                if d.len() >= width {
                    let p = at(i, d.len() - width + 1);
                    let bytes = if *be {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    };
                    let src = if *be {
                        &bytes[8 - width..]
                    } else {
                        &bytes[..width]
                    };
                    d[p..p + width].copy_from_slice(src);
                }
            }
            Op::Truncate(i) => {
                let p = at(i, d.len());
                d.truncate(p);
            }
            Op::Delete(i, n) => {
                let p = at(i, d.len());
                let end = (p + usize::from(*n)).min(d.len());
                d.drain(p..end);
            }
            Op::Insert(i, b) => {
                let p = at(i, d.len() + 1);
                d.splice(p..p, b.iter().copied());
            }
            Op::Dup(a, b, n) => {
                if !d.is_empty() {
                    let s = at(a, d.len());
                    let e = (s + usize::from(*n)).min(d.len());
                    let chunk = d[s..e].to_vec();
                    let p = at(b, d.len() + 1);
                    d.splice(p..p, chunk);
                }
            }
            Op::Splice(s, a, b, n) => {
                let other = &self.seeds[s.index(self.seeds.len())].data;
                if !other.is_empty() {
                    let st = at(a, other.len());
                    let e = (st + usize::from(*n)).min(other.len());
                    let p = at(b, d.len() + 1);
                    d.splice(p..p, other[st..e].iter().copied());
                }
            }
            Op::Token(i, t) => {
                let toks = tokens(d);
                let tok = &self.tokens[t.index(self.tokens.len())];
                if toks.is_empty() {
                    d.extend_from_slice(tok);
                } else {
                    let (a, b) = toks[at(i, toks.len())];
                    d.splice(a..b, tok.iter().copied());
                }
            }
        }
    }

    fn edit_json(&self, v: &mut Value, op: &JsonOp) {
        let n = count(v);
        match op {
            JsonOp::Replace(i, l) => {
                if let Some(node) = nth(v, i.index(n)) {
                    *node = self.leaves[l.index(self.leaves.len())].clone();
                }
            }
            JsonOp::Graft(i, s, m) => {
                let donors: Vec<&Value> =
                    self.seeds.iter().filter_map(|s| s.json.as_ref()).collect();
                let donor = donors[s.index(donors.len())];
                let mut donor = donor.clone();
                let dn = count(&donor);
                let sub = nth(&mut donor, m.index(dn)).map(|x| x.take());
                if let (Some(node), Some(sub)) = (nth(v, i.index(n)), sub) {
                    *node = sub;
                }
            }
            JsonOp::Remove(i) => {
                if let Some(node) = nth(v, i.index(n)) {
                    match node {
                        Value::Array(a) if !a.is_empty() => {
                            let k = i.index(a.len());
                            a.remove(k);
                        }
                        Value::Object(o) if !o.is_empty() => {
                            let key = o.keys().nth(i.index(o.len())).cloned();
                            if let Some(key) = key {
                                o.remove(&key);
                            }
                        }
                        _ => {}
                    }
                }
            }
            JsonOp::DupMember(i) => {
                if let Some(Value::Array(a)) = nth(v, i.index(n)) {
                    if !a.is_empty() {
                        let x = a[i.index(a.len())].clone();
                        a.push(x);
                    }
                }
            }
        }
    }
}

/// Nodes in `v`, itself included.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// The `k`th node of `v` in pre-order (0 is `v`).
fn nth(v: &mut Value, k: usize) -> Option<&mut Value> {
    if k == 0 {
        return Some(v);
    }
    let mut k = k - 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(a) => a.iter_mut().collect(),
        Value::Object(o) => o.values_mut().collect(),
        _ => return None,
    };
    for c in children {
        let n = count(c);
        if k < n {
            return nth(c, k);
        }
        k -= n;
    }
    None
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn fresh_seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish()
}

fn batch_rng(seed: u64, batch: u64) -> TestRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&batch.to_le_bytes());
    key[16..].copy_from_slice(b"xennet-fuzz-rng!");
    TestRng::from_seed(RngAlgorithm::ChaCha, &key)
}

fn hex(data: &[u8]) -> String {
    let shown: String = data.iter().take(512).map(|b| format!("{b:02x}")).collect();
    if data.len() > 512 {
        format!("{shown}... ({} bytes)", data.len())
    } else {
        shown
    }
}

fn save_crash(target: &str, data: &[u8]) -> Option<PathBuf> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    let dir = std::env::temp_dir().join("xennet-fuzz").join(target);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("crash-{:016x}", h.finish()));
    std::fs::write(&path, data).ok()?;
    Some(path)
}

thread_local! {
    /// Whether this thread is running mutants (their panics are expected
    /// while shrinking; only the final report is printed).
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wrap the panic hook once so that panics on threads running mutants
/// print nothing; other threads (tests running in parallel) are untouched.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                prev(info);
            }
        }));
    });
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// Run fuzz target `name`: the corpus in `dir`, then mutants of it, each
/// through `check`, for the time budget (see the crate docs for the
/// environment variables).
///
/// `check` asserts the target's properties with `assert!` and friends; a
/// panic is a failure. It must not keep state between calls that changes
/// its verdict.
///
/// # Panics
/// On an unreadable or empty corpus, when a corpus file fails `check`
/// (naming the file), or with the minimal failing mutant in hex (also
/// saved under `$TMPDIR/xennet-fuzz/<name>/`).
pub fn run(name: &str, dir: impl AsRef<Path>, kind: Kind, check: impl Fn(&[u8])) {
    let dir = dir.as_ref();
    let seeds = load_corpus(dir, kind);
    for s in &seeds {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(&s.data))) {
            panic!(
                "fuzz {name}: corpus file {}/{} fails: {}",
                dir.display(),
                s.name,
                panic_text(&*e)
            );
        }
    }

    let secs = env_f64("XENNET_FUZZ_SECS", DEFAULT_SECS).max(0.0);
    let budget = Duration::from_secs_f64(secs.min(1e9));
    let max_iters = std::env::var("XENNET_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let seed = std::env::var("XENNET_FUZZ_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(fresh_seed);
    println!(
        "fuzz {name}: {} corpus files from {}; seed {seed:016x} (XENNET_FUZZ_SEED)",
        seeds.len(),
        dir.display()
    );

    let pool = Pool::new(kind, seeds);
    install_quiet_hook();
    let strategy = mutant(pool.kind);
    let start = Instant::now();
    let mut iters: u64 = 0;
    let mut batch: u64 = 0;
    while iters < max_iters && start.elapsed() < budget {
        let cases =
            u32::try_from(max_iters.saturating_sub(iters).min(u64::from(BATCH))).unwrap_or(BATCH);
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_time: 30_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, batch_rng(seed, batch));
        QUIET.with(|q| q.set(true));
        let deadline = start + budget;
        let shrinking = std::cell::Cell::new(false);
        let checked = std::cell::Cell::new(0u64);
        let result = runner.run(&strategy, |m| {
            // Past the budget the rest of the batch is skipped, unless a
            // failure is being shrunk.
            if shrinking.get() || Instant::now() < deadline {
                checked.set(checked.get() + 1);
                let r = catch_unwind(AssertUnwindSafe(|| check(&pool.build(&m))));
                if let Err(e) = r {
                    shrinking.set(true);
                    std::panic::resume_unwind(e);
                }
            }
            Ok(())
        });
        QUIET.with(|q| q.set(false));
        if let Err(err) = result {
            let (reason, m) = match err {
                TestError::Fail(reason, m) => (reason, m),
                TestError::Abort(reason) => panic!("fuzz {name}: aborted: {reason}"),
            };
            let data = pool.build(&m);
            let saved = save_crash(name, &data)
                .map(|p| format!("saved as {}", p.display()))
                .unwrap_or_else(|| "not saved".into());
            panic!(
                "fuzz {name} (seed {seed:016x}, batch {batch}): {reason}\n\
                 mutant: {m:?}\ninput ({} bytes, {saved}):\n{}",
                data.len(),
                hex(&data)
            );
        }
        iters += checked.get();
        batch += 1;
    }
    println!(
        "fuzz {name}: {iters} mutants in {:.1} s, no failure",
        start.elapsed().as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(kind: Kind, files: &[&str]) -> Pool {
        let seeds = files
            .iter()
            .enumerate()
            .map(|(i, f)| Seed {
                name: format!("{i}"),
                data: f.as_bytes().to_vec(),
                json: serde_json::from_str(f).ok(),
            })
            .collect();
        Pool::new(kind, seeds)
    }

    #[test]
    fn pre_order_numbering_reaches_every_node() {
        let mut v = serde_json::json!({"a": [1, [2, 3]], "b": {"c": 4}});
        assert_eq!(count(&v), 8);
        assert_eq!(nth(&mut v, 4).cloned(), Some(serde_json::json!(2)));
        assert!(nth(&mut v, 8).is_none());
    }

    #[test]
    fn json_mutants_stay_json_without_byte_edits() {
        let p = pool(
            Kind::Json,
            &[r#"{"method":"update","params":[null,{}]}"#, "[1,2]"],
        );
        let mut runner = TestRunner::deterministic();
        for _ in 0..500 {
            let mut m = mutant(Kind::Json).new_tree(&mut runner).unwrap().current();
            m.bytes.clear();
            let out = p.build(&m);
            assert!(serde_json::from_slice::<Value>(&out).is_ok());
        }
    }

    #[test]
    fn byte_edits_never_panic_on_empty_or_tiny_inputs() {
        let p = pool(Kind::Text, &["", "a", "k = [1, 2]"]);
        let mut runner = TestRunner::deterministic();
        for _ in 0..2000 {
            let m = mutant(Kind::Text).new_tree(&mut runner).unwrap().current();
            assert!(p.build(&m).len() <= MAX_LEN);
        }
    }
}
