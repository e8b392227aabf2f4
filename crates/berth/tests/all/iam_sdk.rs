//! IAM and STS through the official `aws-sdk-iam` / `aws-sdk-sts` clients: every IAM
//! operation Berth serves with its errors, and least-privilege users as AWS would judge
//! them (repository patterns, one cluster, `AmazonEC2ContainerRegistryReadOnly`,
//! `aws:SourceIp`, resource tags, a repository policy granting another user pull, a
//! registry policy granting CreateRepository).

use crate::{code, start_with};
use berth_testkit::aws_sdk_iam::Client as Iam;
use berth_testkit::aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, StatusType, Tag};
use berth_testkit::{TestServer, aws_sdk_ecr, aws_sdk_ecs};

const ACCOUNT: &str = "000000000000";

fn allow(actions: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":"{resource}"}}]}}"#
    )
}

fn trust_ecs_tasks() -> &'static str {
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
}

/// A new user `name` with `policy` inline (if any); its key pair.
async fn user_with(iam: &Iam, name: &str, policy: Option<&str>) -> (String, String) {
    iam.create_user().user_name(name).send().await.unwrap();
    if let Some(p) = policy {
        iam.put_user_policy()
            .user_name(name)
            .policy_name("p")
            .policy_document(p)
            .send()
            .await
            .unwrap();
    }
    let k = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    (k.access_key_id, k.secret_access_key)
}

fn ecs_as(server: &TestServer, key: &(String, String)) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&server.sdk_config_with(&key.0, &key.1))
}

fn ecr_as(server: &TestServer, key: &(String, String)) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::new(&server.sdk_config_with(&key.0, &key.1))
}

#[tokio::test]
async fn iam_users_and_access_keys_over_the_sdk() {
    let server = start_with(Default::default());
    let iam = server.iam();

    let u = iam
        .create_user()
        .user_name("alice")
        .path("/team/")
        .tags(Tag::builder().key("team").value("web").build().unwrap())
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(u.arn, format!("arn:aws:iam::{ACCOUNT}:user/team/alice"));
    assert!(u.user_id.starts_with("AIDA"), "{}", u.user_id);
    let e = iam
        .create_user()
        .user_name("ALICE")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "EntityAlreadyExists");
    let e = iam
        .create_user()
        .user_name("bad name!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationError");
    for n in ["bob", "carol"] {
        iam.create_user().user_name(n).send().await.unwrap();
    }
    let got = iam.get_user().user_name("alice").send().await.unwrap();
    assert_eq!(got.user.unwrap().path, "/team/");
    let e = iam.get_user().user_name("nobody").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchEntity");

    // Listing: path prefix, and pages of MaxItems with a Marker.
    let team = iam.list_users().path_prefix("/team/").send().await.unwrap();
    assert_eq!(team.users.len(), 1);
    let first = iam.list_users().max_items(2).send().await.unwrap();
    assert_eq!(first.users.len(), 2);
    assert!(first.is_truncated);
    let rest = iam
        .list_users()
        .marker(first.marker.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.users.len(), 1);
    assert!(!rest.is_truncated);

    // Rename, tags.
    iam.update_user()
        .user_name("carol")
        .new_user_name("caroline")
        .new_path("/ops/")
        .send()
        .await
        .unwrap();
    let e = iam.get_user().user_name("carol").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchEntity");
    iam.tag_user()
        .user_name("bob")
        .tags(Tag::builder().key("cost").value("1").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = iam.list_user_tags().user_name("bob").send().await.unwrap();
    assert_eq!(tags.tags.len(), 1);
    iam.untag_user()
        .user_name("bob")
        .tag_keys("cost")
        .send()
        .await
        .unwrap();
    let tags = iam.list_user_tags().user_name("bob").send().await.unwrap();
    assert!(tags.tags.is_empty());

    // Access keys: two at most, Active/Inactive, last used, deletion.
    let k1 = iam
        .create_access_key()
        .user_name("bob")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    assert!(k1.access_key_id.starts_with("AKIA"));
    assert_eq!(k1.status, StatusType::Active);
    iam.create_access_key()
        .user_name("bob")
        .send()
        .await
        .unwrap();
    let e = iam
        .create_access_key()
        .user_name("bob")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "LimitExceeded");
    let keys = iam
        .list_access_keys()
        .user_name("bob")
        .send()
        .await
        .unwrap();
    assert_eq!(keys.access_key_metadata.len(), 2);
    let unused = iam
        .get_access_key_last_used()
        .access_key_id(&k1.access_key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(unused.user_name.as_deref(), Some("bob"));
    assert!(
        unused
            .access_key_last_used
            .unwrap()
            .last_used_date
            .is_none()
    );
    iam.update_access_key()
        .user_name("bob")
        .access_key_id(&k1.access_key_id)
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();
    let keys = iam
        .list_access_keys()
        .user_name("bob")
        .send()
        .await
        .unwrap();
    assert!(
        keys.access_key_metadata
            .iter()
            .any(|k| k.status == Some(StatusType::Inactive))
    );
    let e = iam.delete_user().user_name("bob").send().await.unwrap_err();
    assert_eq!(
        code(&e),
        "DeleteConflict",
        "a user with keys is not deleted"
    );
    for k in keys.access_key_metadata {
        iam.delete_access_key()
            .user_name("bob")
            .access_key_id(k.access_key_id.unwrap())
            .send()
            .await
            .unwrap();
    }
    let e = iam
        .delete_access_key()
        .user_name("bob")
        .access_key_id(&k1.access_key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchEntity");
    iam.delete_user().user_name("bob").send().await.unwrap();
}

#[tokio::test]
async fn iam_groups_roles_and_policies_over_the_sdk() {
    let server = start_with(Default::default());
    let iam = server.iam();
    iam.create_user().user_name("dev").send().await.unwrap();

    // Groups and membership.
    iam.create_group().group_name("devs").send().await.unwrap();
    let e = iam
        .create_group()
        .group_name("devs")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "EntityAlreadyExists");
    iam.add_user_to_group()
        .group_name("devs")
        .user_name("dev")
        .send()
        .await
        .unwrap();
    let g = iam.get_group().group_name("devs").send().await.unwrap();
    assert_eq!(g.users.len(), 1);
    let of = iam
        .list_groups_for_user()
        .user_name("dev")
        .send()
        .await
        .unwrap();
    assert_eq!(of.groups[0].group_name, "devs");
    assert_eq!(iam.list_groups().send().await.unwrap().groups.len(), 1);
    let e = iam
        .delete_group()
        .group_name("devs")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DeleteConflict", "a group with members");

    // Roles.
    let role = iam
        .create_role()
        .role_name("app")
        .assume_role_policy_document(trust_ecs_tasks())
        .max_session_duration(7200)
        .tags(Tag::builder().key("env").value("dev").build().unwrap())
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert!(role.role_id.starts_with("AROA"));
    let e = iam
        .create_role()
        .role_name("bad")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "MalformedPolicyDocument",
        "a trust policy names a principal"
    );
    let e = iam
        .create_role()
        .role_name("long")
        .assume_role_policy_document(trust_ecs_tasks())
        .max_session_duration(60)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationError");
    iam.update_role()
        .role_name("app")
        .description("the app")
        .send()
        .await
        .unwrap();
    iam.update_assume_role_policy()
        .role_name("app")
        .policy_document(trust_ecs_tasks())
        .send()
        .await
        .unwrap();
    let got = iam
        .get_role()
        .role_name("app")
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(got.description.as_deref(), Some("the app"));
    assert_eq!(got.max_session_duration, Some(7200));
    iam.tag_role()
        .role_name("app")
        .tags(Tag::builder().key("tier").value("1").build().unwrap())
        .send()
        .await
        .unwrap();
    iam.untag_role()
        .role_name("app")
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = iam.list_role_tags().role_name("app").send().await.unwrap();
    assert_eq!(tags.tags.len(), 1);
    assert_eq!(iam.list_roles().send().await.unwrap().roles.len(), 1);

    // Managed policies and their versions.
    let doc = allow(r#""ecs:List*""#, "*");
    let p = iam
        .create_policy()
        .policy_name("lister")
        .policy_document(&doc)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    let arn = p.arn.unwrap();
    assert_eq!(arn, format!("arn:aws:iam::{ACCOUNT}:policy/lister"));
    assert_eq!(p.default_version_id.as_deref(), Some("v1"));
    let e = iam
        .create_policy()
        .policy_name("broken")
        .policy_document("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MalformedPolicyDocument");
    for n in 2..=5 {
        let v = iam
            .create_policy_version()
            .policy_arn(&arn)
            .policy_document(allow(r#""ecs:Describe*""#, "*"))
            .set_as_default(n == 5)
            .send()
            .await
            .unwrap()
            .policy_version
            .unwrap();
        assert_eq!(v.version_id.unwrap(), format!("v{n}"));
    }
    let e = iam
        .create_policy_version()
        .policy_arn(&arn)
        .policy_document(&doc)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "LimitExceeded", "five versions at most");
    let e = iam
        .delete_policy_version()
        .policy_arn(&arn)
        .version_id("v5")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DeleteConflict", "not the default version");
    iam.set_default_policy_version()
        .policy_arn(&arn)
        .version_id("v1")
        .send()
        .await
        .unwrap();
    iam.delete_policy_version()
        .policy_arn(&arn)
        .version_id("v5")
        .send()
        .await
        .unwrap();
    let versions = iam
        .list_policy_versions()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 4);
    let v1 = iam
        .get_policy_version()
        .policy_arn(&arn)
        .version_id("v1")
        .send()
        .await
        .unwrap()
        .policy_version
        .unwrap();
    assert!(v1.is_default_version);
    let text = urlencoding_decode(&v1.document.unwrap());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::from_str::<serde_json::Value>(&doc).unwrap()
    );
    let local = iam
        .list_policies()
        .scope(berth_testkit::aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    assert_eq!(local.policies().len(), 1);
    let aws = iam
        .list_policies()
        .scope(berth_testkit::aws_sdk_iam::types::PolicyScopeType::Aws)
        .send()
        .await
        .unwrap();
    for name in [
        "AdministratorAccess",
        "ReadOnlyAccess",
        "AmazonECS_FullAccess",
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEC2ContainerRegistryPowerUser",
        "AmazonEC2ContainerRegistryFullAccess",
        "AmazonECSTaskExecutionRolePolicy",
        "CloudWatchLogsFullAccess",
        "CloudWatchFullAccess",
        "CloudWatchAgentServerPolicy",
    ] {
        assert!(
            aws.policies()
                .iter()
                .any(|p| p.policy_name.as_deref() == Some(name)),
            "{name} is shipped"
        );
    }

    // Attachments to users, groups and roles.
    iam.attach_user_policy()
        .user_name("dev")
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    iam.attach_group_policy()
        .group_name("devs")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name("app")
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    let e = iam
        .attach_user_policy()
        .user_name("dev")
        .policy_arn("arn:aws:iam::aws:policy/NoSuchPolicy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchEntity");
    let e = iam
        .delete_policy()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DeleteConflict", "an attached policy");
    assert_eq!(
        iam.list_attached_user_policies()
            .user_name("dev")
            .send()
            .await
            .unwrap()
            .attached_policies()
            .len(),
        1
    );
    assert_eq!(
        iam.list_attached_group_policies()
            .group_name("devs")
            .send()
            .await
            .unwrap()
            .attached_policies()
            .len(),
        1
    );
    assert_eq!(
        iam.list_attached_role_policies()
            .role_name("app")
            .send()
            .await
            .unwrap()
            .attached_policies()
            .len(),
        1
    );

    // Inline policies of users, groups and roles.
    iam.put_user_policy()
        .user_name("dev")
        .policy_name("inline")
        .policy_document(&doc)
        .send()
        .await
        .unwrap();
    iam.put_group_policy()
        .group_name("devs")
        .policy_name("inline")
        .policy_document(&doc)
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name("app")
        .policy_name("inline")
        .policy_document(&doc)
        .send()
        .await
        .unwrap();
    let got = iam
        .get_user_policy()
        .user_name("dev")
        .policy_name("inline")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy_name, "inline");
    iam.get_group_policy()
        .group_name("devs")
        .policy_name("inline")
        .send()
        .await
        .unwrap();
    iam.get_role_policy()
        .role_name("app")
        .policy_name("inline")
        .send()
        .await
        .unwrap();
    assert_eq!(
        iam.list_user_policies()
            .user_name("dev")
            .send()
            .await
            .unwrap()
            .policy_names,
        ["inline"]
    );
    assert_eq!(
        iam.list_group_policies()
            .group_name("devs")
            .send()
            .await
            .unwrap()
            .policy_names,
        ["inline"]
    );
    assert_eq!(
        iam.list_role_policies()
            .role_name("app")
            .send()
            .await
            .unwrap()
            .policy_names,
        ["inline"]
    );
    let e = iam
        .get_role_policy()
        .role_name("app")
        .policy_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchEntity");

    // The whole account, and the simulator.
    let details = iam
        .get_account_authorization_details()
        .send()
        .await
        .unwrap();
    assert_eq!(details.user_detail_list().len(), 1);
    assert_eq!(details.group_detail_list().len(), 1);
    assert_eq!(details.role_detail_list().len(), 1);
    let sim = iam
        .simulate_principal_policy()
        .policy_source_arn(format!("arn:aws:iam::{ACCOUNT}:user/dev"))
        .action_names("ecs:ListClusters")
        .action_names("ecs:DeleteCluster")
        .action_names("ecr:DescribeRepositories")
        .send()
        .await
        .unwrap();
    let decision = |action: &str| {
        sim.evaluation_results()
            .iter()
            .find(|r| r.eval_action_name == action)
            .map(|r| r.eval_decision.as_str().to_string())
            .unwrap()
    };
    assert_eq!(decision("ecs:ListClusters"), "allowed");
    assert_eq!(decision("ecs:DeleteCluster"), "implicitDeny");
    assert_eq!(
        decision("ecr:DescribeRepositories"),
        "allowed",
        "ReadOnlyAccess through the group"
    );
    let custom = iam
        .simulate_custom_policy()
        .policy_input_list(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
        )
        .action_names("ecs:RunTask")
        .context_entries(
            ContextEntry::builder()
                .context_key_name("aws:SourceIp")
                .context_key_type(ContextKeyTypeEnum::Ip)
                .context_key_values("192.168.1.1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        custom.evaluation_results()[0].eval_decision.as_str(),
        "implicitDeny"
    );

    // Cleaning up in AWS's order.
    iam.detach_user_policy()
        .user_name("dev")
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    iam.detach_group_policy()
        .group_name("devs")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    iam.detach_role_policy()
        .role_name("app")
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    let e = iam
        .delete_policy()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "DeleteConflict",
        "versions other than the default first"
    );
    for v in ["v2", "v3", "v4"] {
        iam.delete_policy_version()
            .policy_arn(&arn)
            .version_id(v)
            .send()
            .await
            .unwrap();
    }
    iam.delete_policy().policy_arn(&arn).send().await.unwrap();
    iam.delete_user_policy()
        .user_name("dev")
        .policy_name("inline")
        .send()
        .await
        .unwrap();
    iam.delete_group_policy()
        .group_name("devs")
        .policy_name("inline")
        .send()
        .await
        .unwrap();
    iam.remove_user_from_group()
        .group_name("devs")
        .user_name("dev")
        .send()
        .await
        .unwrap();
    iam.delete_group().group_name("devs").send().await.unwrap();
    let e = iam.delete_role().role_name("app").send().await.unwrap_err();
    assert_eq!(code(&e), "DeleteConflict", "a role with an inline policy");
    iam.delete_role_policy()
        .role_name("app")
        .policy_name("inline")
        .send()
        .await
        .unwrap();
    iam.delete_role().role_name("app").send().await.unwrap();
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn iam_least_privilege_users_are_judged_as_aws_judges_them() {
    let server = start_with(Default::default());
    let iam = server.iam();
    let ecr = server.ecr();
    let ecs = server.ecs();
    for repo in ["app/web", "other"] {
        ecr.create_repository()
            .repository_name(repo)
            .send()
            .await
            .unwrap();
    }
    for c in ["a", "b"] {
        ecs.create_cluster().cluster_name(c).send().await.unwrap();
    }
    crate::register(&ecs, "job").await;

    // Push to app/* only.
    let pusher = user_with(
        &iam,
        "pusher",
        Some(&allow(
            r#"["ecr:InitiateLayerUpload","ecr:PutImage","ecr:BatchCheckLayerAvailability"]"#,
            "arn:aws:ecr:*:*:repository/app/*",
        )),
    )
    .await;
    let pusher_ecr = ecr_as(&server, &pusher);
    pusher_ecr
        .initiate_layer_upload()
        .repository_name("app/web")
        .send()
        .await
        .expect("app/* is allowed");
    let e = pusher_ecr
        .initiate_layer_upload()
        .repository_name("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert_eq!(
        e.into_service_error().meta().message(),
        Some(
            "User: arn:aws:iam::000000000000:user/pusher is not authorized to perform: ecr:InitiateLayerUpload on resource: arn:aws:ecr:us-east-1:000000000000:repository/other because no identity-based policy allows the ecr:InitiateLayerUpload action"
        )
    );

    // RunTask in cluster a, not b (a condition on ecs:cluster).
    let runner = user_with(
        &iam,
        "runner",
        Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:RunTask","Resource":"*","Condition":{"ArnEquals":{"ecs:cluster":"arn:aws:ecs:us-east-1:000000000000:cluster/a"}}}]}"#,
        ),
    )
    .await;
    let runner_ecs = ecs_as(&server, &runner);
    let out = runner_ecs
        .run_task()
        .cluster("a")
        .task_definition("job")
        .send()
        .await
        .expect("cluster a is allowed (nothing to place on: a failure, not a denial)");
    assert_eq!(out.failures().len(), 1);
    let e = runner_ecs
        .run_task()
        .cluster("b")
        .task_definition("job")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");

    // AmazonEC2ContainerRegistryReadOnly: read, not write.
    let reader = user_with(&iam, "reader", None).await;
    iam.attach_user_policy()
        .user_name("reader")
        .policy_arn("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
        .send()
        .await
        .unwrap();
    let reader_ecr = ecr_as(&server, &reader);
    let repos = reader_ecr.describe_repositories().send().await.unwrap();
    assert_eq!(repos.repositories().len(), 2);
    reader_ecr
        .get_authorization_token()
        .send()
        .await
        .expect("a reader may log in");
    let e = reader_ecr
        .create_repository()
        .repository_name("mine")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    let e = reader_ecr
        .delete_repository()
        .repository_name("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");

    // aws:SourceIp: allowed only from the network the policy names.
    let from_ten = user_with(
        &iam,
        "from-ten",
        Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:ListClusters","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
        ),
    )
    .await;
    let e = ecs_as(&server, &from_ten)
        .list_clusters()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "AccessDeniedException",
        "the test calls from 127.0.0.1"
    );
    iam.put_user_policy()
        .user_name("from-ten")
        .policy_name("p")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:ListClusters","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}"#,
        )
        .send()
        .await
        .unwrap();
    ecs_as(&server, &from_ten)
        .list_clusters()
        .send()
        .await
        .expect("from loopback now");

    // Resource tags: describe only the repositories tagged team=web.
    ecr.tag_resource()
        .resource_arn(format!(
            "arn:aws:ecr:us-east-1:{ACCOUNT}:repository/app/web"
        ))
        .tags(
            aws_sdk_ecr::types::Tag::builder()
                .key("team")
                .value("web")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tagged = user_with(
        &iam,
        "web-team",
        Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:DescribeImages","Resource":"*","Condition":{"StringEquals":{"ecr:ResourceTag/team":"web"}}}]}"#,
        ),
    )
    .await;
    let tagged_ecr = ecr_as(&server, &tagged);
    tagged_ecr
        .describe_images()
        .repository_name("app/web")
        .send()
        .await
        .expect("tagged team=web");
    let e = tagged_ecr
        .describe_images()
        .repository_name("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");

    // A repository policy grants another user pull, with no identity policy of its own.
    let puller = user_with(&iam, "puller", None).await;
    let puller_ecr = ecr_as(&server, &puller);
    let e = puller_ecr
        .batch_get_image()
        .repository_name("other")
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("latest")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    ecr.set_repository_policy()
        .repository_name("other")
        .policy_text(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/puller"}},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}}]}}"#
        ))
        .send()
        .await
        .unwrap();
    let got = puller_ecr
        .batch_get_image()
        .repository_name("other")
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("latest")
                .build(),
        )
        .send()
        .await
        .expect("the repository policy grants it");
    assert_eq!(
        got.failures().len(),
        1,
        "no such image: a failure, not a denial"
    );
    let e = puller_ecr
        .batch_get_image()
        .repository_name("app/web")
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("latest")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException", "only that repository");
}

#[tokio::test]
async fn ecr_registry_policy_and_the_repository_policy_lock_out_check() {
    let server = start_with(Default::default());
    let iam = server.iam();
    let ecr = server.ecr();

    let e = ecr.get_registry_policy().send().await.unwrap_err();
    assert_eq!(code(&e), "RegistryPolicyNotFoundException");
    let e = ecr
        .put_registry_policy()
        .policy_text(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"ecr:BatchGetImage","Resource":"*"}}]}}"#
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    assert_eq!(
        e.into_service_error().meta().message(),
        Some(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid registry policy provided'"
        )
    );

    // A registry policy lets a user with no identity policy create repositories.
    let maker = user_with(&iam, "maker", None).await;
    let maker_ecr = ecr_as(&server, &maker);
    let e = maker_ecr
        .create_repository()
        .repository_name("made")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/maker"}},"Action":["ecr:CreateRepository","ecr:ReplicateImage"],"Resource":"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*"}}]}}"#
    );
    let put = ecr
        .put_registry_policy()
        .policy_text(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(put.registry_id.as_deref(), Some(ACCOUNT));
    let got = ecr.get_registry_policy().send().await.unwrap();
    assert_eq!(got.policy_text.as_deref(), Some(policy.as_str()));
    maker_ecr
        .create_repository()
        .repository_name("made")
        .send()
        .await
        .expect("granted by the registry policy");
    ecr.delete_registry_policy().send().await.unwrap();
    let e = ecr.delete_registry_policy().send().await.unwrap_err();
    assert_eq!(code(&e), "RegistryPolicyNotFoundException");

    // The lock-out check: a user who may set policies is refused a policy that denies them
    // that, unless forced.
    let admin = user_with(&iam, "admin", Some(&allow(r#""ecr:*""#, "*"))).await;
    let admin_ecr = ecr_as(&server, &admin);
    let deny_me = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/admin"}},"Action":"ecr:SetRepositoryPolicy"}}]}}"#
    );
    let e = admin_ecr
        .set_repository_policy()
        .repository_name("made")
        .policy_text(&deny_me)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    admin_ecr
        .set_repository_policy()
        .repository_name("made")
        .policy_text(&deny_me)
        .force(true)
        .send()
        .await
        .expect("forced");
    let e = admin_ecr
        .set_repository_policy()
        .repository_name("made")
        .policy_text(&deny_me)
        .force(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException", "locked out now");
    let e = ecr
        .set_repository_policy()
        .repository_name("made")
        .policy_text(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException", "no principal");
}

#[tokio::test]
async fn docker_push_as_a_limited_user_is_denied_outside_its_repositories() {
    use crate::docker_e2e::{docker, import_busybox, require_docker_engine, run};
    require_docker_engine();
    let server = start_with(Default::default());
    let ecr = server.ecr();
    for repo in ["app/web", "other"] {
        ecr.create_repository()
            .repository_name(repo)
            .send()
            .await
            .unwrap();
    }
    let pusher = user_with(
        &server.iam(),
        "pusher",
        Some(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"},
                {"Effect":"Allow","Action":["ecr:BatchCheckLayerAvailability","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage","ecr:BatchGetImage"],
                 "Resource":"arn:aws:ecr:*:*:repository/app/*"}]}"#,
        ),
    )
    .await;
    let token = ecr_as(&server, &pusher)
        .get_authorization_token()
        .send()
        .await
        .unwrap();
    let token = token.authorization_data()[0]
        .authorization_token()
        .unwrap()
        .to_string();
    let (_, password) = berth_testkit::decode_basic(&token);
    let config = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &password, &host]));
    let allowed = format!("{host}/app/web:1");
    let refused = format!("{host}/other:1");
    import_busybox(config.path(), &allowed, "limited\n");
    run(docker(config.path()).args(["tag", &allowed, &refused]));
    run(docker(config.path()).args(["push", &allowed]));
    let out = docker(config.path())
        .args(["push", &refused])
        .output()
        .unwrap();
    assert!(!out.status.success(), "push to other must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("denied"), "docker says denied: {stderr}");
    let images = ecr
        .describe_images()
        .repository_name("other")
        .send()
        .await
        .unwrap();
    assert!(images.image_details().is_empty(), "nothing reached other");
    for image in [&allowed, &refused] {
        run(docker(config.path()).args(["rmi", image]));
    }
}
