//! Domain values as store records: JSON documents with a generation.

use berth_store::{Kind, ListQuery, Read, Record, Tx};
use berth_types::{Error, Generation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

/// Decodes a record's document (`key` names it in the error).
pub(crate) fn decode<T: DeserializeOwned>(doc: &str, key: &str) -> Result<T, Error> {
    serde_json::from_str(doc).map_err(|e| Error::internal(format!("corrupt {key} record: {e}")))
}

/// Decoded records kept by key, each with the document it was decoded from: a record read
/// again unchanged is not decoded again (the document is compared, not the generation, which
/// starts over when a key is deleted and created again). Bounded: emptied when full.
pub(crate) struct Decoded<T> {
    map: std::sync::Mutex<HashMap<String, (String, Arc<T>)>>,
    limit: usize,
}

impl<T: DeserializeOwned> Decoded<T> {
    pub(crate) fn new(limit: usize) -> Self {
        Decoded {
            map: Default::default(),
            limit,
        }
    }

    /// As [`load`], from the cache when it holds this very document.
    pub(crate) fn load(&self, rec: Option<Record>) -> Result<Option<(Generation, Arc<T>)>, Error> {
        let Some(rec) = rec else { return Ok(None) };
        if let Some((doc, value)) = self.map.lock().expect("decoded").get(&rec.key)
            && *doc == rec.doc
        {
            return Ok(Some((rec.generation, value.clone())));
        }
        let value = Arc::new(decode::<T>(&rec.doc, &rec.key)?);
        let mut map = self.map.lock().expect("decoded");
        if map.len() >= self.limit {
            map.clear();
        }
        map.insert(rec.key, (rec.doc, value.clone()));
        Ok(Some((rec.generation, value)))
    }
}

/// Decodes a stored record into a domain value with its generation.
pub(crate) fn load<T: DeserializeOwned>(
    rec: Option<Record>,
) -> Result<Option<(Generation, T)>, Error> {
    rec.map(|r| decode(&r.doc, &r.key).map(|v| (r.generation, v)))
        .transpose()
}

fn encode<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::internal)
}

/// Stores a domain value: insert when `expected` is `None`, else a conditional update.
pub(crate) fn save<T: Serialize>(
    tx: &mut Tx<'_>,
    kind: Kind,
    key: &str,
    status: Option<&str>,
    value: &T,
    expected: Option<Generation>,
) -> Result<(), Error> {
    let doc = encode(value)?;
    match expected {
        None => tx.insert(kind, key, status, &doc)?,
        Some(g) => tx.update(kind, key, g, status, &doc)?,
    };
    Ok(())
}

/// Creates the record of a key no record can have yet by construction (see
/// [`Tx::insert_new`]).
pub(crate) fn create_new<T: Serialize>(
    tx: &mut Tx<'_>,
    kind: Kind,
    key: &str,
    status: Option<&str>,
    value: &T,
) -> Result<(), Error> {
    tx.insert_new(kind, key, status, &encode(value)?)?;
    Ok(())
}

/// Every record of `kind` whose key starts with `prefix`, decoded, with its key.
pub(crate) fn all<T: DeserializeOwned>(
    r: &impl Read,
    kind: Kind,
    prefix: &str,
) -> Result<Vec<(String, T)>, Error> {
    all_with(r, kind, prefix, None)
}

/// As [`all`], only those whose status column is `status` (when given).
pub(crate) fn all_with<T: DeserializeOwned>(
    r: &impl Read,
    kind: Kind,
    prefix: &str,
    status: Option<&str>,
) -> Result<Vec<(String, T)>, Error> {
    r.list(
        kind,
        &ListQuery {
            prefix,
            status,
            limit: usize::MAX >> 1,
            ..Default::default()
        },
    )?
    .into_iter()
    .map(|r| decode(&r.doc, &r.key).map(|x| (r.key, x)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, generation: u64, doc: &str) -> Option<Record> {
        Some(Record {
            key: key.into(),
            generation: Generation(generation),
            status: None,
            doc: doc.into(),
        })
    }

    #[test]
    fn decoded_values_are_shared_until_the_document_changes() {
        let cache = Decoded::<Vec<u32>>::new(2);
        let (g, first) = cache.load(record("a", 1, "[1]")).unwrap().unwrap();
        assert_eq!((g, first.as_slice()), (Generation(1), &[1][..]));
        let (_, again) = cache.load(record("a", 1, "[1]")).unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged record is not decoded again"
        );
        // Deleted and created again: the generation starts over, the document differs.
        let (_, recreated) = cache.load(record("a", 1, "[2]")).unwrap().unwrap();
        assert_eq!(recreated.as_slice(), &[2]);
        assert!(cache.load(None).unwrap().is_none());
        assert!(cache.load(record("b", 1, "not json")).is_err());
        // Full: emptied, and still right.
        cache.load(record("c", 1, "[3]")).unwrap();
        cache.load(record("d", 1, "[4]")).unwrap();
        let (_, a) = cache.load(record("a", 1, "[2]")).unwrap().unwrap();
        assert_eq!(a.as_slice(), &[2]);
    }
}
