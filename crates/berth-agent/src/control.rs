//! The agent's client for the control plane: signed awsJson calls.

use crate::{AgentConfig, AgentError};
use berth_aws::sigv4::{SigningKey, sign_request};
use serde_json::Value;

/// A SigV4-signing client of the Berth API, at one or several servers sharing a store
/// (`--endpoint http://a:4566,http://b:4566`): calls go to one until it cannot be reached,
/// then to the next.
#[derive(Clone)]
pub struct Control {
    http: reqwest::Client,
    endpoints: std::sync::Arc<[Endpoint]>,
    /// The endpoint calls go to now (counting moves: `% endpoints.len()` is the index).
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    access_key_id: String,
    secret: String,
    /// Temporary credentials' token (`X-Amz-Security-Token`).
    session_token: Option<String>,
    region: String,
}

/// A server's URL, and its `host[:port]` (what requests are signed for).
struct Endpoint {
    url: String,
    host: String,
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

    /// A client of the servers at `endpoints` (comma-separated URLs) with these credentials.
    pub fn connect(endpoints: &str, access_key_id: &str, secret: &str, region: &str) -> Self {
        let endpoints: Vec<Endpoint> = endpoints
            .split(',')
            .map(|e| e.trim().trim_end_matches('/'))
            .filter(|e| !e.is_empty())
            .map(|url| Endpoint {
                url: url.to_string(),
                host: url
                    .split_once("://")
                    .map_or(url, |(_, h)| h)
                    .trim_end_matches('/')
                    .to_string(),
            })
            .collect();
        Control {
            http: reqwest::Client::new(),
            endpoints: endpoints.into(),
            current: Default::default(),
            access_key_id: access_key_id.to_string(),
            secret: secret.to_string(),
            session_token: None,
            region: region.to_string(),
        }
    }

    /// The same servers, called with temporary credentials (a role session's).
    pub fn with_session(&self, access_key_id: &str, secret: &str, token: &str) -> Control {
        Control {
            access_key_id: access_key_id.to_string(),
            secret: secret.to_string(),
            session_token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// A request that got no answer; a refused or failed connection names the endpoint.
    fn unreachable(&self, url: &str, what: &str, e: reqwest::Error) -> AgentError {
        if e.is_connect() {
            AgentError::Control(format!(
                "the Berth endpoint {url} is unreachable ({what}: {}); is the server running there, and is --endpoint right?",
                std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
            ))
        } else {
            AgentError::Control(format!("{what} to {url}: {e}"))
        }
    }

    /// Changes each time calls move to another endpoint.
    pub fn endpoint_epoch(&self) -> u64 {
        self.current.load(std::sync::atomic::Ordering::Relaxed) as u64
    }

    /// The endpoint host `image` is pulled from, if it is one of the servers' registries
    /// (pulled with an ECR token).
    pub fn registry_of(&self, image: &str) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|e| image.starts_with(&format!("{}/", e.host)))
            .map(|e| e.host.as_str())
    }

    /// A signed `POST` of `payload` to `path` with `headers` (the host is added), signed for
    /// `service`: the status and body. A server that cannot be connected to is passed over
    /// for the next one (the request never reached it); any other failure is the answer.
    async fn post(
        &self,
        service: &str,
        path: &str,
        headers: &[(&str, &str)],
        payload: Vec<u8>,
        what: &str,
    ) -> Result<(reqwest::StatusCode, String), AgentError> {
        let mut tried = 0;
        loop {
            let at = self.current.load(std::sync::atomic::Ordering::Relaxed);
            let endpoint = &self.endpoints[at % self.endpoints.len()];
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if let Some(token) = &self.session_token {
                all.push(("x-amz-security-token", token.as_str()));
            }
            let sent = all.clone();
            all.push(("host", endpoint.host.as_str()));
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
                &all,
                &payload,
                time::OffsetDateTime::now_utc(),
            );
            let mut req = self.http.post(format!("{}{path}", endpoint.url));
            for (k, v) in &sent {
                req = req.header(*k, *v);
            }
            for (k, v) in signed {
                req = req.header(k, v);
            }
            match req.body(payload.clone()).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| AgentError::Control(format!("{what}: {e}")))?;
                    return Ok((status, text));
                }
                Err(e) => {
                    tried += 1;
                    let next = at.wrapping_add(1);
                    let _ = self.current.compare_exchange(
                        at,
                        next,
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    if !e.is_connect() || tried >= self.endpoints.len() {
                        return Err(self.unreachable(&endpoint.url, what, e));
                    }
                    tracing::warn!(endpoint = %endpoint.url, "server unreachable; trying the next one");
                }
            }
        }
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
        let headers = [("content-type", "application/json")];
        let (status, text) = self.post(service, path, &headers, payload, path).await?;
        if !status.is_success() {
            return Err(AgentError::Control(format!(
                "{path} failed ({status}): {text}"
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| AgentError::Control(format!("{path}: bad response: {e}")))
    }

    /// Calls `action` of an awsQuery `service` (`iam`, `sts`) with `params`: the XML answer,
    /// or the error document as the error.
    pub async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, AgentError> {
        let mut body = format!("Action={action}&Version={version}");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", berth_aws::sigv4::uri_encode(v, true)));
        }
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let (status, text) = self
            .post(service, "/", &headers, body.into_bytes(), action)
            .await?;
        match status.is_success() {
            true => Ok(text),
            false => Err(AgentError::Control(format!(
                "{action} failed ({status}): {text}"
            ))),
        }
    }

    /// The same servers and credentials, signing for `region`.
    pub fn in_region(&self, region: &str) -> Control {
        Control {
            region: region.to_string(),
            ..self.clone()
        }
    }

    /// Calls `operation` of a JSON `service` (`ecs`, `ecr`, `logs`, or CloudWatch's
    /// `monitoring`, in its awsJson 1.0 form) with a JSON body.
    pub async fn call(
        &self,
        service: &str,
        operation: &str,
        body: Value,
    ) -> Result<Value, AgentError> {
        self.call_coded(service, operation, body)
            .await
            .map_err(|e| AgentError::Control(e.to_string()))
    }

    /// [`Control::call`], with the AWS error code of a refusal.
    pub async fn call_coded(
        &self,
        service: &str,
        operation: &str,
        body: Value,
    ) -> Result<Value, CallError> {
        let (prefix, content_type) = match service {
            "ecr" => (
                "AmazonEC2ContainerRegistry_V20150921",
                "application/x-amz-json-1.1",
            ),
            "logs" => ("Logs_20140328", "application/x-amz-json-1.1"),
            "monitoring" => (
                "GraniteServiceVersion20100801",
                "application/x-amz-json-1.0",
            ),
            _ => (
                "AmazonEC2ContainerServiceV20141113",
                "application/x-amz-json-1.1",
            ),
        };
        let target = format!("{prefix}.{operation}");
        let payload = serde_json::to_vec(&body).expect("JSON value");
        let headers = [
            ("content-type", content_type),
            ("x-amz-target", target.as_str()),
        ];
        let (status, text) = self
            .post(service, "/", &headers, payload, operation)
            .await
            .map_err(|e| CallError {
                status: None,
                code: None,
                message: e.to_string(),
            })?;
        if !status.is_success() {
            // `__type` is the code, possibly after a namespace and `#`.
            let code = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                let t = v.get("__type")?.as_str()?;
                Some(t.rsplit('#').next().unwrap_or(t).to_string())
            });
            return Err(CallError {
                status: Some(status.as_u16()),
                code,
                message: format!("{operation} failed ({status}): {text}"),
            });
        }
        serde_json::from_str(&text).map_err(|e| CallError {
            status: Some(status.as_u16()),
            code: None,
            message: format!("{operation}: bad response: {e}"),
        })
    }
}

/// A JSON call that failed: the HTTP status and AWS error code when the server answered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
}
