//! The agent's client for the control plane: signed awsJson calls.

use crate::{AgentConfig, AgentError};
use berth_aws::sigv4::{SigningKey, sign_request};
use serde_json::Value;

/// A SigV4-signing client of the Berth API.
#[derive(Clone)]
pub struct Control {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    access_key_id: String,
    secret: String,
    region: String,
}

impl Control {
    pub fn new(config: &AgentConfig) -> Self {
        Self::connect(
            &config.endpoint,
            &config.access_key_id,
            &config.secret_access_key,
            &config.region,
        )
    }

    /// A client of the server at `endpoint` with these credentials.
    pub fn connect(endpoint: &str, access_key_id: &str, secret: &str, region: &str) -> Self {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, h)| h)
            .trim_end_matches('/')
            .to_string();
        Control {
            http: reqwest::Client::new(),
            endpoint,
            host,
            access_key_id: access_key_id.to_string(),
            secret: secret.to_string(),
            region: region.to_string(),
        }
    }

    /// A request that got no answer; a refused or failed connection names the endpoint.
    fn unreachable(&self, what: &str, e: reqwest::Error) -> AgentError {
        if e.is_connect() {
            AgentError::Control(format!(
                "the Berth endpoint {} is unreachable ({what}: {}); is the server running there, and is --endpoint right?",
                self.endpoint,
                std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
            ))
        } else {
            AgentError::Control(format!("{what} to {}: {e}", self.endpoint))
        }
    }

    /// `host[:port]` of the endpoint (images from there are pulled with an ECR token).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A signed call to an agent endpoint (`berth-node-api::agent`), typed both ways.
    pub async fn agent_call<T: serde::Serialize, U: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<U, AgentError> {
        let body = serde_json::to_value(body).expect("serializable request");
        let out = self.node_call("ecs", path, &body).await?;
        serde_json::from_value(out)
            .map_err(|e| AgentError::Control(format!("{path}: unexpected answer: {e}")))
    }

    /// `AWS` and the password of an ECR authorization token (`GetAuthorizationToken`).
    pub async fn registry_token(&self) -> Result<(String, String), AgentError> {
        use base64::Engine;
        let out = self
            .call("ecr", "GetAuthorizationToken", serde_json::json!({}))
            .await?;
        let token = out["authorizationData"][0]["authorizationToken"]
            .as_str()
            .ok_or_else(|| AgentError::Control("GetAuthorizationToken returned no token".into()))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| AgentError::Control("the authorization token is not base64".into()))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| AgentError::Control("the authorization token has no user".into()))?;
        Ok((user.to_string(), password.to_string()))
    }

    /// A signed JSON `POST` to a node endpoint of the server (`/agent/v1/…`, `/lb/v1/…`),
    /// signed for `service`.
    pub async fn node_call(
        &self,
        service: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, AgentError> {
        let payload = serde_json::to_vec(body).expect("JSON value");
        let headers = [
            ("content-type", "application/json"),
            ("host", self.host.as_str()),
        ];
        let key = SigningKey {
            access_key_id: &self.access_key_id,
            secret: &self.secret,
            region: &self.region,
            service,
        };
        let signed = sign_request(
            &key,
            "POST",
            path,
            &headers,
            &payload,
            time::OffsetDateTime::now_utc(),
        );
        let mut req = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .header("content-type", "application/json");
        for (k, v) in signed {
            req = req.header(k, v);
        }
        let resp = req
            .body(payload)
            .send()
            .await
            .map_err(|e| self.unreachable(path, e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(AgentError::Control(format!(
                "{path} failed ({status}): {text}"
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| AgentError::Control(format!("{path}: bad response: {e}")))
    }

    /// Calls `operation` of `service` (`ecs` or `ecr`) with a JSON body.
    pub async fn call(
        &self,
        service: &str,
        operation: &str,
        body: Value,
    ) -> Result<Value, AgentError> {
        let prefix = match service {
            "ecr" => "AmazonEC2ContainerRegistry_V20150921",
            _ => "AmazonEC2ContainerServiceV20141113",
        };
        let target = format!("{prefix}.{operation}");
        let payload = serde_json::to_vec(&body).expect("JSON value");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", self.host.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let key = SigningKey {
            access_key_id: &self.access_key_id,
            secret: &self.secret,
            region: &self.region,
            service,
        };
        let signed = sign_request(
            &key,
            "POST",
            "/",
            &headers,
            &payload,
            time::OffsetDateTime::now_utc(),
        );
        let mut req = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", &target);
        for (k, v) in signed {
            req = req.header(k, v);
        }
        let resp = req
            .body(payload)
            .send()
            .await
            .map_err(|e| self.unreachable(operation, e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| AgentError::Control(format!("{operation}: {e}")))?;
        if !status.is_success() {
            return Err(AgentError::Control(format!(
                "{operation} failed ({status}): {text}"
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| AgentError::Control(format!("{operation}: bad response: {e}")))
    }
}
