//! Domain values as store records: JSON documents with a generation.

use berth_store::{Kind, ListQuery, Read, Record, Tx};
use berth_types::{Error, Generation};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes a record's document (`key` names it in the error).
pub(crate) fn decode<T: DeserializeOwned>(doc: &str, key: &str) -> Result<T, Error> {
    serde_json::from_str(doc).map_err(|e| Error::internal(format!("corrupt {key} record: {e}")))
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
