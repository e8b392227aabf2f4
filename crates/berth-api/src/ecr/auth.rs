//! ECR auth: wire input → domain command, domain view → wire output.

use super::*;

/// `GetAuthorizationToken`.
pub(super) async fn get_authorization_token(cx: &Cx<'_>, _: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (password, expires) = token::issue(cx.state.token_key(), cx.principal, now);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    Ok(json!({"authorizationData": [{
        "authorizationToken": token,
        "expiresAt": expires,
        "proxyEndpoint": format!("https://{}", registry.host()),
    }]}))
}
