//! Atoms and datums (RFC 7047 §5.1) and the update2 diff rules.
//!
//! On the wire an atom is a JSON number, boolean or string, or
//! `["uuid", "<uuid>"]` / `["named-uuid", "<id>"]`; a datum is an atom,
//! `["set", [atom...]]` or `["map", [[key, value]...]]`, and a bare atom
//! stands for a set of one. Whether a bare atom is a scalar or a one-element
//! set depends on the column type, so [`Datum::from_json`] takes an optional
//! [`ColumnType`].
//!
//! A `modify` in `update2`/`update3` (the OVS extension documented in
//! ovsdb-server(7)) carries, for columns that may hold more than one element
//! ([`ColumnType::is_composite`]: sets and maps with `max` > 1), a
//! *difference*; scalars and optional values (`max` 1, e.g. `Port.tag`)
//! carry the new value. [`Datum::apply_diff`] applies a difference and
//! [`Datum::diff`] computes it:
//!
//! * sets: the symmetric difference (elements in exactly one of old, new);
//! * maps: `[k, v]` where `k` is absent from old (add), `[k, v]` where old
//!   has exactly `[k, v]` (remove), `[k, v']` where old has `[k, v]`, `v != v'`
//!   (replace the value with `v'`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::error::DatumError;
use crate::schema::{AtomicType, ColumnKind, ColumnType};

/// A UUID in the canonical 8-4-4-4-12 form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(u128);

impl Uuid {
    /// The all-zero UUID (the default atom of type `uuid`).
    pub const fn nil() -> Self {
        Uuid(0)
    }

    /// From the 128-bit value.
    pub const fn from_u128(v: u128) -> Self {
        Uuid(v)
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// `["uuid", "<self>"]`.
    pub fn to_json(self) -> Value {
        json!(["uuid", self.to_string()])
    }
}

impl FromStr for Uuid {
    type Err = DatumError;

    fn from_str(s: &str) -> Result<Self, DatumError> {
        let bad = || DatumError::new("uuid", &Value::String(s.to_owned()));
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(bad());
        }
        let mut v: u128 = 0;
        for (i, &c) in b.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(bad());
                }
                continue;
            }
            let d = (c as char).to_digit(16).ok_or_else(bad)?;
            v = (v << 4) | u128::from(d);
        }
        Ok(Uuid(v))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            v >> 96,
            (v >> 80) & 0xffff,
            (v >> 64) & 0xffff,
            (v >> 48) & 0xffff,
            v & 0xffff_ffff_ffff
        )
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// One atom.
///
/// Atoms are totally ordered (by type, then value; reals by
/// [`f64::total_cmp`]) so sets and maps can be `BTreeSet`/`BTreeMap`.
#[derive(Debug, Clone)]
pub enum Atom {
    /// Integer.
    Integer(i64),
    /// Real.
    Real(f64),
    /// Boolean.
    Boolean(bool),
    /// String.
    String(String),
    /// `["uuid", ...]`.
    Uuid(Uuid),
    /// `["named-uuid", ...]`: a row inserted earlier in the same
    /// transaction (only in requests).
    NamedUuid(String),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    /// Parses an atom. With `ty`, numbers are read as that type (an integral
    /// JSON number is a valid `real`) and a mismatch is an error; without it
    /// integral numbers become [`Atom::Integer`].
    pub fn from_json(v: &Value, ty: Option<AtomicType>) -> Result<Atom, DatumError> {
        let atom = match v {
            Value::Number(n) => match ty {
                Some(AtomicType::Real) => {
                    Atom::Real(n.as_f64().ok_or_else(|| DatumError::new("real", v))?)
                }
                _ => match n.as_i64() {
                    Some(i) => Atom::Integer(i),
                    None if ty.is_none() => {
                        Atom::Real(n.as_f64().ok_or_else(|| DatumError::new("real", v))?)
                    }
                    None => return Err(DatumError::new("integer", v)),
                },
            },
            Value::Bool(b) => Atom::Boolean(*b),
            Value::String(s) => Atom::String(s.clone()),
            Value::Array(a) if a.len() == 2 => match (a[0].as_str(), a[1].as_str()) {
                (Some("uuid"), Some(u)) => Atom::Uuid(u.parse()?),
                (Some("named-uuid"), Some(n)) => Atom::NamedUuid(n.to_owned()),
                _ => return Err(DatumError::new("atom", v)),
            },
            _ => return Err(DatumError::new("atom", v)),
        };
        if let Some(ty) = ty {
            let ok = matches!(
                (ty, &atom),
                (AtomicType::Integer, Atom::Integer(_))
                    | (AtomicType::Real, Atom::Real(_))
                    | (AtomicType::Boolean, Atom::Boolean(_))
                    | (AtomicType::String, Atom::String(_))
                    | (AtomicType::Uuid, Atom::Uuid(_) | Atom::NamedUuid(_))
            );
            if !ok {
                return Err(DatumError::new(
                    match ty {
                        AtomicType::Integer => "integer",
                        AtomicType::Real => "real",
                        AtomicType::Boolean => "boolean",
                        AtomicType::String => "string",
                        AtomicType::Uuid => "uuid",
                    },
                    v,
                ));
            }
        }
        Ok(atom)
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => u.to_json(),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The UUID, if this is one.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The real (integers convert).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Atom::Real(r) => Some(*r),
            #[allow(clippy::cast_precision_loss)]
            Atom::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Atom {}

impl From<i64> for Atom {
    fn from(v: i64) -> Self {
        Atom::Integer(v)
    }
}
impl From<bool> for Atom {
    fn from(v: bool) -> Self {
        Atom::Boolean(v)
    }
}
impl From<f64> for Atom {
    fn from(v: f64) -> Self {
        Atom::Real(v)
    }
}
impl From<&str> for Atom {
    fn from(v: &str) -> Self {
        Atom::String(v.to_owned())
    }
}
impl From<String> for Atom {
    fn from(v: String) -> Self {
        Atom::String(v)
    }
}
impl From<Uuid> for Atom {
    fn from(v: Uuid) -> Self {
        Atom::Uuid(v)
    }
}

/// A column value.
///
/// `Scalar(a)` and `Set({a})` denote the same OVSDB value; which one a
/// parsed datum uses follows the column's [`ColumnKind`] when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// A column with exactly one value.
    Scalar(Atom),
    /// A set (including optional columns: empty or one element).
    Set(BTreeSet<Atom>),
    /// A map.
    Map(BTreeMap<Atom, Atom>),
}

impl Datum {
    /// The empty set.
    pub fn empty_set() -> Self {
        Datum::Set(BTreeSet::new())
    }

    /// An optional value: the empty set or a set of one.
    pub fn optional(a: Option<impl Into<Atom>>) -> Self {
        Datum::Set(a.map(Into::into).into_iter().collect())
    }

    /// A set of the given atoms.
    pub fn set<A: Into<Atom>>(atoms: impl IntoIterator<Item = A>) -> Self {
        Datum::Set(atoms.into_iter().map(Into::into).collect())
    }

    /// A map of the given pairs.
    pub fn map<K: Into<Atom>, V: Into<Atom>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Datum::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Parses a datum. With `ty` the result has the column's shape (a bare
    /// atom in a set column is a one-element set) and atoms are type-checked.
    pub fn from_json(v: &Value, ty: Option<&ColumnType>) -> Result<Datum, DatumError> {
        let kind = ty.map(ColumnType::kind);
        let key_ty = ty.map(|t| t.key.atomic);
        let val_ty = ty.and_then(|t| t.value.as_ref()).map(|b| b.atomic);
        if let Value::Array(a) = v {
            match a.first().and_then(Value::as_str) {
                Some("set") => {
                    if kind == Some(ColumnKind::Map) {
                        // An empty map is sometimes written as an empty set.
                        return match a.get(1) {
                            Some(Value::Array(e)) if e.is_empty() && a.len() == 2 => {
                                Ok(Datum::Map(BTreeMap::new()))
                            }
                            _ => Err(DatumError::new("map", v)),
                        };
                    }
                    let elems = match (a.len(), a.get(1)) {
                        (2, Some(Value::Array(e))) => e,
                        _ => return Err(DatumError::new("set", v)),
                    };
                    let set = elems
                        .iter()
                        .map(|e| Atom::from_json(e, key_ty))
                        .collect::<Result<BTreeSet<_>, _>>()?;
                    if kind == Some(ColumnKind::Scalar) {
                        return match set.len() {
                            1 => Ok(Datum::Scalar(set.into_iter().next().expect("len 1"))),
                            _ => Err(DatumError::new("scalar", v)),
                        };
                    }
                    return Ok(Datum::Set(set));
                }
                Some("map") => {
                    if matches!(kind, Some(ColumnKind::Scalar | ColumnKind::Set)) {
                        return Err(DatumError::new("non-map datum", v));
                    }
                    let pairs = match (a.len(), a.get(1)) {
                        (2, Some(Value::Array(e))) => e,
                        _ => return Err(DatumError::new("map", v)),
                    };
                    let mut map = BTreeMap::new();
                    for p in pairs {
                        match p.as_array().map(Vec::as_slice) {
                            Some([k, val]) => {
                                map.insert(
                                    Atom::from_json(k, key_ty)?,
                                    Atom::from_json(val, val_ty)?,
                                );
                            }
                            _ => return Err(DatumError::new("map pair", p)),
                        }
                    }
                    return Ok(Datum::Map(map));
                }
                _ => {}
            }
        }
        let atom = Atom::from_json(v, key_ty)?;
        match kind {
            Some(ColumnKind::Set) => Ok(Datum::Set(BTreeSet::from([atom]))),
            Some(ColumnKind::Map) => Err(DatumError::new("map", v)),
            _ => Ok(Datum::Scalar(atom)),
        }
    }

    /// The wire form: scalars and one-element sets as a bare atom.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Scalar(a) => a.to_json(),
            Datum::Set(s) if s.len() == 1 => s.iter().next().expect("len 1").to_json(),
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// The atoms of a scalar or set (keys of a map).
    pub fn atoms(&self) -> Vec<&Atom> {
        match self {
            Datum::Scalar(a) => vec![a],
            Datum::Set(s) => s.iter().collect(),
            Datum::Map(m) => m.keys().collect(),
        }
    }

    /// The only atom of a scalar or one-element set.
    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Datum::Scalar(a) => Some(a),
            Datum::Set(s) if s.len() == 1 => s.iter().next(),
            _ => None,
        }
    }

    /// Number of elements (1 for a scalar).
    pub fn len(&self) -> usize {
        match self {
            Datum::Scalar(_) => 1,
            Datum::Set(s) => s.len(),
            Datum::Map(m) => m.len(),
        }
    }

    /// True for an empty set or map.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn into_set(self) -> Result<BTreeSet<Atom>, Datum> {
        match self {
            Datum::Scalar(a) => Ok(BTreeSet::from([a])),
            Datum::Set(s) => Ok(s),
            Datum::Map(m) if m.is_empty() => Ok(BTreeSet::new()),
            m @ Datum::Map(_) => Err(m),
        }
    }

    fn into_map(self) -> Result<BTreeMap<Atom, Atom>, Datum> {
        match self {
            Datum::Map(m) => Ok(m),
            Datum::Set(s) if s.is_empty() => Ok(BTreeMap::new()),
            d => Err(d),
        }
    }

    /// Applies an update2 `modify` difference to a set or map (see the module
    /// doc). A scalar `self` is treated as a one-element set; callers replace
    /// scalar *columns* instead of calling this.
    pub fn apply_diff(&mut self, diff: &Datum) -> Result<(), DatumError> {
        let is_map =
            matches!(self, Datum::Map(_)) || matches!(diff, Datum::Map(m) if !m.is_empty());
        let cur = std::mem::replace(self, Datum::empty_set());
        if is_map {
            let mut map = cur
                .into_map()
                .map_err(|d| DatumError::new("map", &d.to_json()))?;
            let d = diff
                .clone()
                .into_map()
                .map_err(|d| DatumError::new("map diff", &d.to_json()))?;
            for (k, v) in d {
                match map.get(&k) {
                    Some(old) if *old == v => {
                        map.remove(&k);
                    }
                    _ => {
                        map.insert(k, v);
                    }
                }
            }
            *self = Datum::Map(map);
        } else {
            let mut set = cur
                .into_set()
                .map_err(|d| DatumError::new("set", &d.to_json()))?;
            let d = diff
                .clone()
                .into_set()
                .map_err(|d| DatumError::new("set diff", &d.to_json()))?;
            for a in d {
                if !set.remove(&a) {
                    set.insert(a);
                }
            }
            *self = Datum::Set(set);
        }
        Ok(())
    }

    /// The update2 difference from `old` to `new` (sets and maps; scalars
    /// yield `new`), such that `old.apply_diff(&diff) == new`.
    pub fn diff(old: &Datum, new: &Datum) -> Datum {
        match (old, new) {
            (Datum::Map(o), Datum::Map(n)) => {
                let mut d = BTreeMap::new();
                for (k, v) in o {
                    match n.get(k) {
                        None => {
                            d.insert(k.clone(), v.clone());
                        }
                        Some(nv) if nv != v => {
                            d.insert(k.clone(), nv.clone());
                        }
                        Some(_) => {}
                    }
                }
                for (k, v) in n {
                    if !o.contains_key(k) {
                        d.insert(k.clone(), v.clone());
                    }
                }
                Datum::Map(d)
            }
            (Datum::Scalar(_), Datum::Scalar(_)) => new.clone(),
            _ => {
                let o: BTreeSet<&Atom> = old.atoms().into_iter().collect();
                let n: BTreeSet<&Atom> = new.atoms().into_iter().collect();
                Datum::Set(o.symmetric_difference(&n).map(|a| (*a).clone()).collect())
            }
        }
    }

    /// The integer of a scalar or one-element set.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_atom()?.as_i64()
    }

    /// The string of a scalar or one-element set.
    pub fn as_str(&self) -> Option<&str> {
        self.as_atom()?.as_str()
    }

    /// The boolean of a scalar or one-element set.
    pub fn as_bool(&self) -> Option<bool> {
        self.as_atom()?.as_bool()
    }

    /// The UUID of a scalar or one-element set.
    pub fn as_uuid(&self) -> Option<Uuid> {
        self.as_atom()?.as_uuid()
    }

    /// All integers of a set, in order.
    pub fn integers(&self) -> Vec<i64> {
        self.atoms().into_iter().filter_map(Atom::as_i64).collect()
    }

    /// All strings of a set, in order.
    pub fn strings(&self) -> Vec<String> {
        self.atoms()
            .into_iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    }

    /// All UUIDs of a set, in order.
    pub fn uuids(&self) -> Vec<Uuid> {
        self.atoms().into_iter().filter_map(Atom::as_uuid).collect()
    }

    /// A string→string map (other pairs skipped).
    pub fn string_map(&self) -> BTreeMap<String, String> {
        match self {
            Datum::Map(m) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// A string→integer map (other pairs skipped).
    pub fn integer_map(&self) -> BTreeMap<String, i64> {
        match self {
            Datum::Map(m) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_i64()?)))
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

impl From<Atom> for Datum {
    fn from(a: Atom) -> Self {
        Datum::Scalar(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn ty(table: &str, col: &str) -> ColumnType {
        Schema::vswitch_subset().column(table, col).unwrap().clone()
    }

    #[test]
    fn uuid_roundtrip() {
        let s = "042d67fa-f050-41a2-bbd8-cdf6ad2fa133";
        let u: Uuid = s.parse().unwrap();
        assert_eq!(u.to_string(), s);
        assert_eq!(
            Uuid::nil().to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert!("042d67fa-f050-41a2-bbd8-cdf6ad2fa13"
            .parse::<Uuid>()
            .is_err());
        assert!("042d67fa+f050-41a2-bbd8-cdf6ad2fa133"
            .parse::<Uuid>()
            .is_err());
        assert!("042d67fa-f050-41a2-bbd8-cdf6ad2fa13g"
            .parse::<Uuid>()
            .is_err());
        let upper: Uuid = s.to_uppercase().parse().unwrap();
        assert_eq!(upper, u);
    }

    #[test]
    fn parse_atoms() {
        assert_eq!(Atom::from_json(&json!(5), None).unwrap(), Atom::Integer(5));
        assert_eq!(
            Atom::from_json(&json!(5), Some(AtomicType::Real)).unwrap(),
            Atom::Real(5.0)
        );
        assert_eq!(Atom::from_json(&json!(1.5), None).unwrap(), Atom::Real(1.5));
        assert!(Atom::from_json(&json!(1.5), Some(AtomicType::Integer)).is_err());
        assert!(Atom::from_json(&json!("x"), Some(AtomicType::Integer)).is_err());
        assert_eq!(
            Atom::from_json(&json!(["named-uuid", "row1"]), Some(AtomicType::Uuid)).unwrap(),
            Atom::NamedUuid("row1".into())
        );
        assert!(Atom::from_json(&json!(["uuid", "nope"]), None).is_err());
        assert!(Atom::from_json(&json!(null), None).is_err());
        assert!(Atom::from_json(&json!({}), None).is_err());
    }

    #[test]
    fn parse_datums_with_types() {
        // Optional column: bare atom = set of one; ["set",[]] = empty.
        assert_eq!(
            Datum::from_json(&json!(10), Some(&ty("Port", "tag"))).unwrap(),
            Datum::set([10])
        );
        assert_eq!(
            Datum::from_json(&json!(["set", []]), Some(&ty("Port", "tag"))).unwrap(),
            Datum::empty_set()
        );
        assert_eq!(
            Datum::from_json(&json!(["set", [1, 2]]), Some(&ty("Port", "trunks"))).unwrap(),
            Datum::set([2, 1])
        );
        let u = "800fdeb7-913e-40ad-a98c-10969e1348dd";
        assert_eq!(
            Datum::from_json(&json!(["uuid", u]), Some(&ty("Bridge", "ports"))).unwrap(),
            Datum::set([u.parse::<Uuid>().unwrap()])
        );
        assert_eq!(
            Datum::from_json(&json!("br0"), Some(&ty("Bridge", "name"))).unwrap(),
            Datum::Scalar("br0".into())
        );
        assert_eq!(
            Datum::from_json(&json!(["set", ["br0"]]), Some(&ty("Bridge", "name"))).unwrap(),
            Datum::Scalar("br0".into())
        );
        assert_eq!(
            Datum::from_json(
                &json!(["map", [["rx_bytes", 0], ["tx_bytes", 7]]]),
                Some(&ty("Interface", "statistics"))
            )
            .unwrap(),
            Datum::map([("rx_bytes", 0), ("tx_bytes", 7)])
        );
        assert!(
            Datum::from_json(&json!(["map", [["a", "b"]]]), Some(&ty("Port", "trunks"))).is_err()
        );
        assert!(Datum::from_json(
            &json!(["map", [["a", 1]]]),
            Some(&ty("Bridge", "other_config"))
        )
        .is_err());
        assert!(Datum::from_json(
            &json!(["set", [1, 2]]),
            Some(&ty("Open_vSwitch", "cur_cfg"))
        )
        .is_err());
        assert!(Datum::from_json(&json!(["map", [["a"]]]), None).is_err());
        assert!(Datum::from_json(&json!(["set", 1]), None).is_err());
    }

    #[test]
    fn emit() {
        assert_eq!(Datum::set([10]).to_json(), json!(10));
        assert_eq!(Datum::empty_set().to_json(), json!(["set", []]));
        assert_eq!(Datum::set([30, 20]).to_json(), json!(["set", [20, 30]]));
        assert_eq!(
            Datum::map([("a", "b")]).to_json(),
            json!(["map", [["a", "b"]]])
        );
        let u: Uuid = "800fdeb7-913e-40ad-a98c-10969e1348dd".parse().unwrap();
        assert_eq!(
            Datum::set([u]).to_json(),
            json!(["uuid", "800fdeb7-913e-40ad-a98c-10969e1348dd"])
        );
        for d in [
            Datum::set([1, 2, 3]),
            Datum::map([("x", 1), ("y", 2)]),
            Datum::empty_set(),
        ] {
            assert_eq!(Datum::from_json(&d.to_json(), None).unwrap(), d);
        }
    }

    #[test]
    fn set_diff_is_symmetric_difference() {
        let mut d = Datum::set([1, 2]);
        d.apply_diff(&Datum::set([2, 3])).unwrap();
        assert_eq!(d, Datum::set([1, 3]));
        // Bare-atom shorthand as a diff (removing one port).
        let mut s = Datum::Scalar(5.into());
        s.apply_diff(&Datum::Scalar(5.into())).unwrap();
        assert_eq!(s, Datum::empty_set());
    }

    #[test]
    fn map_diff_rules() {
        let mut m = Datum::map([("a", "1"), ("b", "2"), ("c", "3")]);
        // same value removes, different value replaces, new key adds
        m.apply_diff(&Datum::map([("a", "1"), ("b", "9"), ("d", "4")]))
            .unwrap();
        assert_eq!(m, Datum::map([("b", "9"), ("c", "3"), ("d", "4")]));
        let mut e = Datum::empty_set();
        e.apply_diff(&Datum::map([("foo", "bar")])).unwrap();
        assert_eq!(e, Datum::map([("foo", "bar")]));
        assert!(Datum::map([("a", "b")])
            .apply_diff(&Datum::set([1]))
            .is_err());
    }

    #[test]
    fn diff_then_apply_roundtrips() {
        let cases = [
            (Datum::set([1, 2, 3]), Datum::set([3, 4])),
            (Datum::empty_set(), Datum::set([7])),
            (
                Datum::map([("a", 1), ("b", 2)]),
                Datum::map([("b", 3), ("c", 4)]),
            ),
            (Datum::map([("a", 1)]), Datum::Map(BTreeMap::new())),
        ];
        for (old, new) in cases {
            let d = Datum::diff(&old, &new);
            let mut x = old.clone();
            x.apply_diff(&d).unwrap();
            assert_eq!(x, new, "{old:?} -> {new:?} via {d:?}");
        }
    }

    #[test]
    fn atom_order_is_total() {
        let mut s = BTreeSet::new();
        s.insert(Atom::Real(f64::NAN));
        s.insert(Atom::Real(1.0));
        s.insert(Atom::Integer(1));
        s.insert(Atom::Real(f64::NAN));
        assert_eq!(s.len(), 3);
    }
}
