//! Reading only what a JSON filter pattern looks at: the event is deserialized against a trie
//! of the pattern's selectors, members off every selector's path are skipped unallocated
//! (`serde::de::IgnoredAny`, which still checks the JSON is well formed), and the result is a
//! pruned `serde_json::Value` on which the selectors reach exactly what they reach in the whole
//! event. A node under a wildcard or at a selector's end keeps its whole value.
//! Only `pattern::json` calls this; it is what makes FilterLogEvents' JSON scans fast.

use super::json::Step;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Default, Clone)]
pub(crate) struct Trie {
    whole: bool,
    keys: Vec<(String, Trie)>,
    indexes: Vec<(usize, Trie)>,
}

impl Trie {
    pub fn insert(&mut self, steps: &[Step]) {
        match steps.split_first() {
            None | Some((Step::Any, _)) => self.whole = true,
            Some((Step::Key(k), rest)) => {
                let i = match self.keys.iter().position(|(kk, _)| kk == k) {
                    Some(i) => i,
                    None => {
                        self.keys.push((k.clone(), Trie::default()));
                        self.keys.len() - 1
                    }
                };
                self.keys[i].1.insert(rest);
            }
            Some((Step::Index(n), rest)) => {
                let i = match self.indexes.iter().position(|(m, _)| m == n) {
                    Some(i) => i,
                    None => {
                        self.indexes.push((*n, Trie::default()));
                        self.indexes.len() - 1
                    }
                };
                self.indexes[i].1.insert(rest);
            }
        }
    }

    /// The event pruned to this trie's paths, when it is well-formed JSON.
    pub fn read(&self, message: &str) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_str(message);
        let v = Seed(self).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(v)
    }
}

struct Seed<'t>(&'t Trie);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            return serde::Deserialize::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

/// A map key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    // Scalars where a selector wants to go deeper: the selector fails on them either way.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            match self.0.keys.iter().find(|(kk, _)| *kk == k) {
                Some((_, child)) => {
                    let v = map.next_value_seed(Seed(child))?;
                    out.insert(k.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match self.0.indexes.iter().find(|(n, _)| *n == i) {
                Some((_, child)) => match seq.next_element_seed(Seed(child))? {
                    Some(v) => out.push(v),
                    None => break,
                },
                None => match seq.next_element::<IgnoredAny>()? {
                    Some(_) => out.push(Value::Null),
                    None => break,
                },
            }
            i += 1;
        }
        Ok(Value::Array(out))
    }
}
