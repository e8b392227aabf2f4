//! Account settings (`PutAccountSetting`, `PutAccountSettingDefault`, `ListAccountSettings`).
//!
//! A setting is stored per principal under `principalArn\nname`; the account default is the
//! root principal's setting. The effective value for a principal is its own setting, else the
//! account default, else AWS's default (reported with type `aws_managed`).

use super::{Ecs, load, save};
use crate::paging::{Page, PageRequest};
use berth_store::{Kind, ListQuery};
use berth_types::ecs::AccountSetting;
use berth_types::{Error, Principal};

/// Every setting name of the model with AWS's default value and the values it accepts.
pub const SETTING_NAMES: &[(&str, &str, &[&str])] = &[
    ("serviceLongArnFormat", "enabled", &["enabled", "disabled"]),
    ("taskLongArnFormat", "enabled", &["enabled", "disabled"]),
    (
        "containerInstanceLongArnFormat",
        "enabled",
        &["enabled", "disabled"],
    ),
    ("awsvpcTrunking", "disabled", &["enabled", "disabled"]),
    (
        "containerInsights",
        "disabled",
        &["enabled", "disabled", "enhanced"],
    ),
    ("fargateFIPSMode", "disabled", &["enabled", "disabled"]),
    ("tagResourceAuthorization", "on", &["on", "off"]),
    ("fargateTaskRetirementWaitPeriod", "7", &["0", "7", "14"]),
    ("guardDutyActivate", "off", &["on", "off"]),
    (
        "defaultLogDriverMode",
        "non-blocking",
        &["blocking", "non-blocking"],
    ),
    ("fargateEventWindows", "disabled", &["enabled", "disabled"]),
];

#[derive(Debug, Clone, Default)]
pub struct ListAccountSettings {
    pub name: Option<String>,
    pub value: Option<String>,
    pub principal_arn: Option<String>,
    pub effective: bool,
    pub page: PageRequest,
}

/// A setting as listed, with whether the user set it or AWS's default applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingView {
    pub setting: AccountSetting,
    pub user_set: bool,
}

fn setting_key(principal_arn: &str, name: &str) -> String {
    format!("{principal_arn}\n{name}")
}

impl Ecs {
    fn check_setting(&self, name: &str, value: &str) -> Result<(), Error> {
        let (_, _, values) = SETTING_NAMES
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| {
                Error::InvalidParameter(format!("Unknown account setting name '{name}'."))
            })?;
        if name == "guardDutyActivate" {
            return Err(Error::InvalidParameter(
                "guardDutyActivate is read-only: it is managed by GuardDuty.".into(),
            ));
        }
        if !values.contains(&value) {
            return Err(Error::InvalidParameter(format!(
                "Invalid value '{value}' for setting '{name}'. Valid values: {}.",
                values.join(", ")
            )));
        }
        Ok(())
    }

    /// The principal ARNs this account's settings may name: root, users and roles.
    fn check_principal(&self, arn: &str) -> Result<(), Error> {
        let ok = arn == self.scope.root_arn()
            || berth_types::ArnRef::parse(arn).is_some_and(|a| {
                a.service == "iam"
                    && a.region.is_empty()
                    && a.account == self.scope.account.as_str()
                    && (a.path_of("user").is_some() || a.path_of("role").is_some())
            });
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidParameter(format!(
                "principalArn '{arn}' is not an IAM user, role or root of this account."
            )))
        }
    }

    /// `PutAccountSetting` (for `principal_arn`, default the caller) and, with
    /// `principal_arn` = root, `PutAccountSettingDefault`.
    pub async fn setting_put(
        &self,
        principal: &Principal,
        name: String,
        value: String,
        principal_arn: Option<String>,
    ) -> Result<AccountSetting, Error> {
        self.check_setting(&name, &value)?;
        let principal_arn = principal_arn.unwrap_or_else(|| principal.arn.clone());
        self.check_principal(&principal_arn)?;
        let setting = AccountSetting {
            name,
            value,
            principal_arn,
        };
        let s = setting.clone();
        self.store
            .write(move |tx| {
                let key = setting_key(&s.principal_arn, &s.name);
                let existing = tx.get(Kind::AccountSetting, &key)?.map(|r| r.generation);
                save(tx, Kind::AccountSetting, &key, None, &s, existing)
            })
            .await?;
        Ok(setting)
    }

    pub async fn setting_put_default(
        &self,
        principal: &Principal,
        name: String,
        value: String,
    ) -> Result<AccountSetting, Error> {
        let root = self.scope.root_arn();
        self.setting_put(principal, name, value, Some(root)).await
    }

    fn setting_get(
        &self,
        principal_arn: &str,
        name: &str,
    ) -> Result<Option<AccountSetting>, Error> {
        Ok(self
            .store
            .read(|r| {
                load::<AccountSetting>(
                    r.get(Kind::AccountSetting, &setting_key(principal_arn, name))?,
                )
            })?
            .map(|(_, s)| s))
    }

    /// The account-wide value of a setting: the default set by the account, else AWS's.
    pub fn setting_effective_default(&self, name: &str) -> Result<String, Error> {
        Ok(self
            .setting_effective(&self.scope.root_arn(), name)?
            .setting
            .value)
    }

    fn setting_effective(&self, principal_arn: &str, name: &str) -> Result<SettingView, Error> {
        if let Some(s) = self.setting_get(principal_arn, name)? {
            return Ok(SettingView {
                setting: s,
                user_set: true,
            });
        }
        let root = self.scope.root_arn();
        if let Some(s) = self.setting_get(&root, name)? {
            return Ok(SettingView {
                setting: s,
                user_set: true,
            });
        }
        let default = SETTING_NAMES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, d, _)| *d)
            .ok_or_else(|| {
                Error::InvalidParameter(format!("Unknown account setting name '{name}'."))
            })?;
        Ok(SettingView {
            setting: AccountSetting {
                name: name.into(),
                value: default.into(),
                principal_arn: root,
            },
            user_set: false,
        })
    }

    /// `ListAccountSettings`.
    pub fn setting_list(
        &self,
        principal: &Principal,
        q: &ListAccountSettings,
    ) -> Result<Page<SettingView>, Error> {
        let principal_arn = q
            .principal_arn
            .clone()
            .unwrap_or_else(|| principal.arn.clone());
        if let Some(n) = &q.name
            && !SETTING_NAMES.iter().any(|(x, _, _)| x == n)
        {
            return Err(Error::InvalidParameter(format!(
                "Unknown account setting name '{n}'."
            )));
        }
        let value_ok = |v: &SettingView| q.value.as_deref().is_none_or(|x| x == v.setting.value);
        if q.effective {
            // A fixed, small set: one page ordered by name, filtered, then paged in memory.
            let mut all = Vec::new();
            for (name, _, _) in SETTING_NAMES {
                if q.name.as_deref().is_some_and(|n| n != *name) {
                    continue;
                }
                let v = self.setting_effective(&principal_arn, name)?;
                if value_ok(&v) {
                    all.push(v);
                }
            }
            let scope = format!(
                "ListAccountSettings\n{principal_arn}\n{:?}\n{:?}\ntrue",
                q.name, q.value
            );
            let (limit, after) = self.page_start(&scope, &q.page, 10, 10)?;
            let start = after.and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
            let items: Vec<_> = all.iter().skip(start).take(limit).cloned().collect();
            let next = start + items.len();
            return Ok(Page {
                items,
                next_token: (next < all.len())
                    .then(|| self.pager.encode(&scope, &next.to_string())),
            });
        }
        let prefix = format!("{principal_arn}\n{}", q.name.as_deref().unwrap_or(""));
        let scope = format!("ListAccountSettings\n{prefix}\n{:?}\nfalse", q.value);
        let page = self.page(
            Kind::AccountSetting,
            &scope,
            ListQuery {
                prefix: &prefix,
                ..Default::default()
            },
            &q.page,
            (10, 10),
            |r| {
                let s: AccountSetting = serde_json::from_str(&r.doc).map_err(Error::internal)?;
                Ok(SettingView {
                    setting: s,
                    user_set: true,
                })
            },
        )?;
        Ok(Page {
            items: page.items.into_iter().filter(|v| value_ok(v)).collect(),
            next_token: page.next_token,
        })
    }
}
