use crate::{code, start};
use berth_testkit::aws_sdk_ecs::types::SettingName;

#[tokio::test]
async fn account_settings_put_list_effective() {
    let server = start();
    let ecs = server.ecs();
    let root = "arn:aws:iam::000000000000:root";

    // Nothing set yet: no user settings, effective ones are AWS's defaults.
    let none = ecs.list_account_settings().send().await.unwrap();
    assert!(none.settings().is_empty());
    let eff = ecs
        .list_account_settings()
        .effective_settings(true)
        .name(SettingName::ContainerInsights)
        .send()
        .await
        .unwrap();
    assert_eq!(eff.settings()[0].value(), Some("disabled"));
    assert_eq!(
        eff.settings()[0].r#type().map(|t| t.as_str()),
        Some("aws_managed")
    );

    let put = ecs
        .put_account_setting_default()
        .name(SettingName::ContainerInsights)
        .value("enabled")
        .send()
        .await
        .unwrap();
    let s = put.setting.unwrap();
    assert_eq!(
        (s.principal_arn(), s.value()),
        (Some(root), Some("enabled"))
    );

    // New clusters follow the account default.
    let c = ecs
        .create_cluster()
        .cluster_name("x")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(c.settings()[0].value(), Some("enabled"));

    let user = "arn:aws:iam::000000000000:user/alice";
    ecs.put_account_setting()
        .name(SettingName::TaskLongArnFormat)
        .value("disabled")
        .principal_arn(user)
        .send()
        .await
        .unwrap();
    let alice = ecs
        .list_account_settings()
        .principal_arn(user)
        .send()
        .await
        .unwrap();
    assert_eq!(alice.settings().len(), 1);
    let alice_eff = ecs
        .list_account_settings()
        .principal_arn(user)
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    let find = |n: &str| {
        alice_eff
            .settings()
            .iter()
            .find(|s| s.name().map(|x| x.as_str()) == Some(n))
            .and_then(|s| s.value())
            .map(str::to_string)
    };
    assert_eq!(find("taskLongArnFormat").as_deref(), Some("disabled"));
    assert_eq!(
        find("containerInsights").as_deref(),
        Some("enabled"),
        "account default applies"
    );
    assert!(
        alice_eff.next_token().is_some(),
        "11 settings come in pages of 10"
    );

    let all: Vec<_> = ecs
        .list_account_settings()
        .effective_settings(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 11);

    let err = ecs
        .put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("sometimes")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecs
        .put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("enabled")
        .principal_arn("arn:aws:iam::999999999999:user/eve")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
}
