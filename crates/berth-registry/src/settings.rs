//! Registry-level settings of one region's registry, one `registry-setting` record each: the
//! registry policy (PutRegistryPolicy), the resource policy of the whole registry that grants
//! what ECR enforces at that level (`ecr:CreateRepository`, `ecr:ReplicateImage`,
//! `ecr:BatchImportUpstreamImage`).

use crate::Registry;
use berth_store::Kind;
use berth_types::Error;
use serde::{Deserialize, Serialize};

/// The record key of the registry policy.
const POLICY: &str = "policy";

#[derive(Serialize, Deserialize)]
struct PolicyRecord {
    text: String,
}

/// ECR's answer when the registry has no policy.
fn no_policy(account: &str) -> Error {
    Error::coded(
        "RegistryPolicyNotFoundException",
        format!("Registry policy does not exist in the registry with id '{account}'"),
    )
}

impl Registry {
    /// The registry policy's text, if one is set.
    pub fn registry_policy(&self) -> Result<Option<String>, Error> {
        let rec = self.store.read(|r| r.get(Kind::RegistrySetting, POLICY))?;
        rec.map(|r| crate::decode::<PolicyRecord>(r).map(|(_, p)| p.text))
            .transpose()
    }

    /// Sets the registry policy (the caller has checked the document).
    pub async fn registry_policy_put(&self, text: String) -> Result<(), Error> {
        self.store
            .write(move |tx| {
                let doc = crate::encode(&PolicyRecord { text })?;
                match tx.get(Kind::RegistrySetting, POLICY)? {
                    Some(rec) => {
                        tx.update(Kind::RegistrySetting, POLICY, rec.generation, None, &doc)
                    }
                    None => tx.insert(Kind::RegistrySetting, POLICY, None, &doc),
                }
                .map(|_| ())
            })
            .await
    }

    /// Removes the registry policy, answering the text it had.
    pub async fn registry_policy_delete(&self) -> Result<String, Error> {
        let account = self.scope.account.to_string();
        self.store
            .write(move |tx| {
                let rec = tx
                    .get(Kind::RegistrySetting, POLICY)?
                    .ok_or_else(|| no_policy(&account))?;
                let generation = rec.generation;
                let (_, p) = crate::decode::<PolicyRecord>(rec)?;
                tx.delete(Kind::RegistrySetting, POLICY, generation)?;
                Ok(p.text)
            })
            .await
    }

    /// [`Registry::registry_policy`], or ECR's `RegistryPolicyNotFoundException`.
    pub fn registry_policy_required(&self) -> Result<String, Error> {
        self.registry_policy()?
            .ok_or_else(|| no_policy(self.scope.account.as_str()))
    }
}
