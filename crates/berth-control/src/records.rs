//! Domain values as store records: JSON documents with a generation.

use berth_store::{Kind, ListQuery, Record, Tx};
use berth_types::{Error, Generation};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes a stored record into a domain value with its generation.
pub(crate) fn load<T: DeserializeOwned>(
    rec: Option<Record>,
) -> Result<Option<(Generation, T)>, Error> {
    rec.map(|r| {
        serde_json::from_str(&r.doc)
            .map(|v| (r.generation, v))
            .map_err(|e| Error::internal(format!("corrupt {} record: {e}", r.key)))
    })
    .transpose()
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
    let doc = serde_json::to_string(value).map_err(Error::internal)?;
    match expected {
        None => tx.insert(kind, key, status, &doc)?,
        Some(g) => tx.update(kind, key, g, status, &doc)?,
    };
    Ok(())
}

/// Every record of `kind` whose key starts with `prefix`, decoded, with its key.
pub(crate) fn all<T: DeserializeOwned>(
    tx: &Tx<'_>,
    kind: Kind,
    prefix: &str,
) -> Result<Vec<(String, T)>, Error> {
    tx.list(
        kind,
        &ListQuery {
            prefix,
            limit: usize::MAX >> 1,
            ..Default::default()
        },
    )?
    .into_iter()
    .map(|r| {
        let key = r.key.clone();
        load::<T>(Some(r)).map(|x| (key, x.expect("record given").1))
    })
    .collect()
}
