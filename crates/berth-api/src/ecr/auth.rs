//! ECR auth: wire input → domain command, domain view → wire output.

use super::*;

/// `GetAuthorizationToken`.
pub(super) async fn get_authorization_token(cx: &Cx<'_>, _: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let now = cx.state.now();
    let session = cx.session_token;
    let not_after = session
        .and_then(|t| crate::auth::session::verify(cx.state.sts_key(), t, now).ok())
        .map(|c| c.e);
    let (password, expires) =
        token::issue(cx.state.token_key(), cx.principal, session, now, not_after);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    Ok(json!({"authorizationData": [{
        "authorizationToken": token,
        "expiresAt": expires,
        "proxyEndpoint": format!("https://{}", registry.host()),
    }]}))
}
