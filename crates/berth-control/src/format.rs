//! The data directory's record format: which shape its stored documents have, kept as the
//! `record-format` meta record and brought up to [`FORMAT`] at start-up, one migration at a
//! time (each one commits before the next starts, so a crash resumes where it stopped).
//!
//! 1. One region, keys without a region (a data directory without the meta record).
//! 2. Every regional key carries its region; the records of format 1 go to the home region.
//! 3. The typed domain (task definitions, overrides, a service's load balancers and placement,
//!    ELB actions and conditions as the typed shapes of `berth_types::shapes`). The typed
//!    shapes keep the API's member names, so format-2 documents are format-3 documents: the
//!    migration proves it by decoding every such record and refuses to start on one that does
//!    not decode, naming it, rather than serving it wrongly.

use crate::records::all;
use berth_store::{Kind, Store};
use berth_types::Error;
use berth_types::ecs::{Cluster, ContainerInstance, Service, Task, TaskDefinition};
use berth_types::elb::{Listener, Rule};

/// The record format this build reads and writes.
pub const FORMAT: u32 = 3;

const META_KEY: &str = "record-format";

/// What start-up did to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub from: u32,
    pub to: u32,
    /// Records moved to the home region (format 1 → 2).
    pub moved: usize,
}

/// The data directory's format (1 when it never recorded one).
pub fn current(store: &Store) -> Result<u32, Error> {
    let rec = store.read(|r| r.get(Kind::Meta, META_KEY))?;
    match rec {
        None => Ok(1),
        Some(r) => r
            .doc
            .trim()
            .parse()
            .map_err(|_| Error::internal(format!("unreadable record format {:?}", r.doc))),
    }
}

/// Brings the data directory to [`FORMAT`]; `home_region` receives the records of format 1.
pub async fn migrate(store: &Store, home_region: &str) -> Result<Migrated, Error> {
    let from = current(store)?;
    if from > FORMAT {
        return Err(Error::internal(format!(
            "the data directory has record format {from}, newer than this Berth's {FORMAT}: \
             run the Berth that wrote it"
        )));
    }
    let mut moved = 0;
    for step in from..FORMAT {
        match step {
            1 => moved = store.assign_home_region(home_region).await?,
            2 => decode_typed(store)?,
            _ => unreachable!("a migration for every format below FORMAT"),
        }
        set(store, step + 1).await?;
    }
    Ok(Migrated {
        from,
        to: FORMAT,
        moved,
    })
}

async fn set(store: &Store, format: u32) -> Result<(), Error> {
    store
        .write(move |tx| {
            let doc = format.to_string();
            match tx.get(Kind::Meta, META_KEY)? {
                Some(r) => tx.update(Kind::Meta, META_KEY, r.generation, None, &doc),
                None => tx.insert(Kind::Meta, META_KEY, None, &doc),
            }
            .map(|_| ())
        })
        .await
}

/// Format 2 → 3: every record whose type became typed decodes as it.
fn decode_typed(store: &Store) -> Result<(), Error> {
    for region in store.regions()? {
        let store = store.in_region(&region);
        store.read(|r| {
            all::<Cluster>(r, Kind::Cluster, "")?;
            all::<TaskDefinition>(r, Kind::TaskDefinition, "")?;
            all::<ContainerInstance>(r, Kind::ContainerInstance, "")?;
            all::<Task>(r, Kind::Task, "")?;
            all::<Service>(r, Kind::Service, "")?;
            all::<Listener>(r, Kind::Listener, "")?;
            all::<Rule>(r, Kind::Rule, "")?;
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn format_migrations_run_once_in_order_and_refuse_newer_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("berth.db")).unwrap();
        // A format-1 record: a cluster under a key without its region.
        let cluster = r#"{"name":"old","status":"ACTIVE","settings":[],"configuration":null,
            "capacity_providers":[],"default_capacity_provider_strategy":[],
            "service_connect_defaults":null,"tags":[],"created_at":0}"#;
        store
            .write(move |tx| tx.insert(Kind::Cluster, "old", None, cluster))
            .await
            .unwrap();
        assert_eq!(current(&store).unwrap(), 1);
        let m = migrate(&store, "eu-west-1").await.unwrap();
        assert_eq!((m.from, m.to, m.moved), (1, FORMAT, 1));
        assert_eq!(current(&store).unwrap(), FORMAT);
        let regional = store.in_region("eu-west-1");
        assert!(
            regional
                .read(|r| r.get(Kind::Cluster, "old"))
                .unwrap()
                .is_some()
        );
        let again = migrate(&store, "us-east-1").await.unwrap();
        assert_eq!((again.from, again.moved), (FORMAT, 0));
        set(&store, FORMAT + 1).await.unwrap();
        let err = migrate(&store, "eu-west-1").await.unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[tokio::test]
    async fn format_migration_names_a_record_that_does_not_decode() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("berth.db")).unwrap();
        set(&store, 2).await.unwrap();
        let regional = store.in_region("us-east-1");
        regional
            .write(|tx| tx.insert(Kind::Rule, "lb\nl\nr", None, r#"{"actions": 5}"#))
            .await
            .unwrap();
        let err = migrate(&store, "us-east-1").await.unwrap_err();
        assert!(err.to_string().contains("lb\nl\nr"), "{err}");
        assert_eq!(
            current(&store).unwrap(),
            2,
            "a failed migration leaves the format"
        );
    }
}
