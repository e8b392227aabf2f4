//! AWS-managed policies users attach by ARN (`arn:aws:iam::aws:policy/<path><name>`), with the
//! documents and default version ids AWS publishes for them (the AWS Managed Policy
//! Reference, as of February 2026). Not shipped yet: ReadOnlyAccess (v178 lists thousands of
//! actions of every service) and AmazonECS_FullAccess (v22, whose document we have not been
//! able to check).

/// One AWS-managed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsManaged {
    pub name: &'static str,
    /// `/` or `/service-role/`.
    pub path: &'static str,
    /// The default version's id (`v3`): the only version Berth serves.
    pub version: &'static str,
    pub document: &'static str,
}

impl AwsManaged {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::aws:policy{}{}", self.path, self.name)
    }
}

/// The ECR read actions AmazonEC2ContainerRegistryReadOnly and PowerUser share.
macro_rules! ecr_read_actions {
    () => {
        r#""ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer", "ecr:GetRepositoryPolicy", "ecr:DescribeRepositories",
            "ecr:ListImages", "ecr:DescribeImages", "ecr:BatchGetImage", "ecr:GetLifecyclePolicy",
            "ecr:GetLifecyclePolicyPreview", "ecr:ListTagsForResource",
            "ecr:DescribeImageScanFindings""#
    };
}

pub const AWS_MANAGED: &[AwsManaged] = &[
    AwsManaged {
        name: "AdministratorAccess",
        path: "/",
        version: "v1",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#,
    },
    AwsManaged {
        name: "AmazonEC2ContainerRegistryReadOnly",
        path: "/",
        version: "v3",
        document: concat!(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["#,
            ecr_read_actions!(),
            r#"], "Resource": "*"}]}"#
        ),
    },
    AwsManaged {
        name: "AmazonEC2ContainerRegistryPowerUser",
        path: "/",
        version: "v3",
        document: concat!(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["#,
            ecr_read_actions!(),
            r#", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
            "ecr:PutImage"], "Resource": "*"}]}"#
        ),
    },
    AwsManaged {
        name: "AmazonEC2ContainerRegistryFullAccess",
        path: "/",
        version: "v3",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecr:*", "cloudtrail:LookupEvents"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["iam:CreateServiceLinkedRole"], "Resource": "*",
             "Condition": {"StringEquals": {"iam:AWSServiceName": ["replication.ecr.amazonaws.com"]}}}]}"#,
    },
    AwsManaged {
        name: "AmazonECSTaskExecutionRolePolicy",
        path: "/service-role/",
        version: "v1",
        document: r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "logs:CreateLogStream",
            "logs:PutLogEvents"], "Resource": "*"}]}"#,
    },
    AwsManaged {
        name: "AmazonEC2ContainerServiceforEC2Role",
        path: "/service-role/",
        version: "v10",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": [
                "ec2:DescribeTags", "ecs:CreateCluster", "ecs:DeregisterContainerInstance",
                "ecs:DiscoverPollEndpoint", "ecs:Poll", "ecs:RegisterContainerInstance",
                "ecs:StartTelemetrySession", "ecs:UpdateContainerInstancesState", "ecs:Submit*",
                "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "logs:CreateLogStream",
                "logs:PutLogEvents"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": "ecs:TagResource", "Resource": "*",
             "Condition": {"StringEquals": {"ecs:CreateAction": [
                "CreateCluster", "RegisterContainerInstance"]}}},
            {"Effect": "Allow", "Action": ["ecs:ListTagsForResource"], "Resource": [
                "arn:aws:ecs:*:*:task/*/*", "arn:aws:ecs:*:*:container-instance/*/*"]}]}"#,
    },
    AwsManaged {
        name: "CloudWatchAgentServerPolicy",
        path: "/",
        version: "v3",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "CWACloudWatchServerPermissions", "Effect": "Allow", "Action": [
                "cloudwatch:PutMetricData", "ec2:DescribeVolumes", "ec2:DescribeTags",
                "logs:PutLogEvents", "logs:PutRetentionPolicy", "logs:DescribeLogStreams",
                "logs:DescribeLogGroups", "logs:CreateLogStream", "logs:CreateLogGroup",
                "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"],
             "Resource": "*"},
            {"Sid": "CWASSMServerPermissions", "Effect": "Allow", "Action": ["ssm:GetParameter"],
             "Resource": "arn:aws:ssm:*:*:parameter/AmazonCloudWatch-*"}]}"#,
    },
    AwsManaged {
        name: "CloudWatchFullAccess",
        path: "/",
        version: "v4",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["autoscaling:Describe*", "cloudwatch:*", "logs:*",
                "sns:*", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:GetRole",
                "oam:ListSinks"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
             "Resource": "arn:aws:iam::*:role/aws-service-role/events.amazonaws.com/AWSServiceRoleForCloudWatchEvents*",
             "Condition": {"StringLike": {"iam:AWSServiceName": "events.amazonaws.com"}}},
            {"Effect": "Allow", "Action": ["oam:ListAttachedLinks"],
             "Resource": "arn:aws:oam:*:*:sink/*"}]}"#,
    },
    AwsManaged {
        name: "CloudWatchLogsFullAccess",
        path: "/",
        version: "v8",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "CloudWatchLogsFullAccess", "Effect": "Allow", "Action": ["logs:*",
                "cloudwatch:GenerateQuery", "cloudwatch:GenerateQueryResultsSummary",
                "observabilityadmin:GetS3TableIntegration",
                "observabilityadmin:ListS3TableIntegrations",
                "observabilityadmin:ListTelemetryPipelines"],
             "Resource": "*"}]}"#,
    },
];

/// The AWS-managed policy with this ARN.
pub fn aws_managed(arn: &str) -> Option<&'static AwsManaged> {
    AWS_MANAGED.iter().find(|p| p.arn() == arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Policy};

    #[test]
    fn every_document_is_a_valid_identity_policy_under_its_arn() {
        for p in AWS_MANAGED {
            Policy::parse(p.document, Kind::Identity).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(aws_managed(&p.arn()), Some(p));
        }
        assert_eq!(
            aws_managed("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
                .map(|p| p.name),
            Some("AmazonECSTaskExecutionRolePolicy")
        );
        assert!(aws_managed("arn:aws:iam::aws:policy/AmazonECSTaskExecutionRolePolicy").is_none());
    }
}
