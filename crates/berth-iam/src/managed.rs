//! AWS-managed policies users attach by ARN (`arn:aws:iam::aws:policy/<path><name>`), with the
//! documents and default version ids AWS publishes for them (the AWS Managed Policy
//! Reference, as of February 2026). Two differ from AWS's current text, each as its entry says:
//! `ReadOnlyAccess` keeps, of AWS's v133 (thousands of actions of every AWS service), exactly
//! the actions of the services Berth serves — so it decides every request Berth can receive as
//! AWS's does — and `AmazonECS_FullAccess` is v21's document (AWS's default is now v22, from
//! September 2026, whose text we could not obtain).

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
        name: "ReadOnlyAccess",
        path: "/",
        // AWS's v133 (September 2025), cut to the services Berth serves.
        version: "v133",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadOnlyActionsOfBerthServices", "Effect": "Allow", "Action": [
                "application-autoscaling:Describe*",
                "application-autoscaling:GetPredictiveScalingForecast",
                "application-autoscaling:ListTagsForResource",
                "cloudwatch:Describe*", "cloudwatch:GenerateQuery",
                "cloudwatch:GenerateQueryResultsSummary", "cloudwatch:Get*", "cloudwatch:List*",
                "ecr:BatchCheck*", "ecr:BatchGet*", "ecr:Describe*", "ecr:Get*", "ecr:List*",
                "ecs:Describe*", "ecs:List*",
                "elasticloadbalancing:Describe*",
                "iam:Generate*", "iam:Get*", "iam:List*", "iam:Simulate*",
                "logs:Describe*", "logs:FilterLogEvents", "logs:Get*", "logs:ListAnomalies",
                "logs:ListEntitiesForLogGroup", "logs:ListIntegrations",
                "logs:ListLogAnomalyDetectors", "logs:ListLogDeliveries",
                "logs:ListLogGroupsForEntity", "logs:ListLogGroupsForQuery",
                "logs:ListTagsForResource", "logs:ListTagsLogGroup", "logs:StartLiveTail",
                "logs:StartQuery", "logs:StopLiveTail", "logs:StopQuery",
                "logs:TestMetricFilter",
                "sts:GetAccessKeyInfo", "sts:GetCallerIdentity", "sts:GetSessionToken"],
             "Resource": "*"}]}"#,
    },
    AwsManaged {
        name: "AmazonECS_FullAccess",
        path: "/",
        version: "v21",
        document: r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "ECSIntegrationsManagementPolicy", "Effect": "Allow", "Action": [
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingActivities",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:RegisterScalableTarget",
                "appmesh:DescribeVirtualGateway", "appmesh:DescribeVirtualNode",
                "appmesh:ListMeshes", "appmesh:ListVirtualGateways", "appmesh:ListVirtualNodes",
                "autoscaling:CreateAutoScalingGroup", "autoscaling:CreateLaunchConfiguration",
                "autoscaling:DeleteAutoScalingGroup", "autoscaling:DeleteLaunchConfiguration",
                "autoscaling:Describe*", "autoscaling:UpdateAutoScalingGroup",
                "cloudformation:CreateStack", "cloudformation:DeleteStack",
                "cloudformation:DescribeStack*", "cloudformation:UpdateStack",
                "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms",
                "cloudwatch:GetMetricStatistics", "cloudwatch:PutMetricAlarm",
                "codedeploy:BatchGetApplicationRevisions", "codedeploy:BatchGetApplications",
                "codedeploy:BatchGetDeploymentGroups", "codedeploy:BatchGetDeployments",
                "codedeploy:ContinueDeployment", "codedeploy:CreateApplication",
                "codedeploy:CreateDeployment", "codedeploy:CreateDeploymentGroup",
                "codedeploy:GetApplication", "codedeploy:GetApplicationRevision",
                "codedeploy:GetDeployment", "codedeploy:GetDeploymentConfig",
                "codedeploy:GetDeploymentGroup", "codedeploy:GetDeploymentTarget",
                "codedeploy:ListApplicationRevisions", "codedeploy:ListApplications",
                "codedeploy:ListDeploymentConfigs", "codedeploy:ListDeploymentGroups",
                "codedeploy:ListDeployments", "codedeploy:ListDeploymentTargets",
                "codedeploy:RegisterApplicationRevision", "codedeploy:StopDeployment",
                "ec2:AssociateRouteTable", "ec2:AttachInternetGateway",
                "ec2:AuthorizeSecurityGroupIngress", "ec2:CancelSpotFleetRequests",
                "ec2:CreateInternetGateway", "ec2:CreateLaunchTemplate", "ec2:CreateRoute",
                "ec2:CreateRouteTable", "ec2:CreateSecurityGroup", "ec2:CreateSubnet",
                "ec2:CreateVpc", "ec2:DeleteLaunchTemplate", "ec2:DeleteSubnet",
                "ec2:DeleteVpc", "ec2:Describe*", "ec2:DetachInternetGateway",
                "ec2:DisassociateRouteTable", "ec2:ModifySubnetAttribute",
                "ec2:ModifyVpcAttribute", "ec2:RequestSpotFleet", "ec2:RunInstances", "ecs:*",
                "elasticfilesystem:DescribeAccessPoints",
                "elasticfilesystem:DescribeFileSystems",
                "elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateLoadBalancer",
                "elasticloadbalancing:CreateRule", "elasticloadbalancing:CreateTargetGroup",
                "elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteLoadBalancer",
                "elasticloadbalancing:DeleteRule", "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:DescribeTargetGroups", "events:DeleteRule",
                "events:DescribeRule", "events:ListRuleNamesByTarget",
                "events:ListTargetsByRule", "events:PutRule", "events:PutTargets",
                "events:RemoveTargets", "fsx:DescribeFileSystems",
                "iam:ListAttachedRolePolicies", "iam:ListInstanceProfiles", "iam:ListRoles",
                "lambda:ListFunctions", "logs:CreateLogGroup", "logs:DescribeLogGroups",
                "logs:FilterLogEvents", "route53:CreateHostedZone", "route53:DeleteHostedZone",
                "route53:GetHealthCheck", "route53:GetHostedZone",
                "route53:ListHostedZonesByName", "servicediscovery:CreatePrivateDnsNamespace",
                "servicediscovery:CreateService", "servicediscovery:DeleteService",
                "servicediscovery:GetNamespace", "servicediscovery:GetOperation",
                "servicediscovery:GetService", "servicediscovery:ListNamespaces",
                "servicediscovery:ListServices", "servicediscovery:UpdateService",
                "sns:ListTopics"],
             "Resource": ["*"]},
            {"Sid": "SSMPolicy", "Effect": "Allow", "Action": ["ssm:GetParameter",
                "ssm:GetParameters", "ssm:GetParametersByPath"],
             "Resource": "arn:aws:ssm:*:*:parameter/aws/service/ecs*"},
            {"Sid": "ManagedCloudformationResourcesCleanupPolicy", "Effect": "Allow",
             "Action": ["ec2:DeleteInternetGateway", "ec2:DeleteRoute", "ec2:DeleteRouteTable",
                "ec2:DeleteSecurityGroup"], "Resource": ["*"],
             "Condition": {"StringLike": {
                "ec2:ResourceTag/aws:cloudformation:stack-name": "EC2ContainerService-*"}}},
            {"Sid": "TasksPassRolePolicy", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": ["*"],
             "Condition": {"StringLike": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
            {"Sid": "InfrastructurePassRolePolicy", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": ["arn:aws:iam::*:role/ecsInfrastructureRole"],
             "Condition": {"StringEquals": {"iam:PassedToService": "ecs.amazonaws.com"}}},
            {"Sid": "InstancePassRolePolicy", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": ["arn:aws:iam::*:role/ecsInstanceRole*"],
             "Condition": {"StringLike": {"iam:PassedToService": [
                "ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}}},
            {"Sid": "AutoScalingPassRolePolicy", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": ["arn:aws:iam::*:role/ecsAutoscaleRole*"],
             "Condition": {"StringLike": {"iam:PassedToService": [
                "application-autoscaling.amazonaws.com",
                "application-autoscaling.amazonaws.com.cn"]}}},
            {"Sid": "ServiceLinkedRoleCreationPolicy", "Effect": "Allow",
             "Action": ["iam:CreateServiceLinkedRole"], "Resource": "*",
             "Condition": {"StringLike": {"iam:AWSServiceName": ["ecs.amazonaws.com",
                "autoscaling.amazonaws.com", "ecs.application-autoscaling.amazonaws.com",
                "spot.amazonaws.com", "spotfleet.amazonaws.com"]}}},
            {"Sid": "ELBTaggingPolicy", "Effect": "Allow",
             "Action": ["elasticloadbalancing:AddTags"], "Resource": "*",
             "Condition": {"StringEquals": {"elasticloadbalancing:CreateAction": [
                "CreateTargetGroup", "CreateRule", "CreateListener", "CreateLoadBalancer"]}}}]}"#,
    },
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
