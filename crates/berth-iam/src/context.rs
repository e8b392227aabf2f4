//! The request context: condition keys and their values (spec/iam.md §3.4). Keys are
//! case-insensitive; a key may have several values (`aws:TagKeys`).

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets `key` to one value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.values.insert(key.to_lowercase(), vec![value.into()]);
        self
    }

    /// Sets a multivalued key.
    pub fn set_all(&mut self, key: &str, values: Vec<String>) -> &mut Context {
        self.values.insert(key.to_lowercase(), values);
        self
    }

    /// The values of `key` (`None`: absent).
    pub fn get(&self, key: &str) -> Option<&[String]> {
        match self.values.get(key) {
            Some(v) => Some(v),
            None if key.bytes().any(|b| b.is_ascii_uppercase()) => {
                self.values.get(&key.to_lowercase()).map(Vec::as_slice)
            }
            None => None,
        }
    }
}
