//! ECS settings: wire input → domain command, domain view → wire output.

use super::*;

/// `ListAccountSettings`.
pub(super) async fn list_account_settings(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let principal = cx.principal;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        name: Option<String>,
        value: Option<String>,
        principal_arn: Option<String>,
        #[serde(default)]
        effective_settings: bool,
        #[serde(flatten)]
        paging: Paging,
    }
    let i: In = input(v)?;
    let page = ecs.setting_list(
        principal,
        &ListAccountSettings {
            name: i.name,
            value: i.value,
            principal_arn: i.principal_arn,
            effective: i.effective_settings,
            page: i.paging.request(),
        },
    )?;
    Ok(page_out("settings", page, |s| {
        json!({
            "name": s.setting.name,
            "value": s.setting.value,
            "principalArn": s.setting.principal_arn,
            "type": if s.user_set { "user" } else { "aws_managed" },
        })
    }))
}

/// `PutAccountSetting` / `PutAccountSettingDefault`.
pub(super) async fn put_account_setting(cx: &Cx<'_>, op: EcsOp, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let principal = cx.principal;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        name: String,
        value: String,
        principal_arn: Option<String>,
    }
    let i: In = input(v)?;
    let s = if op == EcsOp::PutAccountSetting {
        ecs.setting_put(principal, i.name, i.value, i.principal_arn)
            .await?
    } else {
        ecs.setting_put_default(principal, i.name, i.value).await?
    };
    Ok(
        json!({"setting": {"name": s.name, "value": s.value, "principalArn": s.principal_arn, "type": "user"}}),
    )
}
